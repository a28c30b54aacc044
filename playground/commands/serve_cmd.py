"""`python app.py` / `python app.py serve`: the web UI."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from playground.config import Settings
from playground.errors import PlaygroundError

NAME = "serve"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="start the web UI (the default command)")
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=None, help="port (default 7860; pick another if it is busy)")
    p.add_argument("--share", action="store_true", help="make a public Gradio share link (needs --auth)")
    p.add_argument("--auth", default=None,
                   help="user:password, or a file with one user:password per line, for shared deployments")
    p.add_argument("--model", action="append", default=None, dest="hub_refs",
                   help="extra hf: Hub reference to list in the catalog (repeatable)")


def parse_auth(value: str | None) -> tuple[tuple[str, str], ...]:
    """user:password, or a path to a file of such lines (blank lines and # comments ignored)."""
    if not value:
        return ()
    path = Path(value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else [value]
    pairs = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            where = f"{path}:{n}" if path.is_file() else "--auth"
            raise PlaygroundError(f"{where}: expected user:password")
        pairs.append((user, password))
    return tuple(pairs)


def security_warnings(settings: Settings) -> list[str]:
    exposed = settings.share or settings.host not in LOCAL_HOSTS
    if exposed and not settings.auth:
        where = "a public share link" if settings.share else f"{settings.host}"
        return [f"WARNING: the playground is reachable from other machines ({where}) WITHOUT a password. "
                "Anyone who can reach it can run models and write votes. Add --auth user:password."]
    return []


def run(args: argparse.Namespace, settings: Settings) -> int:
    from storage import open_database

    from playground.context import AppContext
    from playground.ui.app import build_ui

    from playground.serving import launch, port_problem, prepare_default_model

    settings = settings.with_overrides(share=args.share or None, auth=parse_auth(args.auth) or None)
    if problem := port_problem(settings.host, settings.port):
        raise PlaygroundError(problem)     # before loading anything: say it at once
    open_database(settings.db_path).close()   # fail now, with the path, if the database is unusable
    for warning in security_warnings(settings):
        print(warning, file=sys.stderr)
    ctx = AppContext.create(settings, hub_refs=tuple(args.hub_refs or ()))
    for problem in [*ctx.catalog.problems, *map(str, ctx.preset_errors)]:
        print(f"warning: {problem}", file=sys.stderr)
    prepare_default_model(ctx)
    demo = build_ui(ctx)
    demo.queue(default_concurrency_limit=8)
    launch(demo, settings, auth=list(settings.auth) or None, show_error=True, footer_links=["api", "settings"])
    return 0
