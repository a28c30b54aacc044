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
import threading
import time
from pathlib import Path

import numpy as np
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


# ---------------------------------------------------------------- an import never locks people out

ANNOTATORS = 8
IMPORT_ROWS = 25_000
MAX_VOTE_WAIT_S = 5.0  # the bound set for a vote while an import runs


def _arena_file(path: Path, n_rows: int) -> Path:
    """Arena-format JSONL rows without conversations, padded past the size parsed by a worker process."""
    padding = "x" * 700
    with path.open("w") as out:
        for i in range(n_rows):
            out.write(json.dumps({"question_id": f"{i:016x}", "model_a": f"model-{i % 23}",
                                  "model_b": f"model-{(i * 7 + 1) % 23 + 23}", "winner": "model_a",
                                  "judge": f"arena_user_{i % 9973}", "anony": True, "language": padding,
                                  "tstamp": 1_682_000_000 + i * 1.5}) + "\n")
    return path


def _watch_workers(pid: int, db_path: Path, seen: list[float], probes: list[float], stop: threading.Event) -> None:
    """Times at which the import process `pid` had a parse worker (it was reading the file), and
    the waits for SQLite's write lock taken while a worker was alive before and after the take.

    Why a lock probe and not only votes: a quiet machine parses the test file in a fraction of a
    second, too short a window to count on votes landing inside it; the probe runs inside it.
    """
    while not stop.is_set():
        if _children(pid):
            seen.append(time.monotonic())
            began = time.monotonic()
            conn = sqlite3.connect(db_path, timeout=MAX_VOTE_WAIT_S)
            try:
                conn.execute("BEGIN IMMEDIATE")
                waited = time.monotonic() - began
                conn.rollback()
            except sqlite3.OperationalError:  # still locked after MAX_VOTE_WAIT_S
                waited = MAX_VOTE_WAIT_S
            finally:
                conn.close()
            if _children(pid):
                probes.append(waited)
        time.sleep(0.05)


def _annotator(db_path: Path, name: str, pairs: list[tuple[int, int]], stop: threading.Event,
               log: list[tuple[str, float, float, int]], errors: list[BaseException]) -> None:
    """One annotator: votes through the app's own save_vote, one after another, until told to stop."""
    from playground.recording import save_vote

    for left, right in pairs:
        if stop.is_set():
            return
        began = time.monotonic()
        try:
            result = save_vote(db_path, left_generation_id=left, right_generation_id=right, winner="left",
                               session_id=f"user:{name}/s", anonymous=True, source="arena")
        except BaseException as exc:  # anything an annotator would have seen as an error
            errors.append(exc)
            return
        log.append((name, began, time.monotonic(), result.vote_id))
        time.sleep(0.2)


def test_votes_are_stored_within_seconds_while_a_big_import_runs(tmp_path: Path) -> None:
    db_path = tmp_path / "team.db"
    db = open_database(db_path)
    try:
        ids = [insert_generation(db, GenerationRecord(
            model_id=f"local-{i}", mode="zero_shot", output=f"answer {i}",
            conversation=[{"role": "user", "content": "the question"}])) for i in range(110)]
    finally:
        db.close()
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]  # 5,995: votes for minutes
    source = _arena_file(tmp_path / "arena.jsonl", IMPORT_ROWS)
    log: list[tuple[str, float, float, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()
    annotators = [threading.Thread(target=_annotator, args=(db_path, f"ann{n}", pairs[n::ANNOTATORS], stop, log,
                                                            errors)) for n in range(ANNOTATORS)]
    parsing: list[float] = []
    probes: list[float] = []
    importer = subprocess.Popen([sys.executable, "app.py", "import", "battles", str(source), "--db", str(db_path)],
                                cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = threading.Thread(target=_watch_workers, args=(importer.pid, db_path, parsing, probes, stop))
    for thread in [watcher, *annotators]:
        thread.start()
    try:
        output, _ = importer.communicate(timeout=600)
    finally:
        stop.set()
        for thread in [watcher, *annotators]:
            thread.join(timeout=180)
        if importer.poll() is None:
            importer.kill()
    assert importer.returncode == 0 and f"imported {IMPORT_ROWS} battles" in output, output
    assert errors == [], errors[:3]  # no "database is locked", no error shown to anyone
    waits = sorted(end - began for _, began, end, _ in log)
    assert waits[-1] < MAX_VOTE_WAIT_S, waits[-5:]
    # Reading and validating the file take no write lock: while a worker parsed, the lock was free.
    assert parsing, "the import never started a parse worker"
    assert probes and max(probes) < 1.0, (probes, parsing[-1] - parsing[0])
    db = open_database(db_path)
    try:
        stored = db.execute("SELECT count(*) FROM votes WHERE voter LIKE 'ann%'").fetchone()[0]
        assert stored == len(log) and {v for *_, v in log} == {
            r[0] for r in db.execute("SELECT id FROM votes WHERE voter LIKE 'ann%'")}
        assert db.execute("SELECT count(*) FROM votes").fetchone()[0] == len(log) + IMPORT_ROWS
    finally:
        db.close()


def _hold_write_lock(db_path: Path, seconds: float, held: threading.Event) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("BEGIN IMMEDIATE")
    held.set()
    time.sleep(seconds)
    conn.rollback()
    conn.close()


def test_a_vote_waits_for_a_write_held_elsewhere_and_then_is_stored(tmp_path: Path) -> None:
    from playground.recording import save_vote

    db_path = tmp_path / "p.db"
    _seed_votes(db_path)
    ids = [r[0] for r in sqlite3.connect(db_path).execute("SELECT id FROM generations ORDER BY id")]
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db_path, 2.0, held))
    holder.start()
    held.wait(10)
    began = time.monotonic()
    result = save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[2], winner="right",
                       session_id="user:ben/s", anonymous=True, source="arena")
    holder.join()
    assert time.monotonic() - began >= 1.5 and not result.duplicate


def test_a_vote_that_cannot_get_the_lock_says_so_instead_of_a_raw_sqlite_error(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db
    from playground.errors import PlaygroundError
    from playground.recording import save_vote

    db_path = tmp_path / "p.db"
    _seed_votes(db_path)
    ids = [r[0] for r in sqlite3.connect(db_path).execute("SELECT id FROM generations ORDER BY id")]
    monkeypatch.setattr(storage.db, "WRITE_WAIT_S", 1.0)  # the app waits 120 s; the rule is the same
    held = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db_path, 3.0, held))
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(PlaygroundError, match=r"Could not save your vote: database .* was busy for \d+ s.*"
                                                  r"Nothing was saved; try again"):
            save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[2], winner="right",
                      session_id="user:ben/s", anonymous=True, source="arena")
    finally:
        holder.join()
    result = save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[2], winner="right",
                       session_id="user:ben/s", anonymous=True, source="arena")
    assert not result.duplicate  # nothing half-written by the refused attempt


# ---------------------------------------------------------------- many contestants

MANY_NAMES = 140_000


@pytest.fixture(scope="module")
def many_names_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real database whose 70,000 imported battles name 140,000 distinct models."""
    from storage import import_arena_battles

    folder = tmp_path_factory.mktemp("many")
    source = folder / "many.jsonl"
    with source.open("w") as out:
        for i in range(MANY_NAMES // 2):
            out.write(json.dumps({"model_a": f"a-{i:06d}", "model_b": f"b-{i:06d}", "anony": True,
                                  "winner": ("model_a", "model_b", "tie")[i % 3], "tstamp": 1_682_000_000 + i}) + "\n")
    db = open_database(folder / "many.db")
    try:
        assert import_arena_battles(db, source).imported == MANY_NAMES // 2
    finally:
        db.close()
    return folder / "many.db"


def test_loading_140k_contestant_names_does_not_overflow_sqlites_parser(many_names_db: Path) -> None:
    from playground.leaderboard.load import load_battles

    db = open_database(many_names_db)
    try:
        battles = load_battles(db, by="model", anonymous_only=True, with_lengths=False)
    finally:
        db.close()
    assert len(battles) == MANY_NAMES // 2 and len(battles.coded.names) == MANY_NAMES
    k = np.arange(0, MANY_NAMES // 2, 997)  # every row kept its own two names and its verdict
    assert list(battles.left[k]) == [f"a-{i:06d}" for i in k]
    assert list(battles.right[k]) == [f"b-{i:06d}" for i in k]
    assert list(battles.winner[k]) == [("left", "right", "tie")[i % 3] for i in k]


def test_the_name_lookup_table_gives_what_the_case_expression_gives(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from playground.leaderboard import load
    from storage import import_arena_battles

    source = tmp_path / "b.jsonl"
    models = ["m-a", "m-b", "m-c", "m-d", "m-e"]
    source.write_text("\n".join(json.dumps({"model_a": models[i % 5], "model_b": models[(i * 3 + 1) % 5],
                                            "winner": ("model_a", "model_b", "tie", "tie (bothbad)")[i % 4],
                                            "anony": i % 2 == 0, "tstamp": 1_682_000_000 + (i * 37) % 101})
                                for i in range(200)) + "\n")
    db = open_database(tmp_path / "p.db")
    try:
        import_arena_battles(db, source)
        results = []
        for limit in (load.CASE_MAX_NAMES, 1):
            monkeypatch.setattr(load, "CASE_MAX_NAMES", limit)
            for by in ("model", "model+mode"):
                got = load.load_battles(db, by=by, anonymous_only=False, with_lengths=True)
                results.append([list(got.left), list(got.right), list(got.winner), list(got.tstamp)])
    finally:
        db.close()
    assert results[:2] == results[2:]


def test_the_leaderboard_cli_ranks_140k_contestants(many_names_db: Path) -> None:
    """70,000 pairs that never met each other: every contestant rated, the warnings bounded in size."""
    done = subprocess.run([sys.executable, "app.py", "leaderboard", "--rounds", "0", "--json", "--db",
                           str(many_names_db)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr + done.stdout, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert len(rows) == MANY_NAMES and all(row["rating"] is not None for row in rows)
    assert "70,000 groups" not in done.stderr and "groups that never met" in done.stderr
    assert len(done.stderr) < 20_000  # the warnings name a few groups and contestants, not 140,000


def test_the_leaderboard_refuses_davidson_past_its_dense_bound_with_a_clear_message(many_names_db: Path) -> None:
    done = subprocess.run([sys.executable, "app.py", "leaderboard", "--rounds", "0", "--tie-model", "davidson",
                           "--db", str(many_names_db)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert "140,000 contestants" in done.stderr and "ranks at most 2,000" in done.stderr, done.stderr
    assert "plain ranking" in done.stderr
