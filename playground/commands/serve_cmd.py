"""`python app.py` / `python app.py serve`: the web UI."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from playground.auth.access import INSECURE_BANNER, Access
from playground.auth.users import UserTable
from playground.config import Settings
from playground.errors import PlaygroundError

NAME = "serve"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
AUTH_ENV = "PLAYGROUND_AUTH"          # the users file, when --auth is not given
SESSION_ENV = "PLAYGROUND_SESSION_HOURS"
AUTH_MESSAGE = ("Sign in with the name and password your admin gave you. After 5 wrong passwords in a row "
                "sign-in for that name pauses for a second, then twice as long after each further miss.")
MAX_UPLOAD = "10mb"   # the one upload, the Lab's JSONL task file (GSM8K's test set is 0.7 MB), admins only


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="start the web UI (the default command)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860; pick another if it is busy)")
    p.add_argument("--share", action="store_true", help="make a public Gradio share link (needs --auth)")
    p.add_argument("--auth", default=None, metavar="FILE",
                   help=f"users file (one user a line with role and password hash; create it with "
                        f"`python app.py users add NAME --role admin|annotator`); env {AUTH_ENV}")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow --host/--share without --auth: anyone who reaches the page is an admin "
                        "(every page says so)")
    p.add_argument("--session-hours", type=float, default=None, metavar="HOURS",
                   help=f"how long a sign-in lasts under --auth before the page asks again "
                        f"(default 12); env {SESSION_ENV}")
    p.add_argument("--max-download-gb", type=float, default=None,
                   help="largest Hugging Face Hub download the app starts (default 20)")
    p.add_argument("--model", action="append", default=None, dest="hub_refs",
                   help="extra hf: Hub reference to list in the catalog (repeatable)")


def is_exposed(settings: Settings) -> bool:
    return settings.share or settings.host not in LOCAL_HOSTS


def access_for(settings: Settings) -> Access:
    """The access mode the settings ask for; PlaygroundError when exposure has no login.

    A non-local --host or --share without --auth refuses to start (it used to only warn), unless
    --insecure-no-auth says so explicitly.
    """
    if settings.auth_file is not None:
        return Access("team", UserTable.load(settings.auth_file))
    if not is_exposed(settings):
        return Access("local")
    if settings.insecure_no_auth:
        return Access("open")
    where = "a public share link (--share)" if settings.share else f"--host {settings.host}"
    raise PlaygroundError(
        f"refusing to start: {where} makes the playground reachable from other machines, and without --auth "
        "anyone could run models, add servers, download models and read every vote. Create users with "
        "`python app.py users add NAME --role admin` and start with `--auth data/users.txt`, or, on a "
        "network you trust, say --insecure-no-auth.")


def auth_file(value: str | None) -> Path | None:
    """--auth FILE (or $PLAYGROUND_AUTH). `user:password` on the command line is refused: it would
    show the password to everyone on the machine in the process list."""
    value = value or os.environ.get(AUTH_ENV) or None
    if value is None:
        return None
    path = Path(value).expanduser()
    if not path.is_file() and ":" in value:
        raise PlaygroundError("--auth takes a users file, not user:password: a password on the command line is "
                              "visible to everyone on this machine. Create the file with "
                              "`python app.py users add NAME --role admin|annotator` and pass --auth data/users.txt")
    if not path.is_file():
        raise PlaygroundError(f"--auth {value}: no such users file. Create it with "
                              f"`python app.py users add NAME --role admin --file {value}`")
    return path


def session_hours(value: float | None) -> float | None:
    """--session-hours (or $PLAYGROUND_SESSION_HOURS): a positive number of hours."""
    raw = value if value is not None else os.environ.get(SESSION_ENV) or None
    if raw is None:
        return None
    try:
        hours = float(raw)
    except ValueError:
        hours = -1.0
    if not hours > 0:
        raise PlaygroundError(f"--session-hours / {SESSION_ENV} must be a positive number of hours, "
                              f"e.g. 12 or 0.5; got {raw!r}")
    return hours


def run(args: argparse.Namespace, settings: Settings) -> int:
    from starlette.middleware import Middleware
    from storage import open_database

    from playground.auth.gate import WebGate
    from playground.context import AppContext
    from playground.serving import launch, port_problem, prepare_default_model
    from playground.ui.app import CSS, build_ui

    settings = settings.with_overrides(share=args.share or None, auth_file=auth_file(args.auth),
                                       insecure_no_auth=args.insecure_no_auth or None,
                                       max_download_gb=args.max_download_gb,
                                       session_hours=session_hours(args.session_hours))
    access = access_for(settings)
    if access.mode == "team":     # downloads only through the admin's Download button
        settings = settings.with_overrides(allow_hub_download=False)
    if problem := port_problem(settings.host, settings.port):
        raise PlaygroundError(problem)     # before loading anything: say it at once
    open_database(settings.db_path).close()   # fail now, with the path, if the database is unusable
    if access.mode == "open":
        print("WARNING: " + INSECURE_BANNER.replace("⚠️ ", "").replace("**", "").replace("`", ""), file=sys.stderr)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx = AppContext.create(settings, hub_refs=tuple(args.hub_refs or ()))
    ctx.access = access
    for problem in [*ctx.catalog.problems, *map(str, ctx.preset_errors)]:
        print(f"warning: {problem}", file=sys.stderr)
    prepare_default_model(ctx)
    demo = build_ui(ctx)
    demo.queue(default_concurrency_limit=8)
    login = f", {len(access.users.names())} users from {settings.auth_file}" if access.users else ""
    print(f"Access: {access.mode} mode{login}", file=sys.stderr)
    gate = Middleware(WebGate, access=access, session_hours=settings.session_hours)
    launch(demo, settings, auth=access.gradio_auth(), auth_message=AUTH_MESSAGE,
           show_error=False, footer_links=["api", "settings"], css=CSS,
           app_kwargs={"middleware": [gate]}, max_file_size=MAX_UPLOAD)
    return 0
