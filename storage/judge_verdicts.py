"""Writing and reading a judge model's verdicts (table judge_verdicts, view judge_pair_verdicts).

Kept apart from people's votes: a verdict row is one order (AB or BA) of one battle by one judge,
written once (append-only); the combined verdict per (battle, judge) is a view. What an
inconsistent pair counts as is the reader's choice (`INCONSISTENT_POLICIES`), a tie by default.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from sqlite_utils import Database

from storage.db import StorageError, storage_errors, write_transaction
from storage.migrations import JUDGE_ORDERS, JUDGE_VERDICTS
from storage.records import resolve_times

INCONSISTENT_POLICIES = ("tie", "drop", "keep")
"""What a pair whose two orders disagree counts as: a tie (default), left out, or 'inconsistent'."""


def judge_identity(model_id: str, prompt_id: str) -> str:
    """The voter name of a judge: `judge:<model>@<prompt>`."""
    return f"judge:{model_id}@{prompt_id}"


def record_judge_verdict(db: Database, *, battle_id: int, judge: str, judge_model: str, prompt_id: str,
                         order: str, judge_prompt: str, raw_output: str, label: str | None, verdict: str,
                         judge_model_identity: dict[str, Any] | None = None, finish_reason: str | None = None,
                         sampling: dict[str, Any] | None = None, total_s: float | None = None,
                         tstamp: float | None = None) -> int | None:
    """Store one order's verdict; returns its id, or None when that (battle, judge, order) is
    already stored (a rerun after a kill never writes it twice)."""
    if verdict not in JUDGE_VERDICTS:
        raise StorageError(f"judge verdict {verdict!r} is not one of {', '.join(JUDGE_VERDICTS)}")
    if order not in JUDGE_ORDERS:
        raise StorageError(f"judge order {order!r} is not one of {', '.join(JUDGE_ORDERS)}")
    created_at, ts = resolve_times(tstamp=tstamp)
    with storage_errors(db, "save the judge's verdict"), write_transaction(db):
        exists = db.execute("SELECT 1 FROM judge_verdicts WHERE battle_id = ? AND judge = ? AND judge_order = ?",
                            [battle_id, judge, order]).fetchone()
        if exists:
            return None
        cur = db.execute(
            "INSERT INTO judge_verdicts (created_at, tstamp, battle_id, judge, judge_model, judge_model_identity, "
            "prompt_id, judge_order, judge_prompt, raw_output, label, verdict, finish_reason, sampling, total_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [created_at, ts, battle_id, judge, judge_model,
             json.dumps(judge_model_identity, sort_keys=True) if judge_model_identity is not None else None,
             prompt_id, order, judge_prompt, raw_output, label, verdict, finish_reason,
             json.dumps(sampling, sort_keys=True) if sampling is not None else None, total_s])
        return cur.lastrowid


def judged_orders(db: Database, judge: str) -> set[tuple[int, str]]:
    """(battle_id, order) pairs this judge has already given a verdict on."""
    return {(b, o) for b, o in db.execute(
        "SELECT battle_id, judge_order FROM judge_verdicts WHERE judge = ?", [judge])}


def battles_to_judge(db: Database, judge: str, which: str = "unjudged", limit: int | None = None) -> list[int]:
    """Battle ids to judge, oldest first: `unjudged` (this judge lacks an order), `all`, or
    `anonymous` (unjudged Arena battles, where people voted without seeing names). Forgotten
    battles and answers are never judged."""
    if which not in ("unjudged", "all", "anonymous"):
        raise StorageError(f"--battles {which!r}: choose unjudged, all or anonymous")
    where = ["b.id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'battle')",
             "b.left_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')",
             "b.right_generation_id NOT IN (SELECT target_id FROM tombstones WHERE kind = 'generation')"]
    params: list[Any] = []
    if which in ("unjudged", "anonymous"):
        where.append("(SELECT count(*) FROM judge_verdicts j WHERE j.battle_id = b.id AND j.judge = ?) < 2")
        params.append(judge)
    if which == "anonymous":
        where.append("b.anonymous = 1")
    sql = f"SELECT b.id FROM battles b WHERE {' AND '.join(where)} ORDER BY b.id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [row[0] for row in db.execute(sql, params)]


def pair_verdicts(db: Database, judge: str | None = None, inconsistent: str = "tie") -> list[dict[str, Any]]:
    """Combined verdicts per (battle, judge) with both orders judged; `counted` is what the pair
    counts as under the `inconsistent` policy (None when dropped, and always None when an order
    was unparseable)."""
    if inconsistent not in INCONSISTENT_POLICIES:
        raise StorageError(f"inconsistent={inconsistent!r}: choose {', '.join(INCONSISTENT_POLICIES)}")
    sql = "SELECT * FROM judge_pair_verdicts"
    params: list[Any] = []
    if judge:
        sql += " WHERE judge = ?"
        params.append(judge)
    rows = [dict(r) for r in _rows(db, sql + " ORDER BY battle_id, judge", params)]
    for row in rows:
        if row["consistent"]:
            row["counted"] = row["verdict"]
        elif row["verdict"] == "unparseable":
            row["counted"] = None     # an order without a verdict: never guessed, never counted
        else:
            row["counted"] = {"tie": "tie", "drop": None, "keep": "inconsistent"}[inconsistent]
    return rows


def _rows(db: Database, sql: str, params: Iterable[Any]) -> Iterable[dict[str, Any]]:
    cur = db.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values))
