"""The database under hostile and heavy use: REPLACE against append-only tables, imports that never
lock people out, import workers that die with their parent, rows no parser can take, many contestants,
names that carry terminal escapes."""
from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import (GenerationRecord, create_battle, forget, insert_generation, open_database, record_vote,
                     write_transaction)
from storage.arena_pool import set_arena_pool
from storage.judge_verdicts import record_judge_verdict
from storage.migrations import APPEND_ONLY_TABLES

REPO_ROOT = Path(__file__).resolve().parent.parent


def _seed_votes(path: Path, n_answers: int = 4) -> list[int]:
    """Finished answers to one question, a battle and a vote on each neighbouring pair; the vote ids."""
    db = open_database(path)
    try:
        ids = [insert_generation(db, GenerationRecord(
            model_id=f"model-{i}", mode="zero_shot", output=f"answer {i}",
            conversation=[{"role": "user", "content": "the question"}])) for i in range(n_answers)]
        votes = []
        for left, right in zip(ids, ids[1:], strict=False):
            with write_transaction(db):
                battle = create_battle(db, left_generation_id=left, right_generation_id=right, anonymous=True,
                                       session_id="user:ada/s1", source="playground")
                votes.append(record_vote(db, battle_id=battle, winner="left", session_id="user:ada/s1").vote_id)
        forget(db, votes=[votes[-1]], reason="test")
        set_arena_pool(db, ["model-0", "model-1"])
        record_judge_verdict(db, battle_id=1, judge="judge:m@p", judge_model="m", prompt_id="p", order="AB",
                             judge_prompt="which?", raw_output="A", label="A", verdict="left")
    finally:
        db.close()
    return votes


def _fill_empty(conn: sqlite3.Connection, table: str) -> None:
    """One plain row in a table the seed left empty (foreign keys off: only the key rule is under test)."""
    if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
        return
    columns = [c for c in conn.execute(f"PRAGMA table_info({table})") if not c[5]]
    values = [1 if c[2].upper() in ("INTEGER", "FLOAT", "REAL") else "left" for c in columns]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute(f"INSERT INTO {table} ({', '.join(c[1] for c in columns)}) VALUES ({', '.join('?' * len(values))})",
                 values)
    conn.commit()


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_replace_is_refused_on_every_append_only_table(tmp_path: Path, table: str) -> None:
    path = tmp_path / "p.db"
    _seed_votes(path)
    conn = sqlite3.connect(path)  # any writer: a raw connection with SQLite's defaults (recursive_triggers off)
    _fill_empty(conn, table)
    before = conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()
    for statement in (f"INSERT OR REPLACE INTO {table} SELECT * FROM {table} LIMIT 1",
                      f"REPLACE INTO {table} SELECT * FROM {table} LIMIT 1"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(statement)
        conn.rollback()
    assert conn.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall() == before
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_vote_cannot_change_owner_or_verdict_by_replace_or_upsert(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    vote_id = _seed_votes(path)[0]
    conn = sqlite3.connect(path)
    battle, created, tstamp = conn.execute("SELECT battle_id, created_at, tstamp FROM votes WHERE id = ?",
                                           [vote_id]).fetchone()
    attempts = [  # the same id; a new id on the same (battle, voter) key; an upsert
        ("INSERT OR REPLACE INTO votes (id, battle_id, winner, session_id, created_at, tstamp, voter) "
         "VALUES (?, ?, 'right', 'user:mallory/x', ?, ?, 'mallory')", [vote_id, battle, created, tstamp]),
        ("REPLACE INTO votes (battle_id, winner, session_id, created_at, tstamp, voter) "
         "VALUES (?, 'right', 'user:ada/s1', ?, ?, 'ada')", [battle, created, tstamp]),
        ("INSERT INTO votes (id, battle_id, winner, session_id, created_at, tstamp, voter) "
         "VALUES (?, ?, 'right', 'x', ?, ?, 'ada') ON CONFLICT(id) DO UPDATE SET winner = 'right'",
         [vote_id, battle, created, tstamp]),
    ]
    for sql, params in attempts:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql, params)
        conn.rollback()
    assert conn.execute("SELECT winner, voter FROM votes WHERE id = ?", [vote_id]).fetchone() == ("left", "ada")
    gen_id = conn.execute("SELECT left_generation_id FROM battles WHERE id = ?", [battle]).fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):  # a generation rewritten
        conn.execute("INSERT OR REPLACE INTO generations SELECT * FROM generations WHERE id = ?", [gen_id])


def test_app_writes_still_work_with_the_replace_guard(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    votes = _seed_votes(path, n_answers=5)
    assert len(votes) == 4
    db = open_database(path)
    try:
        battle = db.execute("SELECT battle_id FROM votes WHERE id = ?", [votes[0]]).fetchone()[0]
        with write_transaction(db):  # a second voter on the same battle: a new key, accepted
            second = record_vote(db, battle_id=battle, winner="tie", session_id="user:ben/s2")
        with write_transaction(db):  # the same voter again: the first vote comes back, nothing replaced
            again = record_vote(db, battle_id=battle, winner="right", session_id="user:ada/s1")
        assert not second.duplicate and again.duplicate and again.vote_id == votes[0]
    finally:
        db.close()


# ---------------------------------------------------------------- rows no parser can take

GOOD_ROW = '{"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": 1682351591}'
HOSTILE_ROWS = {  # each a row of its own, surrounded by good rows
    "260 levels of nesting": '{"model_a": "a", "model_b": "b", "winner": "tie", "x": ' + "[" * 260 + "]" * 260 + "}",
    "a 100k-deep array": "[" * 100_000 + "]" * 100_000,
    "a 400-digit tstamp": '{"model_a": "a", "model_b": "b", "winner": "tie", "tstamp": ' + "9" * 400 + "}",
    "a 5000-digit question_id": '{"model_a": "a", "model_b": "b", "winner": "tie", "question_id": ' + "7" * 5000 + "}",
}


@pytest.mark.parametrize("case", HOSTILE_ROWS)
def test_a_hostile_jsonl_row_is_skipped_by_line_and_the_good_rows_are_imported(tmp_path: Path, case: str) -> None:
    from storage import count_votes, import_arena_battles

    source = tmp_path / "battles.jsonl"
    good = [GOOD_ROW.replace("1682351591", str(1682351591 + i)) for i in range(4)]
    source.write_text("\n".join([good[0], good[1], HOSTILE_ROWS[case], good[2], good[3]]) + "\n")
    db = open_database(tmp_path / "p.db")
    try:
        report = import_arena_battles(db, source, workers=0)
        assert report.imported == 4 == count_votes(db)
    finally:
        db.close()
    assert [e.location for e in report.errors] == ["line 3"]
    assert re.search(r"nested more than 254 levels|\d+ digits", report.errors[0].message), report.errors[0].message


@pytest.mark.parametrize("case", ["260 levels of nesting", "a 400-digit tstamp", "a 5000-digit question_id"])
def test_a_hostile_row_in_a_json_array_is_skipped_by_index(tmp_path: Path, case: str) -> None:
    from storage import import_arena_battles

    source = tmp_path / "battles.json"
    source.write_text("[" + ",".join([GOOD_ROW, HOSTILE_ROWS[case], GOOD_ROW.replace("91}", "92}")]) + "]")
    db = open_database(tmp_path / "p.db")
    try:
        report = import_arena_battles(db, source)
    finally:
        db.close()
    assert report.imported == 2 and [e.location for e in report.errors] == ["index 1"], report


def test_a_json_array_too_deep_to_read_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    from storage import ImportFileError, import_arena_battles

    source = tmp_path / "battles.json"
    source.write_text("[" + GOOD_ROW + "," + HOSTILE_ROWS["a 100k-deep array"] + "]")
    db = open_database(tmp_path / "p.db")
    try:
        with pytest.raises(ImportFileError, match="nested about a thousand levels deep.*JSONL"):
            import_arena_battles(db, source)
    finally:
        db.close()


def test_the_cli_reports_every_hostile_row_by_line_and_imports_the_rest(tmp_path: Path) -> None:
    source = tmp_path / "battles.jsonl"
    lines = [GOOD_ROW] + list(HOSTILE_ROWS.values()) + [GOOD_ROW.replace("91}", "92}")]
    source.write_text("\n".join(lines) + "\n")
    done = subprocess.run([sys.executable, "app.py", "import", "battles", str(source), "--db", str(tmp_path / "p.db")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    for line_no in (2, 3, 4, 5):
        assert f"skipped line {line_no}: " in done.stdout
    assert "imported 2 battles" in done.stdout and "4 bad rows skipped" in done.stdout


# ---------------------------------------------------------------- import workers die with their parent


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _big_battles_file(path: Path, n_rows: int) -> Path:
    """A JSONL file big enough to be parsed in worker processes (import_parallel.PARALLEL_FROM_BYTES)."""
    text = " ".join(["word"] * 120)
    with path.open("w") as out:
        for i in range(n_rows):
            conversation = [{"role": "user", "content": f"question {i}"}, {"role": "assistant", "content": text}]
            out.write(json.dumps({"question_id": f"q{i}", "model_a": f"m{i % 7}", "model_b": f"n{i % 5}",
                                  "winner": "tie", "tstamp": 1682351591 + i, "conversation_a": conversation,
                                  "conversation_b": conversation}) + "\n")
    return path


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")
def test_kill_9_of_an_import_takes_its_parse_worker_with_it(tmp_path: Path) -> None:
    from storage.import_parallel import PARALLEL_FROM_BYTES

    source = _big_battles_file(tmp_path / "big.jsonl", 40_000)
    assert source.stat().st_size > 1.5 * PARALLEL_FROM_BYTES
    importer = subprocess.Popen([sys.executable, "app.py", "import", "battles", str(source), "--db",
                                 str(tmp_path / "p.db")], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        deadline, workers = time.monotonic() + 120, []
        while not workers and importer.poll() is None and time.monotonic() < deadline:
            workers = _children(importer.pid)
            time.sleep(0.05)
        assert workers, "the import finished or never started a parse worker"
        time.sleep(0.3)  # mid-parse: the worker has chunks in hand
        importer.send_signal(signal.SIGKILL)
        importer.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if _alive(pid)]
    finally:
        if importer.poll() is None:
            importer.kill()
    for pid in left:  # never leave a stray process behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"parse workers {left} outlived the import killed with SIGKILL"


# ---------------------------------------------------------------- names that carry terminal escapes

HOSTILE_NAMES = ["evil\x1b]0;pwned\x07\x1b[2J", "nul\x00byte", "c1\x9b31m", "plain-model"]


def test_the_leaderboard_cli_prints_control_characters_escaped(tmp_path: Path) -> None:
    source = tmp_path / "battles.jsonl"
    rows = [{"model_a": a, "model_b": b, "winner": w, "anony": True, "tstamp": 1682351591 + i}
            for i, (a, b, w) in enumerate([(HOSTILE_NAMES[0], HOSTILE_NAMES[1], "model_a"),
                                           (HOSTILE_NAMES[1], HOSTILE_NAMES[2], "model_b"),
                                           (HOSTILE_NAMES[2], HOSTILE_NAMES[3], "tie"),
                                           (HOSTILE_NAMES[3], HOSTILE_NAMES[0], "model_a"),
                                           (HOSTILE_NAMES[0], HOSTILE_NAMES[2], "model_b")])]
    source.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    db = ["--db", str(tmp_path / "p.db")]
    run = lambda *args: subprocess.run([sys.executable, "app.py", *args, *db], cwd=REPO_ROOT,  # noqa: E731
                                       capture_output=True, timeout=300)
    assert run("import", "battles", str(source)).returncode == 0
    table = run("leaderboard", "--rounds", "20")
    as_json = run("leaderboard", "--rounds", "20", "--json")
    for done in (table, as_json):
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        raw = output.decode("utf-8")
        assert not any(c in raw for c in "\x1b\x00\x07\x9b"), raw
    text = table.stdout.decode()
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J" in text and "nul\\x00byte" in text and "c1\\x9b31m" in text
    assert sorted(r["contestant"] for r in json.loads(as_json.stdout)) == sorted(HOSTILE_NAMES)
