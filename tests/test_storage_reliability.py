"""No vote is lost: concurrent writers, and a writer killed mid-write."""
from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from storage import (
    GenerationRecord,
    count_votes,
    create_battle,
    insert_generation,
    open_database,
    record_vote,
    write_transaction,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
THREADS, VOTES_PER_THREAD = 8, 1_000


def seed_pairs(path: Path, n_generations: int) -> list[tuple[int, int]]:
    """Finished answers to one question and every unordered pair of them (one battle per pair)."""
    db = open_database(path)
    try:
        ids = [
            insert_generation(db, GenerationRecord(
                model_id=f"model-{i % 5}", mode="zero_shot", output=f"answer {i}",
                conversation=[{"role": "user", "content": "the question"}],
            ))
            for i in range(n_generations)
        ]
    finally:
        db.close()
    return list(itertools.combinations(ids, 2))


def vote_on_pairs(path: Path, pairs: list[tuple[int, int]], thread_no: int,
                  errors: list[BaseException], start: threading.Barrier) -> None:
    """One thread, one connection: battle + vote per transaction for each pair."""
    try:
        db = open_database(path)
        start.wait()
        for left, right in pairs:
            with write_transaction(db):
                battle_id = create_battle(db, left_generation_id=left, right_generation_id=right,
                                          anonymous=True, session_id=f"t{thread_no}",
                                          source="playground")
                result = record_vote(db, battle_id=battle_id, winner="left",
                                     session_id=f"t{thread_no}")
            assert not result.duplicate
        db.close()
    except BaseException as exc:
        errors.append(exc)


def test_8_threads_x_1000_votes_none_lost(tmp_path: Path) -> None:
    path = tmp_path / "votes.db"
    pairs = seed_pairs(path, 130)[: THREADS * VOTES_PER_THREAD]
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)
    threads = [
        threading.Thread(target=vote_on_pairs,
                         args=(path, pairs[i::THREADS], i, errors, start))
        for i in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == [], errors[:3]  # in particular no "database is locked"
    db = open_database(path)
    try:
        assert count_votes(db) == THREADS * VOTES_PER_THREAD
        assert db["battles"].count == THREADS * VOTES_PER_THREAD
        per_thread = db.execute(
            "SELECT session_id, count(*) FROM votes GROUP BY session_id").fetchall()
        assert sorted(per_thread) == [(f"t{i}", VOTES_PER_THREAD) for i in range(THREADS)]
        orphans = db.execute(
            "SELECT count(*) FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
            "WHERE v.id IS NULL").fetchone()[0]
        assert orphans == 0
    finally:
        db.close()


WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from storage import create_battle, open_database, record_vote, write_transaction

db = open_database(sys.argv[2])
ids = [row[0] for row in db.execute("SELECT id FROM generations ORDER BY id")]
for left in ids:
    for right in ids:
        if left == right:
            continue
        with write_transaction(db):
            battle = create_battle(db, left_generation_id=left, right_generation_id=right,
                                   anonymous=True, session_id="child", source="playground")
            vote = record_vote(db, battle_id=battle, winner="right", session_id="child")
        if not vote.duplicate:  # pairs voted on before the last kill are skipped
            print(vote.vote_id, flush=True)  # only after COMMIT returned
"""


def test_writer_killed_mid_write_loses_no_committed_vote(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    seed_pairs(path, 120)  # ~14k pairs: the child is always still writing when killed
    printed: list[int] = []
    for _round in range(3):  # each round continues where the last one was killed
        printed += _run_and_kill_writer(path, wanted=300)

    db = open_database(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
        stored = {row[0] for row in db.execute("SELECT id FROM votes")}
        assert set(printed) <= stored
        assert len(set(printed)) == len(printed) == 900
        half_written = db.execute(
            "SELECT count(*) FROM battles b LEFT JOIN votes v ON v.battle_id = b.id "
            "WHERE v.id IS NULL").fetchone()[0]
        assert half_written == 0  # battle and vote commit together or not at all
    finally:
        db.close()


def _run_and_kill_writer(path: Path, wanted: int) -> list[int]:
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(REPO_ROOT), str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    ids: list[int] = []
    try:
        while len(ids) < wanted:
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"writer stopped early: {child.stderr.read()}")
            ids.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    return ids
