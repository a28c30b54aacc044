"""`python app.py leaderboard`: Bradley-Terry ratings with 95% CIs, online Elo and counts."""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from playground.commands.export_cmd import require_database
from playground.dates import parse_when
from playground.terminal import printable

GROUPINGS = ("auto", "model", "mode", "model+mode")

NAME = "leaderboard"


def add_parser(subparsers: Any) -> None:
    """Register `leaderboard` on the CLI's subparsers."""
    p = subparsers.add_parser(NAME, help="rank contestants from the votes (Bradley-Terry + bootstrap CIs)")
    p.add_argument("--by", choices=GROUPINGS, default="auto",
                   help="what a contestant is (default auto: model, or model+mode when battles compare modes "
                        "of one model)")
    p.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds for the CIs (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--include-named", action="store_true",
                   help="also rank named Playground comparisons (default: anonymous battles only, as Chatbot Arena)")
    p.add_argument("--voters", choices=("people", "judges", "both"), default="people",
                   help="whose votes: people's (default), judge models' (python app.py judge) or both")
    p.add_argument("--tie-model", choices=("half", "davidson"), default="half",
                   help="a tie is half a win (default) or modelled with Davidson's tie model")
    p.add_argument("--category", help="only battles of this category (a tag or a prompting preset's task family)")
    p.add_argument("--since", help="only votes at or after this time (ISO or epoch seconds)")
    p.add_argument("--until", help="only votes before this time; a bare date includes that day")
    p.add_argument("--both-bad", choices=("tie", "exclude"), default="tie",
                   help="count 'both bad' votes as ties (default, as Chatbot Arena) or leave them out")
    p.add_argument("--length-control", action="store_true", help="add ratings controlled for answer length")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list (warnings go to stderr)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground.errors import PlaygroundError
    from playground.leaderboard import (BoardOptions, battles_shown, has_votes, rank_votes, rows_as_dicts,
                                        tie_model_text)
    from playground.prompting.presets import preset_families
    from playground.ranking import NO_BATTLES, RankingError
    from storage import open_database
    from storage.judge_verdicts import verdict_counts

    since, until = parse_when(args.since), parse_when(args.until, end_of_day=True)
    presets_dir = getattr(settings, "presets_dir", None)
    families = preset_families(presets_dir)
    notes: list[str] = []
    voters = getattr(args, "voters", "people")
    shows = battles_shown(args.include_named, voters=voters)
    shows += "" if voters != "people" else " (--voters judges|both adds judges)"
    try:
        require_database(settings.db_path)
        db = open_database(settings.db_path)
        try:
            options = BoardOptions(by=args.by, include_named=args.include_named, since=since, until=until,
                                   both_bad=args.both_bad, length_control=args.length_control, tie_model=args.tie_model,
                                   category=args.category, voters=voters, rounds=args.rounds, seed=args.seed)
            ranked = rank_votes(db, options, families, shows=shows)
            notes += [ranked.note.replace("**", "")] if ranked.note else []
            named_only = ranked.board is None and ranked.named_only and has_votes(db, voters)
            no_judge_votes = voters == "judges" and not has_votes(db, voters)
            judged, unparseable = verdict_counts(db) if no_judge_votes else (0, 0)
        finally:
            db.close()
        if judged:
            print(f"no battles to rank from judges: the judge produced no usable verdicts ({unparseable} of {judged} "
                  "judged orders were unparseable; a pair votes only when both orders parse); see python app.py "
                  "judge report, and try another judge prompt or model", file=sys.stderr)
            return 1
        if named_only:
            print("no anonymous battles to rank: every vote is a named Playground comparison; add --include-named "
                  "to rank them, or vote in the Arena tab", file=sys.stderr)
            return 1
        if ranked.board is None and args.category:
            print(f"no battles in category {args.category!r}; run without --category to rank them all",
                  file=sys.stderr)
            return 1
        if ranked.board is None:
            raise RankingError(NO_BATTLES)
        board = ranked.board
    except PlaygroundError as exc:  # no database, no battles, unreadable file: nothing to rank
        print(f"{exc}", file=sys.stderr)
        if NO_BATTLES in str(exc):
            print("next: open the app (python app.py), ask a question in the Arena tab and vote", file=sys.stderr)
        return 1
    rows = rows_as_dicts(board)
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    else:
        for note in notes:
            print(note)
        print(format_table(rows))
        print(f"\n{board.n_battles} battles ({shows}); rating = Bradley-Terry on the Elo scale (mean 1000), "
              f"95% bootstrap CI over {board.rounds} rounds; rank = 1 + contestants whose CI is entirely above; "
              f"{tie_model_text(board)}.")
    for note in notes if args.json else []:
        print(f"note: {note}", file=sys.stderr)
    for warning in board.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def format_table(rows: list[dict[str, Any]]) -> str:
    """Aligned text table for the terminal."""
    header = ["RANK", "CONTESTANT", "RATING", "95% CI", "ELO", "BATTLES", "W/L/T", "WIN%"]
    has_lc = bool(rows) and "rating_lc" in rows[0]
    header += ["RATING(LC)", "RANK(LC)"] if has_lc else []
    table = [header]
    for r in rows:
        line = [_num(r["rank"]), printable(r["contestant"]), _num(r["rating"]), f"{_num(r['ci_low'])}..{_num(r['ci_high'])}",
                _num(r["elo"]), str(r["battles"]), f"{r['wins']}/{r['losses']}/{r['ties']}",
                _num(None if r["win_rate"] is None else 100 * r["win_rate"], 1)]
        table.append(line + ([_num(r["rating_lc"]), _num(r["rank_lc"])] if has_lc else []))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"
