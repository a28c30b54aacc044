"""`python app.py export dpo|kto|battles|leaderboard --out FILE`: training data, Arena battles, rankings."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from playground.dates import parse_when
from playground.errors import PlaygroundError

NAME = "export"
GROUPINGS = ("auto", "model", "mode", "model+mode")


def add_parser(subparsers: Any) -> None:
    """Register `export` on the CLI's subparsers."""
    p = subparsers.add_parser(
        NAME,
        help="export DPO pairs or KTO rows (TRL JSONL), Arena battles JSON or the leaderboard",
        description="dpo: decisive votes as TRL DPOTrainer pairs; kto: TRL KTOTrainer rows (prompt, completion, "
        "label: a decisive vote gives one desirable and one undesirable row, both-bad two undesirable rows, a "
        "tie none); both with <out>.meta.jsonl (per row) and <out>.summary.json (rule and counts). "
        "battles: every voted battle in Chatbot Arena's JSON shape; leaderboard: .csv, .json or .md.",
    )
    p.add_argument("what", choices=("dpo", "kto", "battles", "leaderboard"), help="what to export")
    p.add_argument("--out", type=Path, required=True, help="file to write (replaced if it exists)")
    p.add_argument("--format", choices=("standard", "conversational"), default="standard",
                   help="dpo/kto: plain-text prompt or chat messages (default standard; conversational keeps "
                   "turns; standard leaves out multi-turn pairs and says how many)")
    p.add_argument("--model", help="only battles where either side is this model")
    p.add_argument("--mode", help="only battles where either side used this prompting mode")
    p.add_argument("--since", help="only votes at or after this time (ISO date/time, UTC if no zone, or epoch seconds)")
    p.add_argument("--until", help="only votes before this time; a bare date includes that whole day")
    p.add_argument("--anonymous-only", action="store_true",
                   help="dpo/kto/battles: only blind (anonymous) battles (the leaderboard ranks only those by default)")
    p.add_argument("--include-named", action="store_true",
                   help="leaderboard: also rank named Playground comparisons (default: anonymous battles only, as "
                        "the leaderboard command and tab)")
    p.add_argument("--voters", choices=("people", "judges", "both"), default="people",
                   help="whose votes: people's (default), judge models' (python app.py judge; dpo/kto take only "
                   "pairs both orders agreed on) or both; the summary counts rows per judge")
    p.add_argument("--no-dedupe", action="store_true", help="dpo/kto: keep exact duplicate rows")
    p.add_argument("--agreed-only", action="store_true",
                   help="dpo/kto: only pairs judged by two or more annotators who all gave the same verdict (once)")
    p.add_argument("--no-truncated", action="store_true",
                   help="dpo/kto: leave out answers cut by the token limit (default: kept, counted in the summary)")
    p.add_argument("--by", choices=GROUPINGS, default="auto",
                   help="leaderboard: what a contestant is (default auto: model, or model+mode when battles compare "
                        "modes of one model)")
    p.add_argument("--rounds", type=int, default=1000, help="leaderboard: bootstrap rounds for the CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="leaderboard: bootstrap seed (default 0)")
    p.add_argument("--length-control", action="store_true", help="leaderboard: add length-controlled ratings")
    p.add_argument("--tie-model", choices=("half", "davidson"), default="half",
                   help="leaderboard: a tie is half a win (default) or modelled with Davidson's tie model")
    p.add_argument("--category", help="leaderboard: only battles of this category (a tag or a preset's task family)")
    p.add_argument("--both-bad", choices=("tie", "exclude"), default="tie",
                   help="leaderboard: count 'both bad' votes as ties (default) or leave them out")


def require_database(path: Path) -> None:
    """Exports read an existing database; opening a missing path would silently create an empty one."""
    if not Path(path).exists():
        raise PlaygroundError(f"no database at {path}: vote in the Arena or import battles first "
                              "(or point --db at your database)")


def preference_report(what: str, format: str, result: Any) -> str:
    """The lines printed after a DPO or KTO export: what was written, left out and why."""
    unit = "DPO pairs" if what == "dpo" else "KTO rows"
    lines = [f"wrote {result.written} {unit} ({format}) to {result.path}; metadata in {result.meta_path}, "
             f"rule and counts in {result.summary_path}",
             f"{result.duplicates} duplicates dropped, {result.skipped} votes unusable (no user turn, an empty "
             f"answer or different inputs), {result.truncated} written with an answer cut by the token limit"]
    if result.left_out.get("truncated"):
        lines.append(f"{result.left_out['truncated']} votes left out: an answer was cut by the token limit "
                     "(--no-truncated)")
    if result.left_out.get("multi_turn"):
        lines.append(f"{result.left_out['multi_turn']} multi-turn votes left out: the standard format cannot hold "
                     "several completion messages; use --format conversational")
    disagreement = {k: result.left_out.get(k, 0) for k in ("single_annotator", "annotators_disagree",
                                                             "agreed_pair_repeat")}
    if any(disagreement.values()):
        lines.append(f"--agreed-only: {disagreement['single_annotator']} votes on pairs with one annotator and "
                     f"{disagreement['annotators_disagree']} on pairs whose annotators disagree left out; "
                     f"{disagreement['agreed_pair_repeat']} repeat votes of agreed pairs written once")
    if what == "kto":
        from playground.export import KTO_RULE

        lines.append(f"rule: {KTO_RULE}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground import export  # heavy imports only when used
    from playground.leaderboard import BoardOptions
    from playground.prompting.presets import preset_families
    from playground.ranking import RankingError
    from storage import open_database

    from storage.voters import voter_group_text

    window = {"since": parse_when(args.since), "until": parse_when(args.until, end_of_day=True)}
    voters = getattr(args, "voters", "people")
    include_named = getattr(args, "include_named", False)
    if include_named and args.what != "leaderboard":
        raise PlaygroundError("--include-named applies to the leaderboard; dpo, kto and battles exports take named "
                              "comparisons unless --anonymous-only")
    require_database(settings.db_path)
    db = open_database(settings.db_path)
    try:
        if args.what in ("dpo", "kto"):
            write = export.export_dpo if args.what == "dpo" else export.export_kto
            filters = export.PreferenceFilters(model=args.model, mode=args.mode, anonymous_only=args.anonymous_only,
                                               include_truncated=not getattr(args, "no_truncated", False),
                                               agreed_only=getattr(args, "agreed_only", False), voters=voters,
                                               **window)
            result = write(db, args.out, filters, format=args.format, dedupe=not args.no_dedupe)
            print(preference_report(args.what, args.format, result))
            print(f"votes used: {voter_group_text(voters)}")
        elif args.what == "battles":
            result = export.export_arena_battles(db, args.out, model=args.model, mode=args.mode,
                                                 anonymous_only=args.anonymous_only, voters=voters, **window)
            print(f"wrote {result.written} battles ({voter_group_text(voters)}) to {result.path}")
        else:
            if args.model or args.mode:
                raise PlaygroundError("--model/--mode do not apply to the leaderboard; use --by to group contestants")
            if include_named and args.anonymous_only:
                raise PlaygroundError("--include-named and --anonymous-only contradict each other: the leaderboard "
                                      "ranks anonymous battles only unless --include-named")
            options = BoardOptions(by=args.by, include_named=include_named,
                                   both_bad=getattr(args, "both_bad", "tie"), length_control=args.length_control,
                                   tie_model=getattr(args, "tie_model", "half"), category=getattr(args, "category", None),
                                   voters=voters, rounds=args.rounds, seed=args.seed, **window)
            result = export.export_leaderboard(db, args.out, options, families=preset_families(getattr(settings, "presets_dir", None)))
            print("\n".join(filter(None, [result.note, f"wrote the leaderboard ({result.written} contestants by "
                                                         f"{result.grouping}; {result.shows}) to {result.path}"])))
    except RankingError as exc:
        hint = ("; add --include-named to rank named Playground comparisons too"
                if args.what == "leaderboard" and not include_named else "")
        print(f"nothing to export: {exc}{hint}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if result.written == 0:
        print("nothing matched: no votes with these filters", file=sys.stderr)
        return 1
    return 0
