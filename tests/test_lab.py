"""The lab end to end on the bundled model: runs stored in SQLite, summary, plots, resume."""
from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.lab import LabConfig, load_items, prepare_lab, run_lab, summarize
from playground.stats import wilson_interval
from playground.lab.plots import write_report
from storage import open_database

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "presets" / "tasks" / "arithmetic-word-problems.jsonl"


def config(**changes) -> LabConfig:
    base = dict(task_path=TASKS, models=("smollm2-135m-instruct",), modes=("zero_shot", "few_shot_cot"),
                limit=3, shots=1, max_tokens=40)
    return LabConfig(**{**base, **changes})


def test_wilson_interval():
    low, high = wilson_interval(0, 3)
    assert low == pytest.approx(0, abs=1e-12) and 0.5 < high < 0.6
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(1 - high)


def test_tiny_real_lab_run_end_to_end(app_ctx, tmp_path):
    db_path = tmp_path / "lab.db"
    job = prepare_lab(app_ctx, config())
    seen = []
    outcome = run_lab(app_ctx, job, db_path, on_progress=seen.append)
    assert outcome.ran == 6 and not outcome.cancelled and not outcome.errors
    assert seen and seen[-1].done == 6
    with open_database(db_path) as db:
        rows = summarize(db, outcome.run_ids)
        items = load_items(db, outcome.run_ids)
    assert {r.mode for r in rows} == {"zero_shot", "few_shot_cot"}
    assert all(r.n == 3 and r.n_params == 134_515_008 for r in rows)
    assert all(r.mean_logprob is not None and r.mean_logprob < 0 for r in rows)
    assert len(items) == 6 and all(i["prompt"] and i["gold"] for i in items)
    report = write_report(rows, items, tmp_path / "out", "tiny")
    for key in ("accuracy_png", "logprob_png"):
        assert report[key].stat().st_size > 5_000
    with report["items_csv"].open(newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == 6


def test_cancel_then_resume_runs_only_what_is_left(app_ctx, tmp_path):
    db_path = tmp_path / "resume.db"
    job = prepare_lab(app_ctx, config(modes=("zero_shot",)))
    cancel = threading.Event()
    first = run_lab(app_ctx, job, db_path, cancel=cancel, on_progress=lambda p: p.done >= 1 and cancel.set())
    assert first.cancelled and first.ran == 1
    second = run_lab(app_ctx, prepare_lab(app_ctx, config(modes=("zero_shot",))), db_path)
    assert second.ran == 2 and second.skipped == 1 and not second.cancelled
    with sqlite3.connect(db_path) as db:
        assert db.execute("select count(*), count(distinct item_index) from lab_results").fetchone() == (3, 3)


@pytest.mark.parametrize("changes, message", [
    (dict(modes=("telepathy",)), "telepathy"),
    (dict(models=("no-such-model",)), "no-such-model"),
    (dict(task_path=Path("/nonexistent/tasks.jsonl")), "tasks.jsonl"),
])
def test_bad_requests_fail_before_anything_runs(app_ctx, changes, message):
    with pytest.raises(PlaygroundError, match=message):
        prepare_lab(app_ctx, config(**changes))


def test_lab_tab_handler(app_ctx):
    from playground.ui.lab_tab import run_lab_view

    views = list(run_lab_view(app_ctx, {"run_id": None}, TASKS.name, None, ["smollm2-135m-instruct"],
                              ["zero_shot"], 2, 0, 1, 32))
    state, view = views[-1]
    assert view.status.startswith("Done") and state["run_id"] is None
    assert list(view.summary["mode"]) == ["zero_shot"] and len(view.items) == 2
    assert view.accuracy is not None and view.summary_csv.is_file()
    _, bad = next(iter(run_lab_view(app_ctx, {}, None, None, ["smollm2-135m-instruct"], ["zero_shot"], 2, 0, 1, 32)))
    assert bad.status.startswith("❌")


def test_lab_tab_drill_down_and_past_runs(app_ctx):
    from playground.ui.lab_tab import item_detail, items_frame, past_runs, run_lab_view, show_runs

    *_, (state, view) = run_lab_view(app_ctx, {"run_id": None}, TASKS.name, None, ["smollm2-135m-instruct"],
                                     ["zero_shot"], 2, 0, 1, 32)   # stored by the test above: nothing reruns
    db_path = app_ctx.settings.db_path
    run_id = state["run_ids"][0]
    assert view.status.startswith("Done") and [c[1] for c in view.run_choices][1:] == state["run_ids"]
    first = items_frame(db_path, state["run_ids"], run_id).iloc[0]
    prompt, output, verdict = item_detail(db_path, first["run_id"], first["item_index"])
    assert "<|im_start|>" in prompt and output and f"gold `{first['gold']}`" in verdict
    assert item_detail(db_path, run_id, 999) == ("", "", "")
    history = past_runs(db_path)
    assert run_id in list(history["run"]) and history.iloc[0]["run"] >= run_id
    state2, shown = show_runs(db_path, {}, [run_id])
    assert state2["run_ids"] == [run_id] and list(shown.summary["mode"]) == ["zero_shot"]


def test_ctrl_c_keeps_finished_items(app_ctx, tmp_path):
    db_path = tmp_path / "interrupt.db"
    job = prepare_lab(app_ctx, config(modes=("zero_shot",), limit=2))

    def interrupt(p):
        if p.done >= 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_lab(app_ctx, job, db_path, on_progress=interrupt)
    with sqlite3.connect(db_path) as db:
        assert db.execute("select status from lab_runs").fetchall() == [("cancelled",)]
        assert db.execute("select count(*) from lab_results").fetchone() == (1,)


@pytest.mark.parametrize("argv, message", [
    (["--modes", "zero_shot,telepathy"], "telepathy"),
    (["--models", "no-such-model"], "no-such-model"),
    (["--tasks", "/nonexistent/t.jsonl"], "t.jsonl"),
])
def test_lab_command_rejects_bad_input_before_running(tmp_path, capsys, argv, message):
    from playground.cli import main

    args = ["lab", "--tasks", str(TASKS), "--db", str(tmp_path / "x.db"), "--out", str(tmp_path / "out"), *argv]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_lab_command(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "lab", "--tasks", str(TASKS), "--modes", "zero_shot",
                          "--limit", "2", "--max-tokens", "24", "--db", str(tmp_path / "cli.db"),
                          "--out", str(tmp_path / "out"), "--json"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "zero_shot" in out.stdout
    assert list((tmp_path / "out").glob("*-accuracy.png"))
