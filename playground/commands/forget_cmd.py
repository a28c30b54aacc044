"""`python app.py forget --vote N | --battle N | --generation N | --session ID --reason TEXT`: privacy.

The judged tables are append-only (the database refuses UPDATE and DELETE), so forgetting writes
one tombstone row per hidden row; rankings and exports leave tombstoned rows out. Every call is
logged: the tombstones themselves (when, who, why) and one line on stderr.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import sys
from typing import Any

from playground.errors import PlaygroundError

NAME = "forget"
log = logging.getLogger("playground.forget")


def add_parser(subparsers: Any) -> None:
    """Register `forget` on the CLI's subparsers."""
    p = subparsers.add_parser(
        NAME,
        help="hide votes, battles, answers or a whole session from rankings and exports (tombstones)",
        description="Writes a tombstone for each named row (a session: every answer it stored and every vote it "
        "cast). Nothing is changed or deleted; rankings and exports leave forgotten rows out. Logged with the "
        "reason and the requesting user.",
    )
    p.add_argument("--vote", type=int, action="append", default=[], metavar="ID", help="a vote id (repeatable)")
    p.add_argument("--battle", type=int, action="append", default=[], metavar="ID", help="a battle id (repeatable)")
    p.add_argument("--generation", type=int, action="append", default=[], metavar="ID",
                   help="an answer (generation) id; every battle with it is left out too (repeatable)")
    p.add_argument("--session", metavar="ID", help="a session id as stored on its rows")
    p.add_argument("--reason", required=True, help="why (stored in every tombstone)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground.commands.export_cmd import require_database
    from storage import forget, open_database

    if not (args.vote or args.battle or args.generation or args.session):
        raise PlaygroundError("name what to forget: --vote, --battle, --generation or --session")
    require_database(settings.db_path)
    requested_by = _user()
    db = open_database(settings.db_path)
    try:
        result = forget(db, reason=args.reason, requested_by=requested_by, generations=args.generation,
                        battles=args.battle, votes=args.vote, session_id=args.session)
    finally:
        db.close()
    parts = [f"{len(ids)} {kind}(s) {', '.join(map(str, ids))}" for kind, ids in result.tombstones.items() if ids]
    line = (f"forget by {requested_by or 'unknown user'} in {settings.db_path}: "
            f"{'; '.join(parts) if parts else 'nothing new (already forgotten)'}; reason: {args.reason}")
    log.warning(line)
    print(line, file=sys.stderr)
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): the tombstone still records the reason
        return ""
