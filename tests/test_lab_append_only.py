"""Lab runs are append-only: a re-run never rewrites an earlier run's rows or changes its figures."""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from playground.lab import LabConfig, prepare_lab, run_lab, summarize
from storage import open_database

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "presets" / "tasks" / "arithmetic-word-problems.jsonl"


def config(limit: int) -> LabConfig:
    return LabConfig(task_path=TASKS, models=("smollm2-135m-instruct",), modes=("zero_shot",), limit=limit,
                     max_tokens=16, logprob=False)


def snapshot(db_path: Path, run_id: int) -> tuple[list, list]:
    with sqlite3.connect(db_path) as db:
        run = db.execute("SELECT id, created_at, name, task_file, n_items, config_key FROM lab_runs WHERE id = ?",
                         [run_id]).fetchall()
        items = db.execute("SELECT * FROM lab_results WHERE run_id = ? ORDER BY id", [run_id]).fetchall()
    return run, items


def test_a_rerun_with_more_items_leaves_the_earlier_run_as_it_was(app_ctx, tmp_path):
    db_path = tmp_path / "append.db"
    first = run_lab(app_ctx, prepare_lab(app_ctx, config(limit=2)), db_path)
    (run_a,) = first.run_ids
    with open_database(db_path) as db:
        (before,) = summarize(db, [run_a])
    rows_before = snapshot(db_path, run_a)

    second = run_lab(app_ctx, prepare_lab(app_ctx, config(limit=3)), db_path)
    (run_b,) = second.run_ids
    assert second.ran == 1 and second.skipped == 2          # resumed: only the new item ran
    assert run_b != run_a                                     # ... as a new run
    with open_database(db_path) as db:
        (after,) = summarize(db, [run_a])
        (later,) = summarize(db, [run_b])
    assert (after.n, after.n_correct, after.accuracy) == (before.n, before.n_correct, before.accuracy) == (
        2, before.n_correct, before.accuracy)
    assert later.n == 3
    assert snapshot(db_path, run_a) == rows_before


def test_nothing_to_do_adds_no_run(app_ctx, tmp_path):
    db_path = tmp_path / "again.db"
    first = run_lab(app_ctx, prepare_lab(app_ctx, config(limit=2)), db_path)
    again = run_lab(app_ctx, prepare_lab(app_ctx, config(limit=2)), db_path)
    assert again.ran == 0 and again.run_ids == first.run_ids


@pytest.fixture(scope="module")
def one_run_db(app_ctx, tmp_path_factory) -> Path:
    """A database with one finished one-item run (made once, copied per test)."""
    db_path = tmp_path_factory.mktemp("refuse") / "one.db"
    run_lab(app_ctx, prepare_lab(app_ctx, config(limit=1)), db_path)
    return db_path


@pytest.mark.parametrize("statement", [
    "UPDATE lab_results SET correct = 1 - correct",
    "DELETE FROM lab_results",
    "INSERT OR REPLACE INTO lab_results (id, run_id, item_index, question, gold, correct, created_at, tstamp) "
    "SELECT id, run_id, item_index, question, gold, 1, created_at, tstamp FROM lab_results",
    "UPDATE lab_runs SET n_items = n_items + 1",
    "UPDATE lab_runs SET config_key = 'x'",
    "DELETE FROM lab_runs",
])
def test_the_database_refuses_rewrites(one_run_db, tmp_path, statement):
    db_path = tmp_path / "refuse.db"
    shutil.copy(one_run_db, db_path)
    with sqlite3.connect(db_path) as db:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute(statement)
