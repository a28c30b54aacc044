"""One way from the votes in the database to a leaderboard: the tab, `python app.py leaderboard` and the
exported leaderboard file all call `rank_votes` with the same options, so they rank the same battles
the same way (tie model and category included).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlite_utils import Database

from playground.leaderboard.board import Leaderboard, battles_shown, build_leaderboard
from playground.leaderboard.load import GroupBy, has_anonymous_votes, select_battles
from playground.ranking import BothBad


@dataclass(frozen=True)
class BoardOptions:
    """Which battles a leaderboard ranks and how: `by` (what a contestant is), blind battles only
    unless `include_named`, the vote window (epoch seconds, `since <= t < until`), both-bad votes as
    ties or left out, length control, the tie model ("half" or "davidson"), one category (a tag or a
    preset's task family), whose votes (`voters`), bootstrap rounds and seed."""

    by: GroupBy = "auto"
    include_named: bool = False
    since: float | None = None
    until: float | None = None
    both_bad: BothBad = "tie"
    length_control: bool = False
    tie_model: str = "half"
    category: str | None = None
    voters: str = "people"
    rounds: int = 1000
    seed: int | None = 0


@dataclass(frozen=True)
class RankedVotes:
    """The leaderboard (None when no battle matched), what 'auto' grouping chose ('' when nothing to say),
    and whether nothing matched only because every vote is a named comparison."""

    board: Leaderboard | None
    note: str = ""
    named_only: bool = False


def rank_votes(db: Database, options: BoardOptions, families: Mapping[str, str] | None = None,
               shows: str | None = None) -> RankedVotes:
    """Select the battles under `options` and rank them. `families` (preset id -> task family) lets a
    category name a family; `shows` overrides the 'which battles' sentence the board carries."""
    chosen = select_battles(db, by=options.by, include_named=options.include_named, since=options.since,
                            until=options.until, with_lengths=options.length_control, category=options.category or None,
                            families=families, voters=options.voters)
    if len(chosen.battles) == 0:
        named_only = not options.include_named and not has_anonymous_votes(db, options.voters)
        return RankedVotes(None, chosen.note, named_only)
    board = build_leaderboard(chosen.battles, rounds=options.rounds, seed=options.seed, both_bad=options.both_bad,
                              length_control=options.length_control, tie_model=options.tie_model,
                              shows=battles_shown(options.include_named, voters=options.voters) if shows is None
                              else shows, blind=chosen.blind, grouping=chosen.grouping)
    return RankedVotes(board, chosen.note)
