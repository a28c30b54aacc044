"""`python app.py` / `python app.py serve`: the web UI."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from playground.auth.access import INSECURE_BANNER, Access
from playground.auth.users import UserEntry, UserTable, check_name, hash_password
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
    p.add_argument("--port", type=int, default=None, help="port (env PLAYGROUND_PORT; default 7860; pick another if it is busy)")
    p.add_argument("--share", action="store_true", help="make a public Gradio share link (needs --auth)")
    p.add_argument("--auth", default=None, metavar="FILE|USER:PASSWORD",
                   help=f"require a login: a users file (one user a line with role and password hash; create "
                        f"it with `python app.py users add NAME --role admin|annotator`), or USER:PASSWORD "
                        f"(one admin; the password is then visible in this machine's process list); env {AUTH_ENV}")
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


def access_for(settings: Settings, inline: UserTable | None = None) -> Access:
    """The access mode the settings ask for; PlaygroundError when exposure has no login.

    A non-local --host or --share without --auth refuses to start (it used to only warn), unless
    --insecure-no-auth says so explicitly. `inline` is the `--auth USER:PASSWORD` login.
    """
    if inline is not None:
        return Access("team", inline)
    if settings.auth_file is not None:
        return Access("team", UserTable.load(settings.auth_file))
    if not is_exposed(settings):
        return Access("local")
    if settings.insecure_no_auth:
        return Access("open")
    where = "a public share link (--share)" if settings.share else f"--host {settings.host}"
    raise PlaygroundError(
        f"refusing to start: {where} makes the playground reachable from other machines, and without --auth "
        "anyone could run models, add servers, download models and read every vote. Start with "
        "`--auth NAME:PASSWORD` (one admin), or create users with `python app.py users add NAME --role admin` "
        "and start with `--auth data/users.txt`; on a network you trust, say --insecure-no-auth.")


INLINE_WARNING = ("note: the password given with --auth is visible to everyone on this machine (process list, "
                  "shell history). A users file keeps it off the command line: "
                  "`python app.py users add NAME --role admin` then `--auth data/users.txt`.")


def parse_auth(value: str | None) -> tuple[Path | None, UserTable | None]:
    """--auth (or $PLAYGROUND_AUTH): a users file, or `NAME:PASSWORD[,NAME:PASSWORD...]`.

    The inline form is Gradio's familiar one, so people type it: it gives admins, hashed in memory
    like the file's (never stored). An existing file of that name wins over the inline reading.
    """
    value = value or os.environ.get(AUTH_ENV) or None
    if value is None:
        return None, None
    path = Path(value).expanduser()
    if path.is_file():
        return path, None
    if ":" in value:
        return None, inline_users(value)
    raise PlaygroundError(f"--auth {value}: no such users file. Create it with "
                          f"`python app.py users add NAME --role admin --file {value}`, or give one admin "
                          "inline as --auth NAME:PASSWORD")


def inline_users(value: str) -> UserTable:
    """`NAME:PASSWORD[,NAME:PASSWORD...]` -> a table of admins; a bad entry is named."""
    users: dict[str, UserEntry] = {}
    for item in value.split(","):
        name, sep, password = item.strip().partition(":")
        if not sep or not password:
            raise PlaygroundError(f"--auth: {item.strip()!r} is not NAME:PASSWORD (or a users file)")
        check_name(name)
        users[name] = UserEntry(name, "admin", hash_password(password))
    return UserTable(users)


def auth_file(value: str | None) -> Path | None:
    """The users file --auth names (None for no login or the inline form)."""
    return parse_auth(value)[0]


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
    from playground.ui.app import CSS, I18N, SIGNED_OUT_JS, build_ui

    users_file, inline = parse_auth(args.auth)
    settings = settings.with_overrides(share=args.share or None, auth_file=users_file,
                                       insecure_no_auth=args.insecure_no_auth or None,
                                       max_download_gb=args.max_download_gb,
                                       session_hours=session_hours(args.session_hours))
    access = access_for(settings, inline)
    if inline is not None:
        print(INLINE_WARNING, file=sys.stderr)
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
    login = ""
    if access.users:
        source = settings.auth_file or "--auth (admins)"
        login = f", {len(access.users.names())} user{'s' if len(access.users.names()) != 1 else ''} from {source}"
    print(f"Access: {access.mode} mode{login}", file=sys.stderr)
    gate = Middleware(WebGate, access=access, session_hours=settings.session_hours)
    launch(demo, settings, login=access.login_required, auth=access.gradio_auth(), auth_message=AUTH_MESSAGE,
           show_error=False, footer_links=["api", "settings"], css=CSS, i18n=I18N,
           js=SIGNED_OUT_JS if access.login_required else None,
           app_kwargs={"middleware": [gate]}, max_file_size=MAX_UPLOAD)
    return 0
