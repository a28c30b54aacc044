"""The lab's tables, `lab_runs` and `lab_results` (schema: `m004_lab_tables` and later migrations).

Every read and write of those tables goes through here; the lab (`playground/lab/`) only builds
the rows. One write, one short transaction (`write_transaction`), so a crash loses at most the
item in flight.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlite_utils import Database

from storage.db import write_transaction


def now() -> tuple[str, float]:
    """(ISO time in UTC, epoch seconds): the created_at / tstamp pair every row carries."""
    stamp = time.time()
    return datetime.fromtimestamp(stamp, timezone.utc).isoformat(timespec="seconds"), stamp


def _ids(run_ids: Iterable[int]) -> list[int]:
    return [int(i) for i in dict.fromkeys(run_ids)]


def find_run(db: Database, key: str) -> dict[str, Any] | None:
    """The latest run with this configuration key, if any (the one a re-run resumes)."""
    rows = list(db.query("SELECT * FROM lab_runs WHERE config_key = ? ORDER BY id DESC LIMIT 1", [key]))
    return rows[0] if rows else None


def finished_indices(db: Database, run_id: int) -> set[int]:
    """Items with a stored, error-free result: skipped on resume."""
    return {r["item_index"] for r in db.query(
        "SELECT item_index FROM lab_results WHERE run_id = ? AND error IS NULL", [run_id])}


def insert_run(db: Database, row: dict[str, Any]) -> int:
    """A new run row; returns its id."""
    with write_transaction(db):
        return int(db["lab_runs"].insert(row).last_pk)


def reopen_run(db: Database, run_id: int, changes: dict[str, Any]) -> int:
    """Mark an existing run running again (a resume)."""
    with write_transaction(db):
        db["lab_runs"].update(run_id, {"status": "running", "error": None, **changes})
    return run_id


def insert_result(db: Database, row: dict[str, Any]) -> None:
    """One scored item; a re-run of an errored item replaces its row."""
    with write_transaction(db):
        db["lab_results"].insert(row, replace=True)


def finish_run(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    """Final status and items/s (items over their summed wall time: stable across resumes)."""
    stats = next(db.query("SELECT COUNT(*) AS n, SUM(total_s) AS s FROM lab_results WHERE run_id = ? "
                          "AND error IS NULL", [run_id]))
    speed = stats["n"] / stats["s"] if stats["n"] and stats["s"] else None
    with write_transaction(db):
        db["lab_runs"].update(run_id, {"status": status, "items_per_s": speed, "error": error})


_SUMMARY_SQL = """
SELECT r.id AS run_id, r.name, r.task_file, r.model_id, r.model_n_params, r.mode, r.preset, r.backend,
       r.status, r.items_per_s,
       COUNT(x.id) AS n, COALESCE(SUM(x.correct), 0) AS n_correct,
       COALESCE(SUM(x.error IS NOT NULL), 0) AS n_errors,
       COUNT(x.gold_logprob_mean) AS n_lp, AVG(x.gold_logprob_mean) AS lp_mean,
       AVG(x.gold_logprob_mean * x.gold_logprob_mean) AS lp_sq
FROM lab_runs r LEFT JOIN lab_results x ON x.run_id = r.id AND x.item_index < r.n_items
WHERE r.id IN ({marks})
GROUP BY r.id ORDER BY r.model_n_params, r.model_id, r.id
"""


def summary_rows(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-run aggregates over the run's current items, smallest model first."""
    ids = _ids(run_ids)
    if not ids:
        return []
    return list(db.query(_SUMMARY_SQL.format(marks=", ".join("?" * len(ids))), ids))


def item_rows(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-item results of some runs, in run and item order."""
    ids = _ids(run_ids)
    if not ids:
        return []
    sql = (f"SELECT x.run_id, r.model_id, r.mode, x.item_index, x.question, x.gold, x.extracted, x.correct, "
           f"x.gold_logprob_mean, x.gold_n_tokens, x.n_prompt_tokens, x.n_output_tokens, x.total_s, "
           f"x.finish_reason, x.error, x.prompt, x.output FROM lab_results x JOIN lab_runs r ON r.id = x.run_id "
           f"WHERE x.run_id IN ({', '.join('?' * len(ids))}) AND x.item_index < r.n_items "
           f"ORDER BY x.run_id, x.item_index")
    return list(db.query(sql, ids))


def item_row(db: Database, run_id: int, item_index: int) -> dict[str, Any] | None:
    """One stored item with its run's model and mode, or None."""
    found = list(db.query("SELECT x.*, r.model_id, r.mode FROM lab_results x JOIN lab_runs r ON r.id = x.run_id "
                          "WHERE x.run_id = ? AND x.item_index = ?", [int(run_id), int(item_index)]))
    return found[0] if found else None


def list_runs(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Past runs, newest first, with how many items each has stored."""
    sql = ("SELECT r.id, r.created_at, r.name, r.task_file, r.model_id, r.mode, r.status, r.n_items, "
           "COUNT(x.id) AS n_done, AVG(x.correct) AS accuracy, r.items_per_s "
           "FROM lab_runs r LEFT JOIN lab_results x ON x.run_id = r.id AND x.item_index < r.n_items "
           "GROUP BY r.id ORDER BY r.id DESC LIMIT ?")
    return list(db.query(sql, [int(limit)]))
