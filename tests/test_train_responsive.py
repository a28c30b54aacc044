"""Training does not starve the web server: a vote is stored within 1 s (median of several)
while `train dpo` runs, through the real parts.

A real server process on a real SQLite file; the votes are real Playground rounds and votes
through the public API (gradio_client), on the default model. Training is a real DPO run on the
bundled model (2 steps, tiny lengths) on those votes, started both ways a team runs it: the
`python app.py train dpo` command beside the server, and the Train tab of the server itself.
Each vote is timed from the click to the database row (the API answers after the row is
committed); the bound is on the median of the votes cast while training steps run.
"""
from __future__ import annotations

import re
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser_support import REPO
from tests.test_load import endpoint_params, grid_round, new_client, start_app, tiny_presets, vote

pytestmark = pytest.mark.slow

BOUND_S = 1.0
VOTES_WHILE_TRAINING = 5
QUESTIONS = [f"What is {a} plus {b}?" for a, b in ((2, 3), (4, 4), (7, 1), (5, 6), (9, 2), (3, 8), (6, 6), (1, 9))]
TRAIN_ARGS = ["--base", "smollm2-135m-instruct", "--max-steps", "400", "--batch-size", "2", "--max-length", "48",
              "--include-truncated"]


def timed_vote(client, params, question: str, db: Path) -> float:
    """A two-pane round (not timed), then a vote timed until its row is in the database."""
    grid_round(client, params, question, 2, ["zero_shot", "few_shot"])
    start = time.perf_counter()
    vote_id, status = vote(client, "left")
    took = time.perf_counter() - start
    assert vote_id is not None, status
    with sqlite3.connect(db, timeout=30) as conn:
        assert conn.execute("SELECT winner FROM votes WHERE id = ?", (vote_id,)).fetchone() == ("left",)
    return took


TRAINING = r"scoring held-out pairs|step \d+"   # the model is loaded and torch computes: scoring, then steps


def wait_for(log: Path, pattern: str, proc: subprocess.Popen | None = None, timeout: float = 900) -> None:
    """Until the log shows the training run computing (it loads the model first)."""
    end = time.time() + timeout
    while time.time() < end:
        if re.search(pattern, log.read_text(errors="replace")):
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"training ended early:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no training step within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def voting_app(tmp_path_factory):
    """A server with eight real voted rounds: the pairs the training runs on."""
    tmp = tmp_path_factory.mktemp("train-responsive")
    db = tmp / "votes.db"
    app = start_app(db, tiny_presets(tmp), extra=["--models-dir", str(tmp / "models")])
    (tmp / "models").mkdir(exist_ok=True)
    client = new_client(app.url)
    params = endpoint_params(client, "/grid_send")
    quiet = [timed_vote(client, params, q, db) for q in QUESTIONS]
    yield app, client, params, db, tmp, quiet
    client.close()
    app.close()


def test_votes_stay_fast_while_the_train_command_runs(voting_app) -> None:
    app, client, params, db, tmp, quiet = voting_app
    log = tmp / "train-cli.log"
    with log.open("w") as out:
        trainer = subprocess.Popen([sys.executable, "app.py", "train", "dpo", "--db", str(db), "--name", "cli-tuned",
                                    "--models-dir", str(tmp / "models"), *TRAIN_ARGS],
                                   cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(log, TRAINING, trainer)
        busy = [timed_vote(client, params, f"While training, what is {i} times 3?", db)
                for i in range(VOTES_WHILE_TRAINING)]
        still_training = trainer.poll() is None
    finally:
        trainer.terminate()
        trainer.wait(timeout=30)
    print(f"votes without training {sorted(round(x, 3) for x in quiet)}; beside `train dpo` {sorted(round(x, 3) for x in busy)}")
    assert still_training, "training ended before the votes were cast: the test measured nothing"
    assert statistics.median(busy) < BOUND_S, busy


def test_votes_stay_fast_while_the_train_tab_trains(voting_app) -> None:
    """The Train tab trains inside the server process: its thread and torch's run at a lower priority."""
    app, client, params, db, tmp, quiet = voting_app
    trainer = new_client(app.url)
    form = [p.get("parameter_default") for p in endpoint_params(trainer, "/train_dpo")]
    assert len(form) == 17, "the Train tab's inputs changed: update the positions below"
    # base, name, ..., include_truncated (7), ..., max_steps (11), batch (12), max_length (13)
    form[0], form[1], form[7], form[11], form[12], form[13] = "smollm2-135m-instruct", "tab-tuned", True, 400, 2, 64
    job = trainer.submit(*form, api_name="/train_dpo")
    try:
        end = time.time() + 900
        while not any(re.search(TRAINING, str(out)) for out in job.outputs()):   # the status is among them
            assert not job.done(), f"training ended early: {job.outputs()[-1:]}"
            assert time.time() < end, "training did not start computing within 900 s"
            time.sleep(0.5)
        busy = [timed_vote(client, params, f"While the tab trains, what is {i} times 4?", db)
                for i in range(VOTES_WHILE_TRAINING)]
        still_training = not job.done()
    finally:
        trainer.close()
    print(f"votes without training {sorted(round(x, 3) for x in quiet)}; beside the Train tab {sorted(round(x, 3) for x in busy)}")
    assert still_training, "training ended before the votes were cast: the test measured nothing"
    assert statistics.median(busy) < BOUND_S, busy
