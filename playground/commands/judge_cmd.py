"""`python app.py judge`: a catalog model judges stored battles in both orders (resumable), each
judged pair becoming the judge's vote (voter `judge:<model>@<prompt>`, apart from people's);
`python app.py judge report [--json]`: how the judges agree with people; `python app.py judge fold`:
turn verdicts stored before judges' votes existed into votes (idempotent)."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

NAME = "judge"


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(NAME, help="a model judges stored battles (both orders); 'judge report': agreement "
                                         "with people")
    p.add_argument("action", nargs="?", choices=("run", "report", "fold"), default="run",
                   help="run (default): judge battles; report: agreement with people's votes; fold: make votes of "
                        "stored verdicts that have none yet (all judges, or --judge MODEL with --prompt)")
    p.add_argument("--judge", default=None, help="catalog id of the judge model (run)")
    p.add_argument("--prompt", default="general", help="judge prompt id (presets/judges; default general)")
    p.add_argument("--battles", choices=("unjudged", "all", "anonymous"), default="unjudged",
                   help="which battles: not yet judged by this judge (default), all, or unjudged anonymous ones")
    p.add_argument("--limit", type=int, default=None, help="at most this many battles")
    p.add_argument("--max-tokens", type=int, default=None, help="judge's token budget (at most the prompt's)")
    p.add_argument("--backend", default=None, help="llama_cpp | transformers | openai_compat (default: the model's first)")
    p.add_argument("--device", default="cpu", help="cpu | gpu | cuda | mps | auto")
    p.add_argument("--base-url", default=None, help="judge behind an OpenAI-compatible server: --judge is then the "
                                                    "served model name (default: the first it lists)")
    p.add_argument("--api-key-env", default=None, help="env var holding the server's API key")
    p.add_argument("--inconsistent", choices=("tie", "drop"), default="tie",
                   help="what a pair whose two orders disagree counts as: its vote (run, fold) and in the report; "
                        "tie (default) or drop (no vote)")
    p.add_argument("--rounds", type=int, default=1000, help="report: bootstrap rounds (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="report: bootstrap seed")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground.commands.export_cmd import require_database
    from playground.errors import PlaygroundError

    if args.limit is not None and args.limit < 1:
        raise PlaygroundError(f"--limit {args.limit}: give a positive number of battles")
    require_database(settings.db_path)
    if args.action == "report":
        return _report(args, settings)
    if args.action == "fold":
        return _fold(args, settings)
    if not args.judge and not args.base_url:
        raise PlaygroundError("judge: name the judge model with --judge MODEL (a catalog id; see python app.py models)")
    return _run(args, settings)


def _report(args: argparse.Namespace, settings: Any) -> int:
    from contextlib import closing

    from playground.judge.report import format_report, judge_report
    from playground.prompting.presets import load_presets
    from storage import open_database

    with closing(open_database(settings.db_path)) as db:
        report = judge_report(db, load_presets(settings.presets_dir), inconsistent=args.inconsistent,
                              rounds=args.rounds, seed=args.seed)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _fold(args: argparse.Namespace, settings: Any) -> int:
    from contextlib import closing

    from storage import open_database
    from storage.judge_verdicts import fold_judge_votes, judge_identity

    judge = judge_identity(args.judge, args.prompt) if args.judge else None
    with closing(open_database(settings.db_path)) as db:
        counts = fold_judge_votes(db, judge, args.inconsistent)
    if args.json:
        print(json.dumps({"judge": judge, "inconsistent": args.inconsistent, **counts}, indent=2))
    else:
        print(f"{judge or 'every judge'}: {counts['written']} votes written, {counts['already']} already voted, "
              f"{counts['inconsistent_dropped']} inconsistent pairs without a vote (--inconsistent drop), "
              f"{counts['unparseable']} pairs with an unparseable order (never a vote)")
    return 0


def _run(args: argparse.Namespace, settings: Any) -> int:
    from playground.context import AppContext
    from playground.judge.runner import judge_battles

    ctx = AppContext.create(settings)
    try:
        model_id = args.judge
        if args.base_url:
            from playground.models.remote import add_remote_model

            model_id = add_remote_model(ctx.catalog, args.base_url, args.judge, api_key_env=args.api_key_env).id

        def progress(done: int, total: int, what: str) -> None:
            width = 30
            filled = int(width * done / total) if total else width
            print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {what:<40}", end="",
                  file=sys.stderr, flush=True)

        report = judge_battles(ctx, settings.db_path, model_id, args.prompt, battles=args.battles, limit=args.limit,
                               max_tokens=args.max_tokens, backend=args.backend, device=args.device,
                               progress=progress, inconsistent=args.inconsistent)
    finally:
        ctx.cache.clear()
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"{report.judge}: {report.battles} battles, {report.judged} orders judged now, "
              f"{report.skipped_done} already judged (skipped), {report.unparseable} unparseable, "
              f"{report.failed} failed, {report.no_reference} without a reference; "
              f"verdicts {report.verdicts}; votes {report.votes.get('written', 0)} written "
              f"(voter {report.judge}; python app.py leaderboard --voters judges); {report.elapsed_s:.1f} s")
    return 0
