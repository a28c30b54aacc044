"""The lab's tables, `lab_runs` and `lab_results` (schema: `m004_lab_tables` and later migrations).

Every read and write of those tables goes through here; the lab (`playground/lab/`) only builds
the rows. One write, one short transaction (`write_transaction`), so a crash loses at most the
item in flight.
"""
from __future__ import annotations

import json
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
    """The latest run with this configuration key, if any."""
    rows = list(db.query("SELECT * FROM lab_runs WHERE config_key = ? ORDER BY id DESC LIMIT 1", [key]))
    return rows[0] if rows else None


def finished_indices(db: Database, key: str) -> set[int]:
    """Items with an error-free result under any run of this configuration: a re-run skips them."""
    return {r["item_index"] for r in db.query(
        "SELECT DISTINCT x.item_index FROM lab_results x JOIN lab_runs r ON r.id = x.run_id "
        "WHERE r.config_key = ? AND x.error IS NULL", [key])}


def insert_run(db: Database, row: dict[str, Any]) -> int:
    """A new run row (status running); returns its id. Runs are never reopened: a re-run is a new row."""
    with write_transaction(db):
        return int(db["lab_runs"].insert(row).last_pk)


def insert_result(db: Database, row: dict[str, Any]) -> None:
    """One scored item, appended (the database refuses to replace a stored one)."""
    with write_transaction(db):
        db["lab_results"].insert(row)


def finish_run(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    """A running run's final status and items/s (items of its view over their summed wall time)."""
    stats = next(db.query(f"SELECT COUNT(*) AS n, SUM(total_s) AS s FROM ({_VIEW_SQL.format(marks='?')}) "
                          "WHERE error IS NULL", [run_id]))
    speed = stats["n"] / stats["s"] if stats["n"] and stats["s"] else None
    with write_transaction(db):
        db["lab_runs"].update(run_id, {"status": status, "items_per_s": speed, "error": error})


# A run's items (its "view"): for each item index below its n_items, the result stored under it or
# under an earlier run of the same configuration (the runs it resumed), the error-free one first,
# else the latest. Rows of later runs have larger run ids, so a run's view, and every figure
# computed from it, never changes once the run is finished.
_VIEW_SQL = """
SELECT * FROM (
  SELECT t.id AS view_run_id, x.*,
         ROW_NUMBER() OVER (PARTITION BY t.id, x.item_index
                            ORDER BY (x.error IS NULL) DESC, x.run_id DESC) AS rk
  FROM lab_runs t
  JOIN lab_runs r ON r.config_key = t.config_key AND r.id <= t.id
  JOIN lab_results x ON x.run_id = r.id AND x.item_index < t.n_items
  WHERE t.id IN ({marks})
) WHERE rk = 1
"""


def view_items(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Every column of each run's items (see _VIEW_SQL), with the run's model and mode, in run and item
    order; `run_id` is the run shown, `source_run_id` the run that stored the row."""
    ids = _ids(run_ids)
    if not ids:
        return []
    sql = (f"SELECT v.*, r.model_id, r.mode FROM ({_VIEW_SQL.format(marks=', '.join('?' * len(ids)))}) v "
           f"JOIN lab_runs r ON r.id = v.view_run_id ORDER BY v.view_run_id, v.item_index")
    rows = []
    for row in db.query(sql, ids):
        row["source_run_id"] = row["run_id"]
        row["run_id"] = row.pop("view_run_id")
        row.pop("rk", None)
        rows.append(row)
    return rows


def runs_by_id(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Run rows, smallest model first."""
    ids = _ids(run_ids)
    if not ids:
        return []
    return list(db.query(f"SELECT * FROM lab_runs WHERE id IN ({', '.join('?' * len(ids))}) "
                         "ORDER BY model_n_params, model_id, id", ids))


ITEM_FIELDS = ("run_id", "model_id", "mode", "item_index", "question", "gold", "extracted", "correct",
               "gold_logprob_mean", "gold_n_tokens", "n_prompt_tokens", "n_output_tokens", "total_s",
               "finish_reason", "error", "prompt", "output")


def item_rows(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-item results of some runs (their views), in run and item order."""
    return [{k: row.get(k) for k in ITEM_FIELDS} for row in view_items(db, run_ids)]


def item_row(db: Database, run_id: int, item_index: int) -> dict[str, Any] | None:
    """One item of a run's view with the run's model and mode, or None."""
    found = [r for r in view_items(db, [int(run_id)]) if r["item_index"] == int(item_index)]
    return found[0] if found else None


def list_runs(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Past runs, newest first, with how many items each has (its view) and their accuracy."""
    runs = list(db.query("SELECT * FROM lab_runs ORDER BY id DESC LIMIT ?", [int(limit)]))
    figures: dict[int, list[int]] = {}
    for row in view_items(db, [r["id"] for r in runs]):
        figures.setdefault(row["run_id"], []).append(int(row["correct"] or 0))
    return [{**r, "n_done": len(figures.get(r["id"], [])),
             "accuracy": (sum(figures[r["id"]]) / len(figures[r["id"]])) if figures.get(r["id"]) else None}
            for r in runs]


def latest_run_ids(db: Database, name: str | None = None) -> list[int]:
    """The latest run of each configuration, of one lab name (default: the name of the newest run)."""
    if name is None:
        newest = list(db.query("SELECT name FROM lab_runs ORDER BY id DESC LIMIT 1"))
        if not newest:
            return []
        name = newest[0]["name"]
    return [r["id"] for r in db.query("SELECT MAX(id) AS id FROM lab_runs WHERE name = ? GROUP BY config_key "
                                      "ORDER BY id", [name])]


def insert_model_stats(db: Database, row: dict[str, Any]) -> int:
    """One model's resource figures for one lab invocation."""
    created_at, tstamp = now()
    with write_transaction(db):
        return int(db["lab_model_stats"].insert({"created_at": created_at, "tstamp": tstamp, **row}).last_pk)


def model_stats(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The resource rows that cover any of these runs, oldest first."""
    wanted = set(_ids(run_ids))
    rows = list(db.query("SELECT * FROM lab_model_stats ORDER BY id"))
    return [r for r in rows if wanted & set(json.loads(r["run_ids"] or "[]"))]
