"""Assignment quotas: a share of the battles judged by k different annotators.

Unit tests on a real SQLite file, then the load test: 8 annotators log in through gradio_client to
the real app process (`python app.py --auth FILE`) and vote at once on their assigned battles
(the Arena tab's New round serves them first); quotas are respected, nothing is lost, and every
annotator's count is exact.
"""
from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

import storage
from playground.auth.users import write_user
from storage import StorageError
from storage.assignments import assign_overlap, next_assignment, quota_status
from tests.browser_support import REPO, AppProcess


def make_battles(db, n: int) -> list[int]:
    ids = []
    for i in range(n):
        conv = [{"role": "user", "content": f"question {i}"}]
        gens = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=conv,
                                                                       output=f"{m} answers {i}"))
                for m in ("model-a", "model-b")]
        ids.append(storage.create_battle(db, left_generation_id=gens[0], right_generation_id=gens[1], anonymous=True,
                                         session_id="seed"))
    return ids


@pytest.fixture
def db(tmp_path: Path):
    database = storage.open_database(tmp_path / "p.db")
    yield database
    database.close()


def test_quota_share_k_and_balance(db):
    battles = make_battles(db, 40)
    storage.record_vote(db, battle_id=battles[0], winner="left", session_id="user:ann/s")
    people = ["ann", "bob", "cy", "dee"]
    report = assign_overlap(db, share=0.25, k=3, annotators=people, seed=1)
    assert report.battles == 10 and report.short == 0
    rows = db.execute("SELECT battle_id, voter FROM assignments").fetchall()
    per_battle: dict[int, set[str]] = {}
    for battle_id, voter in rows:
        per_battle.setdefault(battle_id, set()).add(voter)
    assert len(per_battle) == 10
    for battle_id, voters in per_battle.items():
        already = {"ann"} if battle_id == battles[0] else set()
        assert len(voters | already) == 3 and not (voters & already)        # k different people, voter counted
    counts = Counter(v for _, v in rows)
    assert max(counts.values()) - min(counts.values()) <= 1                  # balanced
    assign_overlap(db, share=0.25, k=3, annotators=people, seed=2)           # a second batch never repeats a pair
    assert db.execute("SELECT count(*) FROM (SELECT battle_id, voter FROM assignments GROUP BY 1, 2 "
                      "HAVING count(*) > 1)").fetchone()[0] == 0


def test_next_assignment_until_voted_and_bad_quotas_refused(db):
    battles = make_battles(db, 4)
    assign_overlap(db, share=1.0, k=2, annotators=["ann", "bob"], seed=0)
    first = next_assignment(db, "ann")
    assert first["open"] == 4 and first["battle_id"] == battles[0]
    storage.record_vote(db, battle_id=first["battle_id"], winner="tie", session_id="user:ann/x")
    assert next_assignment(db, "ann")["battle_id"] == battles[1] and next_assignment(db, "ann")["open"] == 3
    storage.forget(db, reason="test", battles=[battles[1]])
    assert next_assignment(db, "ann")["battle_id"] == battles[2]            # forgotten battles are not served
    assert quota_status(db)["per_voter"]["ann"] == {"assigned": 4, "done": 1}
    for bad, match in ((dict(share=0, k=2), "share"), (dict(share=0.5, k=1), "at least 2"),
                       (dict(share=0.5, k=3), "name at least k")):
        with pytest.raises(StorageError, match=match):
            assign_overlap(db, annotators=["ann", "bob"], **bad)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM assignments")


# ----------------------------------------------------------------------------- load test

ANNOTATORS = [f"annot{i}" for i in range(8)]
PASSWORD = "load-test-password"
N_BATTLES, SHARE, K = 48, 0.5, 3          # 24 battles x 3 annotators = 72 assignments, 9 each


def _client_votes(url: str, name: str, results: dict[str, list], errors: list) -> None:
    from gradio_client import Client

    rng = random.Random(name)
    client = Client(url, auth=(name, PASSWORD), verbose=False)
    try:
        params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/arena_new_round"]
        args = [[] if p.get("label") == "Models" else p.get("parameter_default") for p in params["parameters"]]
        for _ in range(20):
            shown = client.predict(*args, api_name="/arena_new_round")
            status = next((s for s in shown if isinstance(s, str) and ("Assigned battle" in s or "⚠️" in s)), "")
            if "Assigned battle" not in status:
                break
            winner = rng.choice(["left", "right", "tie", "both_bad"])
            first = client.predict("", "", api_name=f"/arena_vote_{winner}")   # note, category tag
            again = client.predict("", "", api_name=f"/arena_vote_{winner}")   # a double click
            results[name].append((winner, first[0], again[0]))
    except Exception as exc:            # reported by the test, with the annotator's name
        errors.append((name, repr(exc)))
    finally:
        client.close()


def test_eight_annotators_vote_at_once_on_assigned_battles(tmp_path: Path):
    users = tmp_path / "users.txt"
    for name in ANNOTATORS:
        write_user(users, name, "annotator", PASSWORD)
    db_path = tmp_path / "playground.db"
    with closing(storage.open_database(db_path)) as db:
        make_battles(db, N_BATTLES)
    assign = subprocess.run([sys.executable, "app.py", "team", "assign", "--share", str(SHARE), "--k", str(K),
                             "--annotators", ",".join(ANNOTATORS), "--seed", "5", "--db", str(db_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert assign.returncode == 0, assign.stderr
    assert "24 battles chosen, 72 assignments written" in assign.stdout, assign.stdout

    app = AppProcess(db_path, extra=["--auth", str(users)])
    results: dict[str, list] = {name: [] for name in ANNOTATORS}
    errors: list = []
    try:
        threads = [threading.Thread(target=_client_votes, args=(app.url, n, results, errors)) for n in ANNOTATORS]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    finally:
        app.close()
    assert not errors, errors
    assert all(len(results[n]) == 9 for n in ANNOTATORS), {n: len(r) for n, r in results.items()}
    for name in ANNOTATORS:
        for winner, first_status, again_status in results[name]:
            assert "Vote saved" in first_status and "already voted" in again_status, (first_status, again_status)

    with closing(storage.open_database(db_path)) as db:
        votes = db.execute("SELECT battle_id, voter, winner FROM votes").fetchall()
        assigned = set(db.execute("SELECT battle_id, voter FROM assignments").fetchall())
        status = quota_status(db)
    assert len(votes) == 72                                                     # nothing lost, nothing twice
    assert {(b, v) for b, v, _ in votes} == assigned                            # exactly the assigned pairs
    per_battle = Counter(b for b, _, _ in votes)
    assert len(per_battle) == 24 and set(per_battle.values()) == {K}            # the quota: k people each
    assert Counter(v for _, v, _ in votes) == {n: 9 for n in ANNOTATORS}        # per-annotator counts exact
    for name in ANNOTATORS:                                                     # each vote is the one clicked
        assert sorted(w for b, v, w in votes if v == name) == sorted(w for w, _, _ in results[name])
    assert status["per_voter"] == {n: {"assigned": 9, "done": 9} for n in ANNOTATORS}
    report = subprocess.run([sys.executable, "app.py", "team", "report", "--json", "--db", str(db_path)],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    team = json.loads(report.stdout)
    assert team["overlapping_battles"] == 24 and team["agreement"]["method"] == "fleiss"
    assert {a["voter"]: a["votes"] for a in team["annotators"]} == {n: 9 for n in ANNOTATORS}
