"""The judging rules, storage level: only like is compared with like, one judgement per pair, only
finished answers, append-only tables, tombstones, and migrating databases stored before the rules.

Real SQLite files throughout; the database's own triggers are checked by writing past the API.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

import storage
from storage import GenerationRecord, VoteRefused, create_battle, insert_generation, open_database, record_vote
from storage.migrations import migrations

INSERT_BATTLE = ("INSERT INTO battles (created_at, tstamp, session_id, left_generation_id, right_generation_id, "
                 "left_model, right_model, left_mode, right_mode, anonymous, source) "
                 "VALUES ('t', 0, 's', ?, ?, 'm', 'm', '', '', 0, 'playground')")


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "playground.db")
    yield database
    database.close()


def answer(db: Database, question: str, *, model: str = "m", finish: str | None = "stop", error: str | None = None,
           history: list[tuple[str, str]] = (), output: str | None = None) -> int:
    conversation = []
    for user, assistant in history:
        conversation += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    conversation.append({"role": "user", "content": question})
    return insert_generation(db, GenerationRecord(model_id=model, conversation=conversation,
                                                  output=output if output is not None else f"{model}: {question}",
                                                  finish_reason=finish, error=error, session_id="s"))


def battle(db: Database, left: int, right: int) -> int:
    return create_battle(db, left_generation_id=left, right_generation_id=right, anonymous=False, session_id="s")


# ---------------------------------------------------------------- same input


def test_answers_to_different_questions_cannot_be_judged(db):
    first, second = answer(db, "What is 2 + 2?"), answer(db, "Name a colour", model="n")
    with pytest.raises(VoteRefused, match="answered different inputs.*first user turn differs"):
        battle(db, first, second)
    assert db.execute("SELECT count(*) FROM battles").fetchone()[0] == 0


def test_same_question_after_different_histories_is_not_the_same_input(db):
    a = answer(db, "and times 3?", history=[("What is 2 + 2?", "4")])
    b = answer(db, "and times 3?", model="n", history=[("What is 5 + 5?", "10")])
    c = answer(db, "and times 3?", model="n", history=[("What is 2 + 2?", "four")])   # own earlier answer
    with pytest.raises(VoteRefused, match="different inputs"):
        battle(db, a, b)
    assert battle(db, a, c) > 0   # same user turns; each side's own earlier answer is part of what is judged


def test_the_database_refuses_a_cross_input_battle_from_any_writer(db):
    first, second = answer(db, "q1"), answer(db, "q2", model="n")
    with pytest.raises(sqlite3.IntegrityError, match="different inputs"):
        db.execute(INSERT_BATTLE, [first, second])


def test_every_generation_carries_its_input_fingerprint(db):
    gid = answer(db, "What is 2 + 2?", history=[("hi", "hello")])
    row = db["generations"].get(gid)
    assert row["input_fingerprint"] == storage.input_fingerprint(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "other"},
         {"role": "user", "content": "What is 2 + 2?"}])
    assert row["input_fingerprint"].startswith("sha256:")


# ---------------------------------------------------------------- one judgement per pair


def test_a_second_vote_in_either_order_returns_the_first(db):
    a, b = answer(db, "q"), answer(db, "q", model="n")
    ab = battle(db, a, b)
    assert battle(db, b, a) == ab
    first = record_vote(db, battle_id=ab, winner="left", session_id="s")
    again = record_vote(db, battle_id=battle(db, b, a), winner="left", session_id="s")  # B vs A: contradicts
    assert again.duplicate and (again.vote_id, again.winner) == (first.vote_id, "left")
    assert db.execute("SELECT count(*) FROM votes").fetchone()[0] == 1
    with pytest.raises(sqlite3.IntegrityError, match="already has a battle"):
        db.execute(INSERT_BATTLE, [b, a])


# ---------------------------------------------------------------- finished answers


@pytest.mark.parametrize("finish, error", [("cancelled", None), ("error", "backend crashed")])
def test_cancelled_or_failed_answers_cannot_be_judged(db, finish, error):
    good, cut = answer(db, "q"), answer(db, "q", model="n", finish=finish, error=error, output="partial")
    with pytest.raises(VoteRefused, match="only finished answers can be judged"):
        battle(db, good, cut)
    with pytest.raises(sqlite3.IntegrityError, match="cancelled or failed"):
        db.execute(INSERT_BATTLE, [good, cut])


def test_an_answer_cut_by_the_token_limit_can_be_judged(db):
    vote = record_vote(db, battle_id=battle(db, answer(db, "q"), answer(db, "q", model="n", finish="length")),
                       winner="right", session_id="s")
    assert not vote.duplicate


# ---------------------------------------------------------------- append-only, tombstones


@pytest.mark.parametrize("sql", [
    "UPDATE generations SET output = 'rewritten'", "DELETE FROM generations",
    "UPDATE battles SET left_model = 'x'", "DELETE FROM battles",
    "UPDATE votes SET winner = 'right'", "UPDATE votes SET tstamp = 0", "DELETE FROM votes",
    "DELETE FROM tombstones", "UPDATE tombstones SET reason = ''",
])
def test_judged_tables_are_append_only_in_the_database(db, sql):
    a, b = answer(db, "q"), answer(db, "q", model="n")
    vote = record_vote(db, battle_id=battle(db, a, b), winner="left", session_id="s")
    if "tombstones" in sql:
        storage.forget(db, reason="test", votes=[vote.vote_id])
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute(sql)


def test_forget_writes_tombstones_and_counted_votes_leave_them_out(db):
    ids = []
    for q in ("q1", "q2", "q3"):
        ids.append(record_vote(db, battle_id=battle(db, answer(db, q), answer(db, q, model="n")), winner="left",
                               session_id="s").vote_id)
    before = list(db.query("SELECT * FROM generations ORDER BY id"))
    result = storage.forget(db, reason="user asked", requested_by="ops", votes=[ids[0]], generations=[3])
    assert result.tombstones == {"generation": [3], "battle": [], "vote": [ids[0]]}
    assert [r[0] for r in db.execute("SELECT id FROM counted_votes ORDER BY id")] == [ids[2]]
    assert list(db.query("SELECT * FROM generations ORDER BY id")) == before      # nothing touched
    assert db.execute("SELECT reason, requested_by FROM tombstones").fetchall() == [("user asked", "ops")] * 2
    with pytest.raises(VoteRefused, match="forgotten"):
        battle(db, 3, answer(db, "q2", model="z"))
    with pytest.raises(storage.StorageError, match="no vote 999"):
        storage.forget(db, reason="typo", votes=[999])
    with pytest.raises(storage.StorageError, match="reason"):
        storage.forget(db, reason=" ", votes=[ids[1]])


# ---------------------------------------------------------------- databases from before the rules


def old_database(path: Path) -> Database:
    """A database at the schema before the judging rules (m001..m004), filled the way the old code could."""
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="m005_generation_inputs_and_provenance")
    gens = [("q1", "cancelled"), ("q1", "stop"), ("q1", "stop"), ("q2", "stop"), ("q1", "length")]
    for k, (question, finish) in enumerate(gens, start=1):
        db.execute("INSERT INTO generations (id, created_at, tstamp, model_id, mode, conversation, output, "
                   "finish_reason, source) VALUES (?, 't', ?, ?, '', ?, ?, ?, 'local')",
                   [k, k, f"m{k}", json.dumps([{"role": "user", "content": question}]), f"answer {k}", finish])
    # 1: (2,3) left  2: (3,2) right (same pair reversed, contradicting)  3: (2,4) cross-question
    # 4: (1,2) on a cancelled answer  5: (5,3) cut by the token limit: valid
    for k, (left, right, winner) in enumerate([(2, 3, "left"), (3, 2, "right"), (2, 4, "left"), (1, 2, "right"),
                                               (5, 3, "left")], start=1):
        db.execute("INSERT INTO battles (id, created_at, tstamp, session_id, left_generation_id, "
                   "right_generation_id, left_model, right_model, left_mode, right_mode, anonymous, source) "
                   "VALUES (?, 't', ?, 's', ?, ?, ?, ?, '', '', 0, 'playground')",
                   [k, k, left, right, f"m{left}", f"m{right}"])
        db.execute("INSERT INTO votes (id, battle_id, winner, session_id, created_at, tstamp) "
                   "VALUES (?, ?, ?, 's', 't', ?)", [k, k, winner, 10 + k])
    db.conn.commit()
    return db


def dump(db: Database, table: str, columns: str) -> list[tuple]:
    return db.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()


def test_migrating_an_old_database_keeps_every_row_and_marks_what_does_not_count(tmp_path):
    path = tmp_path / "old.db"
    old = old_database(path)
    before = {t: dump(old, t, "*") for t in ("generations", "battles", "votes")}
    old.close()
    db = open_database(path)
    for table, rows in before.items():
        width = len(rows[0])
        assert [row[:width] for row in dump(db, table, "*")] == rows      # not lost, not rewritten
    marks = dict(((v, (r, f)) for v, r, f in db.execute(
        "SELECT vote_id, reason, first_vote_id FROM vote_exclusions")))
    assert marks == {2: ("duplicate_pair", 1), 3: ("different_inputs", None), 4: ("unfinished_answer", None)}
    assert [r[0] for r in db.execute("SELECT id FROM counted_votes ORDER BY id")] == [1, 5]
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM vote_exclusions")
    # the old pair, asked again in the other order, answers with the first vote
    again = record_vote(db, battle_id=battle(db, 3, 2), winner="right", session_id="s")
    assert again.duplicate and (again.vote_id, again.winner) == (1, "left")
    db.close()


def test_forget_command_is_explicit_and_logged(tmp_path, capsys):
    from playground.cli import main

    path = tmp_path / "cli.db"
    db = open_database(path)
    vote = record_vote(db, battle_id=battle(db, answer(db, "q"), answer(db, "q", model="n")), winner="left",
                       session_id="s")
    db.close()
    assert main(["forget", "--db", str(path), "--reason", "x"]) == 2          # nothing named: refused
    assert "name what to forget" in capsys.readouterr().err
    assert main(["forget", "--db", str(path), "--vote", str(vote.vote_id), "--reason", "GDPR request 17"]) == 0
    err = capsys.readouterr().err
    assert f"1 vote(s) {vote.vote_id}" in err and "GDPR request 17" in err
    assert main(["forget", "--db", str(path), "--session", "s", "--reason", "whole session"]) == 0
    assert "2 generation(s) 1, 2" in capsys.readouterr().err
    db = open_database(path)
    try:
        assert db.execute("SELECT count(*) FROM counted_votes").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM votes").fetchone()[0] == 1          # still there, hidden
        assert [r[0] for r in db.execute("SELECT kind FROM tombstones ORDER BY id")] == [
            "vote", "generation", "generation"]
    finally:
        db.close()
