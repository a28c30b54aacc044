"""`app.py import battles FILE [--db PATH]`: load Chatbot Arena battles into the database."""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from playground.errors import PlaygroundError

NAME = "import"


def add_parser(subparsers: Any) -> None:
    """Register the `import` sub-command on the CLI's subparsers."""
    parser = subparsers.add_parser(
        NAME,
        help="import Chatbot Arena battles (JSON array or JSONL) into the database",
        description="Import Chatbot Arena battles: rows with model_a, model_b, winner "
        "(model_a | model_b | tie | tie (bothbad)) and optional conversation_a/b, tstamp, "
        "anony, question_id. Bad rows are listed and skipped; importing a file twice adds "
        "nothing the second time. The good rows are written in one transaction (all or nothing); "
        "the app's writers wait for it.",
    )
    parser.add_argument("kind", choices=["battles"], help="what the file holds")
    parser.add_argument("file", type=Path, help="a .json (array) or .jsonl file")
    # --db comes from the CLI's common options and arrives as settings.db_path


def run(args: argparse.Namespace, settings: Any) -> int:
    """Import, print a summary and every bad row. 0 if the file gave usable rows, else 1."""
    from storage import import_arena_battles, open_database  # heavy imports only when used

    db_path = settings.db_path
    began = time.perf_counter()
    try:
        db = open_database(db_path)
        try:
            report = import_arena_battles(db, args.file)
        finally:
            db.close()
    except PlaygroundError as exc:
        print(f"error: {exc}")
        return 1
    for error in report.errors:
        print(f"skipped {error}")
    print(
        f"{report.path}: imported {report.imported} battles into {db_path}, "
        f"{report.already_imported} already imported, {len(report.errors)} bad rows skipped "
        f"({time.perf_counter() - began:.1f} s)"
    )
    return 0 if report.imported or report.already_imported else 1
