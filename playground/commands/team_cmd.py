"""`python app.py team report [--json]`: how the team judges (per-annotator statistics, agreement);
`python app.py team assign --share 0.1 --k 3 --annotators ann,bob,cy`: overlap quotas
(storage/assignments.py; annotators get their assigned battles first in the Arena tab's New round).

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
    assign = sub.add_parser("assign", help="assign a share of the battles to k different annotators each")
    assign.add_argument("--share", type=float, required=True, help="share of the battles, e.g. 0.1 for 10%%")
    assign.add_argument("--k", type=int, required=True, help="how many different annotators judge each one")
    assign.add_argument("--annotators", required=True, help="comma-separated login names to assign to")
    assign.add_argument("--seed", type=int, help="random seed (default: fresh)")
    quota = sub.add_parser("quota", help="assigned and done, per annotator (JSON)")
    from playground.cli import add_common_options
    for parser in (report, assign, quota):
        add_common_options(parser)


def run(args: argparse.Namespace, settings: Any) -> int:
    from contextlib import closing

    from playground.agreement import report_markdown, team_report
    from playground.commands.export_cmd import require_database
    from storage import open_database

    require_database(settings.db_path)
    with closing(open_database(settings.db_path)) as db:
        if args.team_command == "assign":
            return _assign(db, args)
        if args.team_command == "quota":
            from storage.assignments import quota_status

            print(json.dumps(quota_status(db), indent=2, ensure_ascii=False))
            return 0
        report = team_report(db, seed=args.seed, resamples=args.resamples)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else report_markdown(report))
    return 0


def _assign(db: Any, args: argparse.Namespace) -> int:
    import getpass

    from playground.errors import PlaygroundError
    from storage import StorageError
    from storage.assignments import assign_overlap

    try:
        result = assign_overlap(db, share=args.share, k=args.k, annotators=args.annotators.split(","),
                                seed=args.seed, assigned_by=getpass.getuser())
    except StorageError as exc:
        raise PlaygroundError(str(exc)) from exc
    print(f"{result.battles} battles chosen, {result.assignments} assignments written "
          f"({', '.join(f'{v} {n}' for v, n in sorted(result.per_voter.items())) or 'none'})"
          + (f"; {result.short} battles have fewer than {args.k} annotators (name more)" if result.short else ""))
    return 0
