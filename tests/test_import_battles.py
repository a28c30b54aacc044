"""Importing Chatbot Arena battles: JSON and JSONL, bad rows, re-imports, unusable files, CLI."""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import random
import re
import sqlite3
import time
from pathlib import Path

import orjson
import pytest
from sqlite_utils import Database

from playground.commands import import_cmd
from playground.cli import main
from playground.config import Settings
from playground.errors import PlaygroundError
from storage import ImportFileError, bulk_write, count_votes, import_arena_battles, importer, open_database

ROWS = [
    {
        "question_id": "q1", "model_a": "vicuna-13b", "model_b": "koala-13b",
        "winner": "model_a", "anony": True, "tstamp": 1682351591.1322,
        "conversation_a": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4"},
        ],
        "conversation_b": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "Four."},
        ],
    },
    {
        "question_id": "q2", "model_a": "koala-13b", "model_b": "alpaca-13b",
        "winner": "model_b", "anony": False, "tstamp": 1682351600,
        "conversation_a": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Name a colour"},
            {"role": "assistant", "content": "Blue"},
        ],
        "conversation_b": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"},
            {"role": "user", "content": "Name a colour"},
            {"role": "assistant", "content": "Red"},
        ],
    },
    {"model_a": "vicuna-13b", "model_b": "alpaca-13b", "winner": "tie"},
    {"model_a": "alpaca-13b", "model_b": "vicuna-13b", "winner": "tie (bothbad)",
     "tstamp": 1682351700.5},
]
WINNERS = ["left", "right", "tie", "both_bad"]


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "playground.db")
    yield database
    database.close()


def write_json(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def write_jsonl(path: Path, lines: list) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def assert_rows_imported(db: Database) -> None:
    assert (db["generations"].count, db["battles"].count, count_votes(db)) == (8, 4, 4)
    votes = db.execute(
        "SELECT v.winner, b.left_model, b.right_model, b.anonymous, b.source, b.session_id, "
        "b.tstamp, v.tstamp FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY b.id"
    ).fetchall()
    assert [v[0] for v in votes] == WINNERS
    assert [(v[1], v[2]) for v in votes] == [(r["model_a"], r["model_b"]) for r in ROWS]
    assert [v[3] for v in votes] == [1, 0, 0, 0]  # a row without anony counts as named (not blind)
    assert {v[4] for v in votes} == {"import"}
    assert [v[5] for v in votes] == ["import:q1", "import:q2", "import", "import"]
    assert votes[0][6] == votes[0][7] == 1682351591.1322
    assert votes[3][6] == 1682351700.5


def generation(db: Database, battle_no: int, side: str) -> dict:
    battle = list(db["battles"].rows_where("id = ?", [battle_no]))[0]
    return db["generations"].get(battle[f"{side}_generation_id"])


def test_json_array_round_trip(db: Database, tmp_path: Path) -> None:
    report = import_arena_battles(db, write_json(tmp_path / "battles.json", ROWS))
    assert (report.imported, report.already_imported, report.errors) == (4, 0, [])
    assert_rows_imported(db)


def test_jsonl_round_trip(db: Database, tmp_path: Path) -> None:
    report = import_arena_battles(db, write_jsonl(tmp_path / "battles.jsonl", ROWS))
    assert (report.imported, report.errors) == (4, [])
    assert_rows_imported(db)


def test_conversation_is_split_at_the_last_user_turn(db: Database, tmp_path: Path) -> None:
    import_arena_battles(db, write_jsonl(tmp_path / "battles.jsonl", ROWS))
    left = generation(db, 2, "left")
    assert json.loads(left["conversation"]) == ROWS[1]["conversation_a"][:3]
    assert left["output"] == "Blue"
    assert generation(db, 2, "right")["output"] == "Red"
    assert (left["source"], left["backend"], left["mode"]) == ("import", "import", "")
    bare = generation(db, 3, "left")
    assert (json.loads(bare["conversation"]), bare["output"]) == ([], "")


def test_bad_rows_are_reported_by_line_and_skipped(db: Database, tmp_path: Path) -> None:
    lines = [
        ROWS[0],                                                         # line 1
        '{"model_a": "x", "model_b": "y", "winner": ',                   # line 2: bad JSON
        "",                                                              # line 3: blank
        {"model_a": "x", "winner": "model_a"},                           # line 4: no model_b
        {"model_a": "x", "model_b": "y", "winner": "model_c"},           # line 5
        {"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": "yesterday"},  # line 6
        {"model_a": "x", "model_b": "y", "winner": "tie", "anony": "yes"},        # line 7
        {"model_a": "x", "model_b": "y", "winner": "tie",
         "conversation_a": [{"role": "user", "content": 5}]},           # line 8
        {"model_a": 3, "model_b": "y", "winner": "tie"},                 # line 9
        ["model_a", "model_b"],                                          # line 10
        {"model_a": "x", "model_b": "y", "winner": "tie",
         "conversation_b": [{"role": "assistant", "content": "hi"}]},   # line 11
        ROWS[2],                                                         # line 12
    ]
    report = import_arena_battles(db, write_jsonl(tmp_path / "mixed.jsonl", lines))
    assert report.imported == 2
    found = {error.location: error.message for error in report.errors}
    assert list(found) == [f"line {n}" for n in (2, 4, 5, 6, 7, 8, 9, 10, 11)]
    assert "not valid JSON" in found["line 2"]
    assert "model_b" in found["line 4"]
    assert "model_c" in found["line 5"] and "tie (bothbad)" in found["line 5"]
    assert "tstamp" in found["line 6"]
    assert "anony" in found["line 7"]
    assert "conversation_a" in found["line 8"]
    assert "model_a" in found["line 9"]
    assert "JSON object" in found["line 10"]
    assert "no user message" in found["line 11"]
    assert (db["battles"].count, count_votes(db), db["generations"].count) == (2, 2, 4)


def test_bad_rows_in_a_json_array_are_reported_by_index(db: Database, tmp_path: Path) -> None:
    rows = [ROWS[0], {"model_a": "x"}, None, ROWS[2]]
    report = import_arena_battles(db, write_json(tmp_path / "mixed.json", rows))
    assert report.imported == 2
    assert [str(e) for e in report.errors] == [
        "index 1: missing key 'model_b'",
        "index 2: a battle must be a JSON object, got null",
    ]


def test_importing_the_same_file_twice_adds_nothing(db: Database, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "battles.jsonl", ROWS + [ROWS[2]])  # a genuine repeat
    first = import_arena_battles(db, path)
    again = import_arena_battles(db, path)
    assert (first.imported, first.already_imported) == (5, 0)
    assert (again.imported, again.already_imported) == (0, 5)
    assert count_votes(db) == 5
    grown = import_arena_battles(db, write_jsonl(path, ROWS + [ROWS[2], ROWS[2]]))
    assert (grown.imported, grown.already_imported) == (1, 5)


@pytest.mark.parametrize("content, problem", [
    pytest.param(b"", "is empty", id="empty"),
    (b"  \n\n\t", "is empty"),
    (bytes(range(256)) * 8, "binary"),
    (b"\xff\xfe\x00n\x00o\x00", "binary"),
    ("caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b'[{"model_a": "x", ', "not valid JSON"),
    (b"model_a,model_b,winner\nx,y,tie\n", "no JSON on any line"),
])
def test_unusable_files_raise_naming_the_path(db: Database, tmp_path: Path, content: bytes,
                                              problem: str) -> None:
    path = tmp_path / "battles.jsonl"
    path.write_bytes(content)
    with pytest.raises(ImportFileError, match=problem) as info:
        import_arena_battles(db, path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, PlaygroundError)
    assert count_votes(db) == 0


def test_missing_file_raises_naming_the_path(db: Database, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="does not exist") as info:
        import_arena_battles(db, tmp_path / "nope.json")
    assert str(tmp_path / "nope.json") in str(info.value)


def test_utf8_bom_is_accepted(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS).encode())
    assert import_arena_battles(db, path).imported == 4


def test_many_rows_import_in_batches_quickly(db: Database, tmp_path: Path) -> None:
    n = 20_000
    models = [f"model-{i}" for i in range(10)]
    rows = [{"model_a": models[i % 10], "model_b": models[(i + 1) % 10],
             "winner": ["model_a", "model_b", "tie", "tie (bothbad)"][i % 4], "tstamp": i}
            for i in range(n)]
    path = write_jsonl(tmp_path / "many.jsonl", rows)
    began = time.perf_counter()
    report = import_arena_battles(db, path)
    elapsed = time.perf_counter() - began
    assert (report.imported, report.errors) == (n, [])
    assert (db["generations"].count, db["battles"].count, count_votes(db)) == (2 * n, n, n)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert elapsed < 30, f"{n} rows took {elapsed:.1f} s"


# ---------------------------------------------------------------- CLI


def cli(*argv: str) -> int:
    """`python app.py ...` in-process, through the real dispatcher and settings."""
    return main(list(argv))


def test_cli_imports_and_lists_bad_rows(tmp_path: Path, capsys) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [ROWS[0], {"model_a": "x"}, ROWS[2]])
    db_path = tmp_path / "cli.db"
    assert import_cmd.NAME == "import"
    assert cli("import", "battles", str(path), "--db", str(db_path)) == 0
    out = capsys.readouterr().out
    assert "imported 2 battles" in out and "1 bad rows skipped" in out
    assert "line 2: missing key 'model_b'" in out
    db = open_database(db_path)
    try:
        assert count_votes(db) == 2
    finally:
        db.close()


def test_cli_run_uses_the_settings_database(tmp_path: Path) -> None:
    path = write_json(tmp_path / "b.json", ROWS)
    args = argparse.Namespace(command="import", kind="battles", file=path)
    assert import_cmd.run(args, Settings(db_path=tmp_path / "configured.db")) == 0
    db = open_database(tmp_path / "configured.db")
    try:
        assert count_votes(db) == 4
    finally:
        db.close()


@pytest.mark.parametrize("content", [b"", os.urandom(64) + b"\x00"], ids=["empty", "binary"])
def test_cli_unusable_file_exits_1(tmp_path: Path, capsys, content: bytes) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    assert cli("import", "battles", str(path), "--db", str(tmp_path / "x.db")) == 1
    assert str(path) in capsys.readouterr().out


def test_cli_file_with_only_bad_rows_exits_1(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "b.jsonl", [{"model_a": "x"}, {"winner": "tie"}])
    assert cli("import", "battles", str(path), "--db", str(tmp_path / "x.db")) == 1


def test_cli_reimport_exits_0(tmp_path: Path, capsys) -> None:
    path = write_json(tmp_path / "b.json", ROWS)
    db = str(tmp_path / "x.db")
    assert cli("import", "battles", str(path), "--db", db) == 0
    assert cli("import", "battles", str(path), "--db", db) == 0
    assert "imported 0 battles" in capsys.readouterr().out.splitlines()[-1]


def test_cli_rejects_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        cli("import", "models", str(tmp_path / "b.json"))


def test_rows_whose_conversations_answer_different_user_turns_are_reported_and_skipped(
        db: Database, tmp_path: Path) -> None:
    """An import follows the same judging rule as create_battle (same input on both sides)."""
    def side(*turns: str) -> list[dict[str, str]]:
        out = []
        for k, text in enumerate(turns):
            out.append({"role": "user" if k % 2 == 0 else "assistant", "content": text})
        return out

    lines = [
        ROWS[0],                                                                              # line 1: fine
        {"model_a": "x", "model_b": "y", "winner": "model_a",
         "conversation_a": side("What is 2+2?", "4"), "conversation_b": side("Name a colour", "Red")},  # line 2
        {"model_a": "x", "model_b": "y", "winner": "model_b",
         "conversation_a": side("Hi", "Hello", "Name a colour", "Blue"),
         "conversation_b": side("Hi", "Hey", "Name a fruit", "Apple")},                    # line 3: later turn
        {"model_a": "x", "model_b": "y", "winner": "tie",
         "conversation_a": side("Hi", "Hello"), "conversation_b": None},                   # line 4: one side only
        ROWS[1],                                                                              # line 5: fine
    ]
    report = import_arena_battles(db, write_jsonl(tmp_path / "mixed.jsonl", lines))
    found = {error.location: error.message for error in report.errors}
    assert report.imported == 2 and list(found) == ["line 2", "line 3", "line 4"]
    assert "do not start from the same user turn" in found["line 2"] and "'What is 2+2?'" in found["line 2"]
    assert "differ later" in found["line 3"]
    assert "same input" in found["line 4"]
    assert (db["battles"].count, count_votes(db)) == (2, 2)
    fingerprints = db.execute("SELECT gl.input_fingerprint = gr.input_fingerprint FROM battles b "
                              "JOIN generations gl ON gl.id = b.left_generation_id "
                              "JOIN generations gr ON gr.id = b.right_generation_id").fetchall()
    assert fingerprints == [(1,), (1,)]


# ---------------------------------------------------------------- the fast path keeps every rule


def old_import_key(row: object, nth: int = 0) -> str:
    """The import key as every earlier version computed it (json.dumps canonical form)."""
    canonical = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"arena:{hashlib.sha256(canonical.encode('utf-8')).digest()[:16].hex()}:{nth}"


def test_fast_canonical_form_is_byte_for_byte_the_json_one() -> None:
    """orjson's sorted dump must give the keys files were imported under, or a re-import duplicates."""
    rng = random.Random(16)
    floats = [0.0, -0.0, 1.0, 0.1, 1e-4, 9.99e-5, 1e-5, 1e15, 1e16, 1.5e16, 123456789012345.67, 1e300, -2.5e-7,
              1682351591.1322] + [rng.uniform(-1e6, 1e6) for _ in range(200)] + \
        [10 ** rng.uniform(-8, 20) for _ in range(300)]
    texts = ["plain", "caf\u00e9 \u4e2d\u6587 \U0001f600", "quote \" back \\ slash", "\u2028\u2029\x7f",
             "".join(chr(c) for c in range(32)), "3e5 1e+16 0e1"]
    rows = [{"tstamp": f, "model_a": "a", "n": i, "big": 2 ** 62, "anony": i % 2 == 0, "none": None}
            for i, f in enumerate(floats)]
    rows += [{"conversation_a": [{"role": "user", "content": t, "score": f}], "z": [f, {"b": 1, "a": t}]}
             for t in texts for f in floats[:40]]
    for row in rows:
        line = json.dumps(row).encode()
        expected = json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False,
                              separators=(",", ":")).encode("utf-8")
        fast = importer._plain_numbers(orjson.loads(line))
        row_read = orjson.loads(line) if fast else json.loads(line)
        assert importer._canonical(row_read, fast) == expected, row


def test_keys_are_the_ones_earlier_versions_stored(db: Database, tmp_path: Path) -> None:
    odd = {"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": 2.5e-7, "score": 1e16 + 2,
           "question_id": 10 ** 30}
    lines = [ROWS[0], ROWS[1], ROWS[0], odd, '{"model_a": "x", "model_b": "y", "winner": "tie", "x": NaN}',
             dict(odd, tstamp=1e16)]
    report = import_arena_battles(db, write_jsonl(tmp_path / "b.jsonl", lines))
    assert [str(e) for e in report.errors] == ["line 6: tstamp 1e+16 is not a date between years 1 and 9999 "
                                               "(epoch seconds)"]
    keys = [row[0] for row in db.execute("SELECT import_key FROM battles ORDER BY id")]
    nan_row = json.loads(lines[4])
    assert keys == [old_import_key(ROWS[0]), old_import_key(ROWS[1]), old_import_key(ROWS[0], 1),
                    old_import_key(odd), old_import_key(nan_row)]


def test_lines_end_at_newline_only(db: Database, tmp_path: Path) -> None:
    """A raw U+2028 inside a JSON string is valid JSON: it must not split the row (str.splitlines did)."""
    row = dict(ROWS[0], conversation_a=[{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "1"}],
               conversation_b=[{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "2"}])
    path = tmp_path / "b.jsonl"
    path.write_bytes(json.dumps(row, ensure_ascii=False).encode() + b"\r\n" + b"{bad\r\n" + json.dumps(ROWS[2]).encode())
    report = import_arena_battles(db, path)
    assert report.imported == 2 and [e.location for e in report.errors] == ["line 2"]


def schema(db: Database) -> list[tuple]:
    return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def test_bulk_import_leaves_every_trigger_and_index_as_it_was(db: Database, tmp_path: Path) -> None:
    before = schema(db)
    rows = [{"model_a": f"m{i % 7}", "model_b": f"m{(i + 1) % 7}", "winner": "tie", "tstamp": i}
            for i in range(bulk_write.DEFER_INDEXES_FROM_ROWS + 10)]
    assert import_arena_battles(db, write_jsonl(tmp_path / "b.jsonl", rows)).imported == len(rows)
    assert schema(db) == before
    with pytest.raises(sqlite3.IntegrityError, match="different inputs"):  # the triggers are back
        db.execute("INSERT INTO generations (created_at, tstamp, model_id, mode, conversation, output, source, "
                   "input_fingerprint) VALUES ('2025-01-01', 1, 'm', '', '[]', 'x', 'ui', 'sha256:other')")
        db.execute("INSERT INTO battles (created_at, tstamp, left_generation_id, right_generation_id, left_model, "
                   "right_model, left_mode, right_mode, anonymous, source) VALUES ('2025-01-01', 1, 1, "
                   "last_insert_rowid(), 'm', 'm', '', '', 0, 'ui')")


def test_a_row_breaking_the_rules_rolls_the_whole_import_back(db: Database, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The set-wise check stands in for the triggers: a forged different input refuses everything."""
    import_arena_battles(db, write_jsonl(tmp_path / "first.jsonl", [ROWS[3]]))
    before, counts = schema(db), (db["generations"].count, db["battles"].count, count_votes(db))
    forged = bulk_write.GENERATIONS_FROM_STAGE.replace(
        "s.input_fingerprint,", "CASE side.n WHEN 1 THEN 'sha256:forged' ELSE s.input_fingerprint END,")
    assert forged != bulk_write.GENERATIONS_FROM_STAGE
    monkeypatch.setattr(bulk_write, "GENERATIONS_FROM_STAGE", forged)
    with pytest.raises(PlaygroundError, match="different inputs"):
        import_arena_battles(db, write_jsonl(tmp_path / "b.jsonl", ROWS))
    assert (db["generations"].count, db["battles"].count, count_votes(db)) == counts
    assert schema(db) == before


# ---------------------------------------------------------------- parsing in worker processes


def parallel_file(path: Path) -> Path:
    """Rows with text and without, repeats far apart and side by side, bad lines here and there."""
    lines: list = []
    for i in range(400):
        row = dict(ROWS[i % len(ROWS)], question_id=f"q{i % 100}")  # rows i, i+100, i+200, i+300: one row 4 times
        row["tstamp"] = 1_682_000_000 + (i % 100)
        lines.append(row)
        if i % 97 == 5:
            lines.append('{"model_a": "x", ')
        if i % 61 == 7:
            lines.append({"model_a": "x", "model_b": "y", "winner": "nobody"})
    return write_jsonl(path, lines)


def stored(db: Database) -> list[tuple]:
    return db.execute(
        "SELECT b.id, b.import_key, b.session_id, b.tstamp, b.created_at, b.anonymous, b.left_model, b.right_model, "
        "l.conversation, l.output, r.conversation, r.output, l.input_fingerprint, v.winner, v.voter "
        "FROM battles b JOIN generations l ON l.id = b.left_generation_id "
        "JOIN generations r ON r.id = b.right_generation_id JOIN votes v ON v.battle_id = b.id ORDER BY b.id"
    ).fetchall()


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few lines, so a small file spreads over many chunks and both workers."""
    monkeypatch.setattr(importer.import_parallel, "CHUNK_BYTES", 300)


def test_workers_store_exactly_what_one_process_stores(tmp_path: Path, small_chunks) -> None:
    path = parallel_file(tmp_path / "b.jsonl")
    results = []
    for workers in (0, 2):
        database = open_database(tmp_path / f"w{workers}.db")
        report = import_arena_battles(database, path, workers=workers)
        results.append((report.imported, [str(e) for e in report.errors], stored(database)))
        database.close()
    (imported, errors, rows), parallel = results
    assert parallel == results[0]
    assert imported == 400 and len(rows) == 400
    keys = [row[1] for row in rows]
    assert len(set(keys)) == 400 and sum(key.endswith(":3") for key in keys) == 100  # 4th repeats, counted across chunks
    # bad lines reported from the workers by their number in the file
    assert errors[0].startswith("line 7: not valid JSON")
    numbers = [int(e.split(":")[0].split()[1]) for e in errors]
    assert numbers == sorted(numbers) and len(numbers) == 5 + 7
    lines = path.read_text(encoding="utf-8").split("\n")
    assert all(lines[n - 1].startswith('{"model_a": "x"') for n in numbers)


def test_a_bad_line_late_in_a_big_file_is_reported_by_its_number(db: Database, tmp_path: Path, small_chunks) -> None:
    lines = [dict(ROWS[2], question_id=f"q{i}") for i in range(300)]
    lines[250] = '{"model_a": "vicuna-13b", "model_b": "koala-13b", "winner": "model_a", "anony": "yes"}'
    report = import_arena_battles(db, write_jsonl(tmp_path / "b.jsonl", lines), workers=1)
    assert [str(e) for e in report.errors] == ["line 251: anony must be true or false, got 'yes'"]
    assert report.imported == 299 == count_votes(db)


def test_reimport_through_workers_adds_nothing(db: Database, tmp_path: Path, small_chunks) -> None:
    path = parallel_file(tmp_path / "b.jsonl")
    first = import_arena_battles(db, path, workers=2)
    before = stored(db)
    again = import_arena_battles(db, path, workers=2)
    assert (again.imported, again.already_imported) == (0, first.imported)
    assert stored(db) == before
    in_process = import_arena_battles(db, path, workers=0)  # same keys whichever way the file was read
    assert (in_process.imported, in_process.already_imported) == (0, first.imported)


def test_a_failure_midway_leaves_the_database_as_it_was(db: Database, tmp_path: Path, small_chunks,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import_arena_battles(db, write_jsonl(tmp_path / "first.jsonl", ROWS), workers=0)
    before, rows = schema(db), stored(db)
    pragmas = [db.execute(f"PRAGMA {name}").fetchone() for name in ("foreign_keys", "cache_size", "temp_store")]
    real_write = bulk_write.StageWriter.write
    calls = []

    def fail_on_third_batch(self, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise sqlite3.OperationalError("disk I/O error")
        return real_write(self, batch)

    monkeypatch.setattr(bulk_write.StageWriter, "write", fail_on_third_batch)
    with pytest.raises(PlaygroundError, match="nothing was saved"):
        import_arena_battles(db, parallel_file(tmp_path / "b.jsonl"), workers=2)
    assert len(calls) == 3 and calls[0] > 0  # two batches were written before the failure
    assert multiprocessing.active_children() == []  # the workers were stopped, not left parsing
    assert (schema(db), stored(db)) == (before, rows)
    assert [db.execute(f"PRAGMA {name}").fetchone() for name in ("foreign_keys", "cache_size", "temp_store")] == pragmas
    monkeypatch.undo()
    assert import_arena_battles(db, tmp_path / "b.jsonl", workers=2).imported == 400


def test_a_worker_that_fails_rolls_the_import_back(db: Database, tmp_path: Path, small_chunks,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A forked worker runs this process's code: make it fail on one row, far into the file."""
    monkeypatch.setattr(importer.import_parallel, "start_method", lambda: "fork")
    real_parse = importer._parse_row

    def crash_on_q40(raw, key):
        if raw.get("question_id") == "q40" and raw.get("model_a") == ROWS[0]["model_a"]:
            raise MemoryError("worker out of memory")
        return real_parse(raw, key)

    monkeypatch.setattr(importer, "_parse_row", crash_on_q40)
    before = schema(db)
    with pytest.raises(MemoryError, match="worker out of memory"):
        import_arena_battles(db, parallel_file(tmp_path / "b.jsonl"), workers=2)
    assert count_votes(db) == 0 and db["generations"].count == 0 and schema(db) == before
    assert multiprocessing.active_children() == []


def test_line_chunks_cut_at_line_ends_and_number_lines() -> None:
    data = b"a\nbb\n\nccc\r\ndddd\ne"
    chunks = list(importer.import_parallel.line_chunks(data, 3))
    assert b"\n".join(chunk for chunk, _ in chunks) == data
    for chunk, first in chunks:
        assert data.split(b"\n")[first - 1:first - 1 + chunk.count(b"\n") + 1] == chunk.split(b"\n")


def test_imported_votes_are_the_local_voters() -> None:
    from storage.voters import voter_of_session
    for question in ("q1", "user:bob/1", "", "judge:x"):
        assert voter_of_session(f"{bulk_write.IMPORT_SESSION_PREFIX}:{question}") == voter_of_session("import")


def test_spawned_workers_store_the_same_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The path a server process takes (other threads running: workers are spawned, not forked)."""
    monkeypatch.setattr(importer.import_parallel, "start_method", lambda: "spawn")
    monkeypatch.setattr(importer.import_parallel, "CHUNK_BYTES", 5_000)  # ~20 chunks
    path = parallel_file(tmp_path / "b.jsonl")
    results = []
    for workers in (0, 1):
        database = open_database(tmp_path / f"s{workers}.db")
        report = import_arena_battles(database, path, workers=workers)
        results.append(([str(e) for e in report.errors], stored(database)))
        database.close()
    assert results[1] == results[0] and len(results[0][1]) == 400


def test_an_import_keeps_the_connections_own_temp_tables(db: Database, tmp_path: Path) -> None:
    db.execute("CREATE TEMP TABLE mine (x)")
    db.execute("INSERT INTO temp.mine VALUES (1)")
    assert import_arena_battles(db, write_jsonl(tmp_path / "b.jsonl", ROWS)).imported == 4
    assert db.execute("SELECT x FROM temp.mine").fetchall() == [(1,)]


def test_generations_are_read_by_id_or_session_only(db: Database, tmp_path: Path) -> None:
    """m022 dropped generations(model_id) and generations(input_fingerprint): no statement needed them.

    Every statement that touches generations while the app imports, votes, ranks, exports, lists
    votes and forgets a session is traced, and its plan must reach generations by its primary key
    or by idx_generations_session_id (a plan that scans generations, or names a dropped index, fails).
    """
    from playground.export import PreferenceFilters, export_arena_battles, export_dpo, export_kto
    from playground.leaderboard.load import load_battles
    from storage import GenerationRecord, create_battle, forget, insert_generation, record_vote
    from storage.voters import recent_votes

    indexes = {row[1] for row in db.execute("PRAGMA index_list(generations)")}
    assert indexes == {"idx_generations_session_id"}
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    import_arena_battles(db, write_jsonl(tmp_path / "battles.jsonl", ROWS), workers=0)
    conversation = [{"role": "user", "content": "Why?"}]
    ids = [insert_generation(db, GenerationRecord(
        model_id=name, mode="zero_shot", conversation=conversation, output=f"because {name}",
        session_id="s-1")) for name in ("m1", "m2")]
    battle = create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True, session_id="s-1")
    record_vote(db, battle_id=battle, winner="left", session_id="s-1")
    for with_lengths in (True, False):
        load_battles(db, with_lengths=with_lengths, anonymous_only=True, since=1.0)
    export_dpo(db, tmp_path / "dpo.jsonl", PreferenceFilters(model="m1"))
    export_kto(db, tmp_path / "kto.jsonl")
    export_arena_battles(db, tmp_path / "arena.jsonl", model="vicuna-13b")
    recent_votes(db, None)
    forget(db, reason="test", session_id="s-1")
    db.conn.set_trace_callback(None)
    touching = {sql for sql in statements if re.search(r"\b(FROM|JOIN)\s+generations\b", sql, flags=re.IGNORECASE)
                and sql.lstrip().upper().startswith(("SELECT", "WITH"))}
    assert any("session_id" in sql for sql in touching) and len(touching) >= 5
    for sql in touching:
        names = {"generations", *re.findall(r"\bgenerations\s+(?:AS\s+)?(\w+)", sql, flags=re.IGNORECASE)}
        names -= {"ON", "WHERE", "JOIN", "LEFT", "SET", "VALUES", "GROUP", "ORDER"}
        plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}")]
        steps = [step for step in plan if step.split(" ")[0] in ("SCAN", "SEARCH") and step.split(" ")[1] in names]
        assert steps, (sql, plan)
        for step in steps:  # by its primary key (a bare SEARCH: max(id)) or by session; never scanned
            assert step.startswith("SEARCH") and ("INTEGER PRIMARY KEY" in step or " USING " not in step
                                                  or "idx_generations_session_id" in step), (sql, plan)


def test_a_row_breaking_the_rules_in_a_later_batch_rolls_everything_back(db: Database, tmp_path: Path,
                                                                        small_chunks,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules are checked batch by batch as rows are copied: a breach far into the file still refuses it all."""
    import_arena_battles(db, write_jsonl(tmp_path / "first.jsonl", [ROWS[3]]))
    before, counts = schema(db), (db["generations"].count, db["battles"].count, count_votes(db))
    forged = bulk_write.GENERATIONS_FROM_STAGE.replace(
        "s.input_fingerprint,",
        "CASE WHEN side.n = 1 AND s.session_id = 'import:q99' THEN 'sha256:forged' ELSE s.input_fingerprint END,")
    assert forged != bulk_write.GENERATIONS_FROM_STAGE
    monkeypatch.setattr(bulk_write, "GENERATIONS_FROM_STAGE", forged)
    batches: list[int] = []
    write = bulk_write.StageWriter.write
    monkeypatch.setattr(bulk_write.StageWriter, "write",
                        lambda self, rows: batches.append(len(rows)) or write(self, rows))
    with pytest.raises(PlaygroundError, match="different inputs"):
        import_arena_battles(db, parallel_file(tmp_path / "b.jsonl"), workers=0)
    assert len(batches) > 5  # the forged row came late, after several batches were copied and checked
    assert (db["generations"].count, db["battles"].count, count_votes(db)) == counts
    assert schema(db) == before


_PARENT_PID = os.getpid()


def _slow_in_workers(chunk: bytes, first_line: int) -> tuple[int, bytes, bool]:
    """A parse that is slow in worker processes only, so the importing process parses chunks meanwhile."""
    if os.getpid() != _PARENT_PID:
        time.sleep(0.05)
    return first_line, chunk, os.getpid() == _PARENT_PID


def test_the_writer_parses_while_it_waits_and_results_stay_in_file_order(monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import import_parallel

    # Forked even if a thread runs (a spawned worker would re-import this module with its own pid as the parent's).
    monkeypatch.setattr(import_parallel, "start_method", lambda: "fork")
    monkeypatch.setattr(import_parallel, "CHUNK_BYTES", 64)
    data = b"\n".join(b'{"n": %d}' % i for i in range(400))
    results = list(import_parallel.parsed_chunks(data, _slow_in_workers, workers=1))
    assert [(chunk, line) for line, chunk, _ in results] == list(import_parallel.line_chunks(data))
    here = sum(1 for *_, in_parent in results if in_parent)
    assert 0 < here < len(results)  # both this process and the worker parsed some
