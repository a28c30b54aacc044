"""`python app.py team report [--json]`: how the team judges (per-annotator statistics, agreement).

Reads `counted_votes` (nothing excluded or forgotten); the figures and their definitions are in
`playground/agreement.py`. Admin data: it names every annotator, so it is a CLI command (run by
whoever runs the server) and an admin-only view in the My votes tab.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "team"


def add_parser(subparsers: Any) -> None:
    """Register `team` on the CLI's subparsers."""
    p = subparsers.add_parser(NAME, help="annotator statistics and inter-annotator agreement",
                              description="Per-annotator statistics (votes, tie, both-bad and left-side rates, "
                              "agreement with the majority) and Cohen's/Fleiss' kappa on battles judged by "
                              "several annotators, with bootstrap intervals.")
    sub = p.add_subparsers(dest="team_command", metavar="action", required=True)
    report = sub.add_parser("report", help="print the team quality report")
    report.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    report.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    report.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    from playground.cli import add_common_options
    add_common_options(report)


def run(args: argparse.Namespace, settings: Any) -> int:
    from contextlib import closing

    from playground.agreement import report_markdown, team_report
    from playground.commands.export_cmd import require_database
    from storage import open_database

    require_database(settings.db_path)
    with closing(open_database(settings.db_path)) as db:
        report = team_report(db, seed=args.seed, resamples=args.resamples)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else report_markdown(report))
    return 0
