"""Writing and reading a judge model's verdicts (table judge_verdicts, view judge_pair_verdicts),
and folding them into votes.

A verdict row is one order (AB or BA) of one battle by one judge, written once (append-only);
the combined verdict per (battle, judge) is a view. What an inconsistent pair counts as is the
reader's choice (`INCONSISTENT_POLICIES`), a tie by default.

Votes from a judge (`fold_judge_votes`): a pair judged in both orders becomes a vote of voter
`judge:<model>@<prompt>` (session id the same): its verdict when both orders agree; when they
disagree, a tie (policy `tie`, the default) or no vote (`drop`); never when an order was
unparseable. Kept apart from people's votes by that voter name (storage/voters.py; the
`counted_votes` view is people's only). The fold is idempotent (one vote per voter per pair),
so it is safe to run again: the runner folds each battle as its second order is stored, in the
same transaction, and folds whatever is left at the start of every run; `python app.py judge
fold` folds verdicts stored before votes from judges existed. Votes are append-only: the policy
applies when a vote is written; `python app.py forget --session judge:<model>@<prompt>` hides a
judge's votes.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from sqlite_utils import Database

from storage.db import StorageError, storage_errors, write_transaction
from storage.migrations import JUDGE_ORDERS, JUDGE_VERDICTS, JUDGE_VOTER_GLOB
from storage.records import record_vote, resolve_times

INCONSISTENT_POLICIES = ("tie", "drop", "keep")
"""What a pair whose two orders disagree counts as: a tie (default), left out, or 'inconsistent'."""
VOTE_POLICIES = ("tie", "drop")
"""What an inconsistent pair becomes as a vote: a tie (default) or no vote."""


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


def pair_verdicts(db: Database, judge: str | None = None, inconsistent: str = "tie",
                  battle_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Combined verdicts per (battle, judge) with both orders judged; `counted` is what the pair
    counts as under the `inconsistent` policy (None when dropped, and always None when an order
    was unparseable)."""
    if inconsistent not in INCONSISTENT_POLICIES:
        raise StorageError(f"inconsistent={inconsistent!r}: choose {', '.join(INCONSISTENT_POLICIES)}")
    where: list[str] = []
    params: list[Any] = []
    if judge:
        where.append("judge = ?")
        params.append(judge)
    if battle_ids is not None:
        ids = [int(b) for b in battle_ids]
        where.append(f"battle_id IN ({', '.join('?' * len(ids)) or 'NULL'})")
        params += ids
    sql = "SELECT * FROM judge_pair_verdicts" + (" WHERE " + " AND ".join(where) if where else "")
    rows = [dict(r) for r in _rows(db, sql + " ORDER BY battle_id, judge", params)]
    for row in rows:
        if row["consistent"]:
            row["counted"] = row["verdict"]
        elif row["verdict"] == "unparseable":
            row["counted"] = None     # an order without a verdict: never guessed, never counted
        else:
            row["counted"] = {"tie": "tie", "drop": None, "keep": "inconsistent"}[inconsistent]
    return rows


def fold_judge_votes(db: Database, judge: str | None = None, inconsistent: str = "tie",
                     battle_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Write a vote for every pair a judge judged in both orders that has none yet (idempotent).

    Consistent pairs vote their verdict; inconsistent ones a tie (`tie`) or nothing (`drop`);
    pairs with an unparseable order never vote. Returns counts: written, already (a vote
    existed), inconsistent_dropped, unparseable. One transaction (a savepoint inside a caller's).
    """
    if inconsistent not in VOTE_POLICIES:
        raise StorageError(f"inconsistent pairs as votes: {inconsistent!r}; choose tie or drop")
    counts = dict.fromkeys(("written", "already", "inconsistent_dropped", "unparseable"), 0)
    with storage_errors(db, "store the judge's votes"), write_transaction(db):
        rows = pair_verdicts(db, judge, inconsistent, battle_ids)
        wanted = {r["battle_id"] for r in rows}
        voted = {(b, v) for b, v in db.execute(
            f"SELECT battle_id, voter FROM votes WHERE voter GLOB '{JUDGE_VOTER_GLOB}'"
            + (" AND voter = ?" if judge else ""), [judge] if judge else []) if b in wanted}
        for row in rows:
            if (row["battle_id"], row["judge"]) in voted:
                counts["already"] += 1
                continue
            if row["counted"] is None:
                counts["unparseable" if row["verdict"] == "unparseable" else "inconsistent_dropped"] += 1
                continue
            note = (f"judge, both orders agree ({row['verdict']})" if row["consistent"] else
                    f"judge, orders disagree (AB {row['ab_verdict']}, BA {row['ba_verdict']}): counted as a tie")
            result = record_vote(db, battle_id=row["battle_id"], winner=row["counted"], session_id=row["judge"],
                                 voter=row["judge"], note=note, tstamp=row["tstamp"])
            counts["already" if result.duplicate else "written"] += 1
    return counts


def verdict_counts(db: Database) -> tuple[int, int]:
    """(orders judged, of which unparseable) over every judge: what a reader is told when judges cast no vote."""
    orders, unparseable = db.execute(
        "SELECT count(*), coalesce(sum(verdict = 'unparseable'), 0) FROM judge_verdicts").fetchone()
    return int(orders), int(unparseable)


def judge_vote(db: Database, battle_id: int, judge: str) -> dict[str, Any] | None:
    """The counted vote this judge gave this battle ({id, winner, note}), or None."""
    row = db.execute("SELECT id, winner, note FROM counted_votes_all WHERE battle_id = ? AND voter = ?",
                     [battle_id, judge]).fetchone()
    return None if row is None else {"id": row[0], "winner": row[1], "note": row[2]}


def _rows(db: Database, sql: str, params: Iterable[Any]) -> Iterable[dict[str, Any]]:
    cur = db.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    for values in cur:
        yield dict(zip(names, values, strict=True))
