"""storage: schema and migrations, connection settings, records, refusals, error paths."""
from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlite_utils import Database

import storage
from playground.errors import PlaygroundError
from playground.sampling import SamplingParams
from storage import (
    GenerationRecord,
    StorageError,
    VoteRefused,
    count_votes,
    create_battle,
    get_battle,
    insert_generation,
    open_database,
    record_vote,
    upsert_model,
    write_transaction,
)
from storage.migrations import migrations

REPO_ROOT = Path(__file__).resolve().parent.parent
STORAGE_MIGRATIONS = ["m001_initial_schema", "m002_query_indexes", "m003_battles_import_key"]
ALL_MIGRATIONS = [m.name for m in migrations.pending(Database(memory=True))]  # + other modules'


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "playground.db"


@pytest.fixture
def db(db_path: Path):
    database = open_database(db_path)
    yield database
    database.close()


def make_generation(db: Database, model: str = "model-a", **changes) -> int:
    fields = {"model_id": model, "conversation": [{"role": "user", "content": "2+2?"}],
              "output": "4", "mode": "zero_shot", **changes}
    return insert_generation(db, GenerationRecord(**fields))


def make_battle(db: Database) -> int:
    left, right = make_generation(db, "model-a"), make_generation(db, "model-b")
    return create_battle(db, left_generation_id=left, right_generation_id=right,
                         anonymous=True, session_id="s1", source="playground")


def applied_names(db: Database) -> list[str]:
    return [m.name for m in migrations.applied(db)]


# ---------------------------------------------------------------- schema and migrations


def test_first_open_creates_parent_dir_file_and_full_schema(db_path: Path) -> None:
    assert not db_path.parent.exists()
    db = open_database(db_path)
    try:
        assert db_path.is_file()
        assert {"models", "generations", "battles", "votes"} <= set(db.table_names())
        assert ALL_MIGRATIONS[:3] == STORAGE_MIGRATIONS  # append-only: these never move
        assert applied_names(db) == ALL_MIGRATIONS
    finally:
        db.close()


def test_opening_twice_is_a_no_op(db_path: Path) -> None:
    first = open_database(db_path)
    schema, applied = first.schema, list(first["_sqlite_migrations"].rows)
    first.close()
    second = open_database(db_path)
    try:
        assert second.schema == schema
        assert list(second["_sqlite_migrations"].rows) == applied
    finally:
        second.close()


def test_older_schema_is_migrated_on_open_and_keeps_its_rows(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    old = Database(db_path)
    migrations.apply(old, stop_before=ALL_MIGRATIONS[1:])
    assert applied_names(old) == ["m001_initial_schema"]
    assert "import_key" not in old["battles"].columns_dict
    # rows as the code of that time wrote them (the API now needs the tables of later migrations)
    conversation = '[{"role": "user", "content": "q"}]'
    for gid in (1, 2):
        old.execute("INSERT INTO generations (id, created_at, tstamp, model_id, mode, conversation, output, source) "
                    "VALUES (?, 't', 0, ?, '', ?, 'a', 'local')", [gid, f"model-{gid}", conversation])
    battle_id = old["battles"].insert({"created_at": "t", "tstamp": 0, "session_id": "s1", "left_generation_id": 1,
                                       "right_generation_id": 2, "left_model": "model-1", "right_model": "model-2",
                                       "left_mode": "", "right_mode": "", "anonymous": 1,
                                       "source": "playground"}).last_pk
    old["votes"].insert({"battle_id": battle_id, "winner": "tie", "session_id": "s1", "created_at": "t", "tstamp": 0})
    old.conn.commit()
    old.close()

    db = open_database(db_path)
    try:
        assert applied_names(db) == ALL_MIGRATIONS
        assert "import_key" in db["battles"].columns_dict
        assert ["tstamp"] in [index.columns for index in db["votes"].indexes]
        assert count_votes(db) == 1
        assert get_battle(db, battle_id)["vote"]["winner"] == "tie"
    finally:
        db.close()


def test_wal_mode_persists_in_the_file(db: Database, db_path: Path) -> None:
    assert db.journal_mode == "wal"
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_connection_settings(db: Database) -> None:
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 30_000
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_foreign_keys_are_enforced(db: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        db.execute("INSERT INTO votes (battle_id, winner, created_at, tstamp) "
                   "VALUES (999, 'left', 'now', 0)")


def test_winner_is_checked_by_the_database_too(db: Database) -> None:
    battle_id = make_battle(db)
    with pytest.raises(sqlite3.IntegrityError, match="winner"):
        db.execute("INSERT INTO votes (battle_id, winner, created_at, tstamp) "
                   "VALUES (?, 'model_a', 'now', 0)", [battle_id])
    record_vote(db, battle_id=battle_id, winner="left", session_id="s1")
    with pytest.raises(sqlite3.IntegrityError, match="winner|append-only"):
        db.execute("UPDATE votes SET winner = 'LEFT'")
    assert get_battle(db, battle_id)["vote"]["winner"] == "left"


def test_unique_constraints_in_the_database(db: Database) -> None:
    battle_id = make_battle(db)
    battle = get_battle(db, battle_id)
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE|already has a battle|already holds a row"):
        db.execute(
            "INSERT INTO battles (created_at, tstamp, left_generation_id, right_generation_id, "
            "left_model, right_model, left_mode, right_mode, anonymous, source) "
            "VALUES ('now', 0, ?, ?, 'a', 'b', '', '', 1, 'playground')",
            [battle["left_generation_id"], battle["right_generation_id"]],
        )
    record_vote(db, battle_id=battle_id, winner="left", session_id="s1")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE|already judged|already holds a row"):
        db.execute("INSERT INTO votes (battle_id, winner, created_at, tstamp) "
                   "VALUES (?, 'right', 'now', 0)", [battle_id])


def test_concurrent_first_open_applies_each_migration_once(db_path: Path) -> None:
    errors: list[BaseException] = []

    def opener() -> None:
        try:
            open_database(db_path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    db = open_database(db_path)
    try:
        assert applied_names(db) == ALL_MIGRATIONS
    finally:
        db.close()


def test_a_connection_cannot_cross_threads(db: Database) -> None:
    caught: list[BaseException] = []
    thread = threading.Thread(target=lambda: _try(lambda: count_votes(db), caught))
    thread.start()
    thread.join()
    assert len(caught) == 1 and isinstance(caught[0], sqlite3.ProgrammingError)


def _try(action, caught: list[BaseException]) -> None:
    try:
        action()
    except BaseException as exc:
        caught.append(exc)


# ---------------------------------------------------------------- records


def test_generation_round_trip(db: Database) -> None:
    sampling = SamplingParams(temperature=0.7, seed=3, stop=("\nQ:",))
    samples = {"paths": ["4", "4", "5"], "tally": {"4": 2, "5": 1}}
    gen_id = insert_generation(db, GenerationRecord(
        model_id="model-a", conversation=({"role": "user", "content": "héllo"},),
        output="4", mode="self_consistency", samples=samples, sampling=sampling,
        n_prompt_tokens=12, ttft_s=0.05, tstamp=1_700_000_000.25, session_id="s9",
    ))
    row = db["generations"].get(gen_id)
    assert json.loads(row["conversation"]) == [{"role": "user", "content": "héllo"}]
    assert json.loads(row["samples"]) == samples
    assert json.loads(row["sampling"])["stop"] == ["\nQ:"]
    assert row["tstamp"] == 1_700_000_000.25
    assert row["created_at"] == "2023-11-14T22:13:20.250000+00:00"
    assert row["source"] == "local" and row["session_id"] == "s9"


def test_generation_times_default_to_now(db: Database) -> None:
    row = db["generations"].get(make_generation(db))
    assert row["tstamp"] > 1_700_000_000
    assert row["created_at"].endswith("+00:00")


@pytest.mark.parametrize("changes, problem", [
    ({"model_id": ""}, "model_id"),
    ({"source": "arena"}, "source"),
    ({"conversation": "hi"}, "conversation"),
    ({"conversation": [{"role": "robot", "content": "x"}]}, "role"),
    ({"conversation": [{"role": "user", "content": None}]}, "content"),
    ({"samples": {"bad": object()}}, "samples"),
])
def test_invalid_generation_is_refused(db: Database, changes: dict, problem: str) -> None:
    with pytest.raises(StorageError, match=problem):
        make_generation(db, **changes)
    assert db["generations"].count == 0


def test_upsert_model_inserts_once_per_model_and_hash(db: Database) -> None:
    info = dict(display_name="Model A", backend="llama_cpp", path="/m/a.gguf", n_params=135,
                quantization="Q4_K_M", context_length=2048, is_chat=True)
    first = upsert_model(db, model_id="a", sha256="abc", **info)
    assert upsert_model(db, model_id="a", sha256="abc", **{**info, "display_name": "x"}) == first
    other_file = upsert_model(db, model_id="a", sha256="def", **info)
    unknown_hash = upsert_model(db, model_id="a", sha256=None, **info)
    assert len({first, other_file, unknown_hash}) == 3
    assert upsert_model(db, model_id="a", sha256=None, **info) == unknown_hash
    assert db["models"].get(first)["display_name"] == "Model A"
    assert db["models"].get(first)["is_chat"] == 1


def test_create_battle_copies_contestants_and_is_idempotent(db: Database) -> None:
    left = make_generation(db, "model-a", mode="few_shot")
    right = make_generation(db, "model-b", mode="zero_shot_cot")
    battle_id = create_battle(db, left_generation_id=left, right_generation_id=right,
                              anonymous=False, session_id="s1", source="playground")
    again = create_battle(db, left_generation_id=left, right_generation_id=right,
                          anonymous=False, session_id="s1", source="playground")
    assert again == battle_id
    battle = get_battle(db, battle_id)
    assert (battle["left_model"], battle["right_model"]) == ("model-a", "model-b")
    assert (battle["left_mode"], battle["right_mode"]) == ("few_shot", "zero_shot_cot")
    assert battle["anonymous"] == 0 and battle["vote"] is None
    swapped = create_battle(db, left_generation_id=right, right_generation_id=left,
                            anonymous=False, session_id="s1", source="playground")
    assert swapped == battle_id   # a battle is the unordered pair of answers


def test_get_battle_unknown_is_none(db: Database) -> None:
    assert get_battle(db, 12345) is None


# ---------------------------------------------------------------- refusals


def test_vote_on_unknown_battle_is_refused(db: Database) -> None:
    with pytest.raises(VoteRefused, match="battle 4242 does not exist"):
        record_vote(db, battle_id=4242, winner="left", session_id="s1")
    assert count_votes(db) == 0


@pytest.mark.parametrize("winner", ["model_a", "LEFT", "", "tie (bothbad)", None])
def test_invalid_winner_is_refused(db: Database, winner) -> None:
    battle_id = make_battle(db)
    with pytest.raises(VoteRefused, match="winner"):
        record_vote(db, battle_id=battle_id, winner=winner, session_id="s1")
    assert count_votes(db) == 0


def test_second_vote_returns_the_first(db: Database) -> None:
    battle_id = make_battle(db)
    first = record_vote(db, battle_id=battle_id, winner="both_bad", session_id="s1", note="meh")
    second = record_vote(db, battle_id=battle_id, winner="left", session_id="s1")
    assert first.duplicate is False and second.duplicate is True
    assert (second.vote_id, second.battle_id, second.winner) == (first.vote_id, battle_id,
                                                                 "both_bad")
    assert count_votes(db) == 1
    assert get_battle(db, battle_id)["vote"]["note"] == "meh"


def test_battle_with_unknown_generation_is_refused(db: Database) -> None:
    left = make_generation(db)
    with pytest.raises(VoteRefused, match="right generation 999 does not exist"):
        create_battle(db, left_generation_id=left, right_generation_id=999,
                      anonymous=True, session_id="s1", source="playground")
    assert db["battles"].count == 0


def test_battle_with_failed_generation_is_refused(db: Database) -> None:
    ok = make_generation(db)
    failed = make_generation(db, output="", error="out of memory", finish_reason="error")
    partial = make_generation(db, output="4 because", error="cancelled", finish_reason="cancelled")
    cut = make_generation(db, output="4 because", finish_reason="length")
    with pytest.raises(VoteRefused, match="failed with no output"):
        create_battle(db, left_generation_id=failed, right_generation_id=ok,
                      anonymous=True, session_id="s1", source="playground")
    with pytest.raises(VoteRefused, match="cut by Stop"):   # a partial answer is not a finished one
        create_battle(db, left_generation_id=partial, right_generation_id=ok,
                      anonymous=True, session_id="s1", source="playground")
    assert create_battle(db, left_generation_id=cut, right_generation_id=ok,
                         anonymous=True, session_id="s1", source="playground") > 0


def test_battle_against_itself_or_unknown_source_is_refused(db: Database) -> None:
    gen = make_generation(db)
    other = make_generation(db)
    with pytest.raises(VoteRefused, match="two different"):
        create_battle(db, left_generation_id=gen, right_generation_id=gen,
                      anonymous=True, session_id="s1", source="playground")
    with pytest.raises(VoteRefused, match="source"):
        create_battle(db, left_generation_id=gen, right_generation_id=other,
                      anonymous=True, session_id="s1", source="web")


def test_battle_and_vote_share_one_transaction(db: Database) -> None:
    left, right = make_generation(db), make_generation(db)
    with pytest.raises(VoteRefused):
        with write_transaction(db):
            create_battle(db, left_generation_id=left, right_generation_id=right,
                          anonymous=True, session_id="s1", source="playground")
            record_vote(db, battle_id=10**9, winner="left", session_id="s1")
    assert db["battles"].count == 0  # the refused vote took its battle with it
    with write_transaction(db):
        battle_id = create_battle(db, left_generation_id=left, right_generation_id=right,
                                  anonymous=True, session_id="s1", source="playground")
        record_vote(db, battle_id=battle_id, winner="right", session_id="s1")
    assert count_votes(db) == 1


def test_errors_are_playground_errors() -> None:
    assert issubclass(StorageError, PlaygroundError)
    assert issubclass(VoteRefused, StorageError)
    assert set(storage.__all__) >= {"open_database", "record_vote", "import_arena_battles"}


# ---------------------------------------------------------------- files that cannot be used


def test_directory_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory") as info:
        open_database(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_parent_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(StorageError) as info:
        open_database(blocker / "playground.db")
    assert str(blocker / "playground.db") in str(info.value)


@pytest.mark.parametrize("content", [
    os.urandom(4096),
    b"this is a text file, not a database\n" * 100,
], ids=["random-bytes", "text-file"])
def test_corrupt_file_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.db"
    path.write_bytes(content)
    with pytest.raises(StorageError, match="not a playground database or is corrupt") as info:
        open_database(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == content  # never touched


def test_empty_file_becomes_a_new_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    open_database(path).close()
    assert path.stat().st_size > 0


READ_ONLY_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
from storage import StorageError, open_database
try:
    open_database(sys.argv[2]).close()
except StorageError as exc:
    print("StorageError:", exc)
else:
    print("opened")
"""


def _run_without_root_file_powers(path: Path) -> str:
    """Run the open in a child that cannot bypass file permissions, even as root."""
    command = [sys.executable, "-c", READ_ONLY_CHECK, str(REPO_ROOT), str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv: chmod cannot make a file read-only")
        command = [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("existing", [True, False], ids=["existing-file", "new-file"])
def test_read_only_location_is_refused(tmp_path: Path, existing: bool) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "playground.db"
    if existing:
        open_database(path).close()
        path.chmod(0o444)
    folder.chmod(0o555)
    try:
        out = _run_without_root_file_powers(path)
    finally:
        folder.chmod(0o755)
    assert out.startswith("StorageError:"), out
    assert "read-only" in out and str(path) in out
