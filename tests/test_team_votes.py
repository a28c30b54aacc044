"""Team quality, storage level: several annotators judge one battle, each once.

Real SQLite files; the database's own triggers are checked by writing past the API, and the m020
migration is run on a database written before votes had a voter.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from storage import GenerationRecord, create_battle, get_battle, insert_generation, open_database, record_vote
from storage.migrations import VOTER_FROM_SESSION_SQL, migrations
from storage.voters import vote_counts, voter_of_session


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "playground.db")
    yield database
    database.close()


def pair(db: Database, question: str = "q") -> tuple[int, int]:
    conv = [{"role": "user", "content": question}]
    return tuple(insert_generation(db, GenerationRecord(model_id=m, conversation=conv, output=f"{m}: {question}"))
                 for m in ("a", "b"))


def test_two_annotators_vote_on_one_battle_and_both_are_stored(db):
    a, b = pair(db)
    battle = create_battle(db, left_generation_id=a, right_generation_id=b, anonymous=True, session_id="user:ann/1")
    ann = record_vote(db, battle_id=battle, winner="left", session_id="user:ann/1")
    bob = record_vote(db, battle_id=battle, winner="right", session_id="user:bob/9")
    assert not ann.duplicate and not bob.duplicate and ann.vote_id != bob.vote_id
    votes = get_battle(db, battle)["votes"]
    assert [(v["voter"], v["winner"]) for v in votes] == [("ann", "left"), ("bob", "right")]
    assert vote_counts(db, "ann")["total"] == vote_counts(db, "bob")["total"] == 1
    assert vote_counts(db, None)["total"] == 2


def test_the_same_annotator_twice_returns_the_first_in_either_order(db):
    a, b = pair(db)
    ab = create_battle(db, left_generation_id=a, right_generation_id=b, anonymous=True, session_id="user:ann/1")
    first = record_vote(db, battle_id=ab, winner="left", session_id="user:ann/1")
    again = record_vote(db, battle_id=ab, winner="tie", session_id="user:ann/other-tab")
    ba = create_battle(db, left_generation_id=b, right_generation_id=a, anonymous=True, session_id="user:ann/2")
    reversed_ = record_vote(db, battle_id=ba, winner="right", session_id="user:ann/2")
    assert ba == ab
    for result in (again, reversed_):
        assert result.duplicate and result.vote_id == first.vote_id and result.winner == "left"
    assert db.execute("SELECT count(*) FROM votes").fetchone()[0] == 1


def test_the_database_refuses_a_second_vote_of_one_voter_from_any_writer(db):
    a, b = pair(db)
    battle = create_battle(db, left_generation_id=a, right_generation_id=b, anonymous=True, session_id="s")
    record_vote(db, battle_id=battle, winner="left", session_id="user:ann/1")
    insert = ("INSERT INTO votes (battle_id, winner, session_id, voter, created_at, tstamp) "
              "VALUES (?, 'right', 'x', ?, 't', 0)")
    with pytest.raises(sqlite3.IntegrityError, match="already judged|UNIQUE|already holds a row"):
        db.execute(insert, [battle, "ann"])
    db.execute(insert, [battle, "bob"])     # another voter: stored
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE votes SET voter = 'eve'")


def test_voter_of_session_matches_the_migration_sql(db):
    for session in ("user:ann/abc", "user:ann_2/x/y", "user:/x", "user:ann", "abc", "", None, "user:a:b/c"):
        sql = db.execute(f"SELECT {VOTER_FROM_SESSION_SQL} FROM (SELECT ? AS session_id)", [session]).fetchone()[0]
        assert sql == voter_of_session(session), session


def test_m020_fills_voter_from_session_ids_and_rewrites_nothing_else(tmp_path: Path):
    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m020_votes_voter")
    ids = []
    for n, session in enumerate(("user:ann/1", "user:bob/2", "plain-session")):
        conv = [{"role": "user", "content": f"q{n}"}]
        g = [insert_generation(old, GenerationRecord(model_id=m, conversation=conv, output=m)) for m in ("a", "b")]
        battle = create_battle(old, left_generation_id=g[0], right_generation_id=g[1], anonymous=True, session_id="s")
        old.execute("INSERT INTO votes (battle_id, winner, note, session_id, created_at, tstamp) "
                    "VALUES (?, 'left', 'n', ?, 't', ?)", [battle, session, float(n)])
        ids.append(battle)
    old.conn.commit()
    before = old.execute("SELECT * FROM votes ORDER BY id").fetchall()
    triggers_before = dict(old.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
    old.close()

    db = open_database(path)
    try:
        assert not migrations.pending(db)
        after = db.execute("SELECT id, battle_id, winner, note, session_id, created_at, tstamp FROM votes ORDER BY id"
                           ).fetchall()
        assert after == before                                           # nothing else rewritten
        assert [r[0] for r in db.execute("SELECT voter FROM votes ORDER BY id")] == ["ann", "bob", "local"]
        triggers = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())
        assert triggers["votes_append_only_update"] == triggers_before["votes_append_only_update"]
        assert "votes_one_per_pair" not in triggers and "votes_one_per_pair_per_voter" in triggers
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            db.execute("UPDATE votes SET voter = 'x'")
        assert not record_vote(db, battle_id=ids[0], winner="right", session_id="user:bob/3").duplicate
        assert record_vote(db, battle_id=ids[0], winner="right", session_id="user:ann/3").duplicate
    finally:
        db.close()
