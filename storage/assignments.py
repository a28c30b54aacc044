"""Assignment quotas: a chosen share of battles judged by k different annotators.

`assign_overlap` picks `share` of the judgeable battles (not forgotten) at random and gives each
enough annotators that k different people judge it: voters who already judged it count, the rest
are the least-loaded annotators (fewest open assignments, then fewest votes; random among equals),
never someone who already judged or was assigned it. Assignments are rows of `assignments` (m021,
append-only); one is *done* when that voter's vote on the battle exists, so a retry or a second
tab never counts twice (votes are one per pair per voter). `next_assignment` serves a voter their
oldest open assignment: the Arena tab shows it before drawing a new pair.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlite_utils import Database

from storage.db import StorageError, storage_errors, write_transaction
from storage.records import resolve_times

_LIVE_BATTLE_SQL = (
    "b.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'battle') "
    "AND b.left_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation') "
    "AND b.right_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')")
_OPEN_SQL = "NOT EXISTS (SELECT 1 FROM votes v WHERE v.battle_id = a.battle_id AND v.voter = a.voter)"


@dataclass(frozen=True)
class AssignReport:
    """What `assign_overlap` wrote."""

    battles: int                 # battles chosen for overlap
    assignments: int             # rows written
    per_voter: dict[str, int]    # new assignments per annotator
    short: int                   # battles left with fewer than k annotators (not enough people)


def assign_overlap(db: Database, *, share: float, k: int, annotators: Sequence[str], seed: int | None = None,
                   assigned_by: str = "", batch: str = "") -> AssignReport:
    """Assign `share` of the live battles to k different annotators each (see the module docstring)."""
    people = list(dict.fromkeys(a.strip() for a in annotators if a and a.strip()))
    if not 0 < share <= 1:
        raise StorageError(f"share must be in (0, 1], got {share}: e.g. 0.1 for 10% of the battles")
    if k < 2:
        raise StorageError(f"k must be at least 2 (k different annotators judge each chosen battle), got {k}")
    if len(people) < k:
        raise StorageError(f"{len(people)} annotator(s) named and k={k}: name at least k annotators")
    rng = random.Random(seed)
    with storage_errors(db, "write the assignments"), write_transaction(db):
        battles = [r[0] for r in db.execute(f"SELECT b.id FROM battles b WHERE {_LIVE_BATTLE_SQL} ORDER BY b.id")]
        chosen = sorted(rng.sample(battles, round(share * len(battles))))
        judged: dict[int, set[str]] = {}
        for battle_id, voter in db.execute("SELECT battle_id, voter FROM votes"):
            judged.setdefault(battle_id, set()).add(voter)
        for battle_id, voter in db.execute("SELECT battle_id, voter FROM assignments"):
            judged.setdefault(battle_id, set()).add(voter)
        load = Counter(dict(db.execute(f"SELECT a.voter, count(*) FROM assignments a WHERE {_OPEN_SQL} "
                                       "GROUP BY a.voter").fetchall()))
        votes = Counter(dict(db.execute("SELECT voter, count(*) FROM votes GROUP BY voter").fetchall()))
        created_at, tstamp = resolve_times()
        rows, per_voter, short = [], Counter(), 0
        for battle_id in chosen:
            already = judged.get(battle_id, set())
            free = [p for p in people if p not in already]
            rng.shuffle(free)
            free.sort(key=lambda p: (load[p], votes[p]))
            picked = free[:max(0, k - len(already))]
            short += len(already) + len(picked) < k
            for voter in picked:
                load[voter] += 1
                per_voter[voter] += 1
                rows.append((battle_id, voter, created_at, tstamp, assigned_by, batch))
        db.conn.executemany("INSERT INTO assignments (battle_id, voter, created_at, tstamp, assigned_by, batch) "
                            "VALUES (?, ?, ?, ?, ?, ?)", rows)
    return AssignReport(len(chosen), len(rows), dict(per_voter), short)


def next_assignment(db: Database, voter: str) -> dict[str, Any] | None:
    """The voter's oldest open assignment on a live battle: {assignment_id, battle_id, open}, or None."""
    rows = db.execute(
        f"SELECT a.id, a.battle_id FROM assignments a JOIN battles b ON b.id = a.battle_id "
        f"WHERE a.voter = ? AND {_OPEN_SQL} AND {_LIVE_BATTLE_SQL} ORDER BY a.id", [voter]).fetchall()
    if not rows:
        return None
    return {"assignment_id": int(rows[0][0]), "battle_id": int(rows[0][1]), "open": len(rows)}


def quota_status(db: Database) -> dict[str, Any]:
    """Assigned battles and how far along they are: per voter (assigned, done) and per battle."""
    per_voter = {v: {"assigned": int(n), "done": int(d)} for v, n, d in db.execute(
        f"SELECT a.voter, count(*), sum(CASE WHEN {_OPEN_SQL} THEN 0 ELSE 1 END) FROM assignments a "
        "GROUP BY a.voter ORDER BY a.voter")}
    battles = db.execute(
        "SELECT count(DISTINCT a.battle_id) FROM assignments a").fetchone()[0]
    return {"assigned_battles": int(battles), "per_voter": per_voter}
