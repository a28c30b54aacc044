"""Bulk writes of imported battles: one transaction, staged set-wise copies, rules checked set-wise, indexes built once.

Why this exists (the target: a million Arena battles in <= 20 s): written row by row, every battle
fired the judging triggers of m008/m020 and the foreign-key look-ups (each a few index
look-ups) and updated eleven indexes at random places; each battle was also bound as four rows
(47 values) from Python.

What it does instead. First, with NO write lock (the app's writers carry on): each batch of
validated rows is bound once into a private temporary database attached to the import's
connection (`StageWriter.write`). Then, all inside ONE write transaction (BEGIN IMMEDIATE), so no
other connection ever sees the tables without their triggers or indexes, and a crash or error
rolls everything back (nothing half-imported, every trigger and index as before; journal_mode
and synchronous are not touched, so a crash cannot lose or corrupt votes already stored: WAL
simply discards the uncommitted import), `StageWriter.copy`:

1. the rule triggers on battles and votes are dropped (their stored SQL is kept); foreign keys
   are off for the import (`import_pragmas`, outside the transaction, restored after);
2. when the import is large against what the tables hold (at least 20k rows and twice the
   battles already there), the tables' indexes are dropped too: the unique ones as well when no
   battle has an import_key yet (a first import; otherwise `import_key`'s index stays, since
   every row is looked up in it);
3. the staged rows are copied set-wise by INSERT ... SELECT into generations, battles and votes;
4. the rules of the dropped triggers and of the foreign keys are checked set-wise over the new
   rows (`check_rules`): both answers of a battle exist and have
   the same input fingerprint, none is unfinished, battle k of the import has generations g+2k
   and g+2k+1 of the import (so no pair can repeat, in either order), every new vote is one of
   the new battles, with a valid winner and not a judge's. Any breach raises and rolls the whole import back;
5. triggers and indexes are re-created from their own stored SQL, exactly as they were
   (re-creating a unique index re-checks uniqueness: a duplicate fails the import).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database

from storage.db import StorageError
from storage.voters import voter_of_session

TABLES = ("generations", "battles", "votes")
RULE_TRIGGERS = ("battles_same_input", "battles_finished_answers", "battles_one_per_pair",
                 "votes_finished_answers", "votes_one_per_pair_per_voter",
                 "votes_winner_check_insert", "votes_judge_needs_verdicts",
                 "generations_no_replace", "battles_no_replace", "votes_no_replace")
DEFER_INDEXES_FROM_ROWS = 20_000
_CACHE_KIB = 1_048_576  # 1 GiB page cache at most, for the import only: a million battles make a 1.1 GB file



def next_id(db: Database, table: str) -> int:
    """Next free id; safe because the caller holds the write lock."""
    return int(db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0])


@contextmanager
def bulk_mode(db: Database, expected_battles: int) -> Iterator[None]:
    """Inside an open write transaction: rule triggers off (and big imports' indexes), back at the end.

    The caller must call `check_rules` for the rows it wrote before leaving the block.
    """
    if not db.conn.in_transaction:
        raise RuntimeError("bulk_mode needs an open write transaction")
    present = next_id(db, "battles") - 1
    # Rebuilding an index costs a sort of the whole table: worth it only when the file is large against the
    # table (not for a re-import of the same file, which finds every row present and adds nothing).
    defer_indexes = expected_battles >= DEFER_INDEXES_FROM_ROWS and expected_battles >= 2 * present
    # Unique indexes too when no battle has an import_key yet (a first import): nothing needs looking up
    # during the load, and re-creating a unique index re-checks uniqueness (a duplicate fails the import).
    defer_unique = defer_indexes and not _has_import_keys(db)
    saved = _drop(db, defer_indexes, defer_unique)
    yield
    for sql in saved:
        db.execute(sql)


@contextmanager
def import_pragmas(db: Database) -> Iterator[None]:
    """Around (outside) the import's transaction: a big page cache, temp tables and sorts in memory,
    foreign keys off; all restored after. (`PRAGMA threads` for the index sorts was measured too:
    no faster, 10% more CPU, on a 2-core machine, so it is not set.)

    Each is about memory or CPU, none about durability (journal and synchronous are left alone).
    Foreign keys are off for the import (each battle looked up its two generations, each vote its
    battle): `check_rules` checks the same references set-wise before commit. temp_store and
    foreign_keys can only change outside a transaction, hence this wraps it.
    """
    names = ("cache_size", "temp_store", "foreign_keys")
    pragmas = {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in names}
    # Changing temp_store deletes the connection's TEMP tables: only when it has none (the app makes none).
    keep_temp = db.conn.in_transaction or db.execute("SELECT count(*) FROM temp.sqlite_master").fetchone()[0] > 0
    if keep_temp:
        del pragmas["temp_store"]
    db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    if not db.conn.in_transaction:  # both are no-ops inside one (then the import runs with them as they are)
        if not keep_temp:
            db.execute("PRAGMA temp_store = MEMORY")
        db.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        for name, value in pragmas.items():
            if name == "cache_size" or not db.conn.in_transaction:
                db.execute(f"PRAGMA {name} = {int(value)}")


def _has_import_keys(db: Database) -> bool:
    return db.execute("SELECT 1 FROM battles WHERE import_key IS NOT NULL LIMIT 1").fetchone() is not None


def _drop(db: Database, with_indexes: bool, with_unique: bool) -> list[str]:
    """Drop the rule triggers (and the tables' indexes, unique ones too if asked); their SQL, to re-create them."""
    marks = ",".join("?" * len(TABLES))
    found = db.execute(f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({marks}) AND sql IS NOT NULL "
                       "AND type IN ('trigger', 'index')", list(TABLES)).fetchall()
    saved = []
    for kind, name, sql in found:
        if kind == "trigger" and name in RULE_TRIGGERS:
            saved.append(sql)
            db.execute(f'DROP TRIGGER "{name}"')
        elif kind == "index" and with_indexes and (with_unique or not sql.upper().startswith("CREATE UNIQUE")):
            saved.append(sql)
            db.execute(f'DROP INDEX "{name}"')
    return saved


STAGE_COLUMNS = ("import_key", "session_id", "tstamp", "created_at", "anonymous", "winner", "model_a", "model_b",
                 "conversation_a", "output_a", "conversation_b", "output_b", "input_fingerprint")
# Every imported session id is 'import' or 'import:<question id>', so no imported row names a user:
# all votes are the local voter's (storage/voters.py `voter_of_session`, the rule m020 applies in SQL).
IMPORT_SESSION_PREFIX = "import"

STAGE_SCHEMA = "import_stage"

# One staged battle becomes generations g+2k (side 0, model_a) and g+2k+1 (side 1, model_b), battle b+k and
# its vote, where k = stage row - 1. `import_stage CROSS JOIN sides` walks the stage in row order with the two
# sides inside, so ids arrive ascending (appends, no B-tree splits) without an ORDER BY sort.
GENERATIONS_FROM_STAGE = (
    "INSERT INTO generations (id, created_at, tstamp, session_id, model_id, model_sha256, backend, device, mode, "
    "rendered_prompt, conversation, output, input_fingerprint, source) "
    "SELECT :g + 2 * (s.k - 1) + side.n, s.created_at, s.tstamp, s.session_id, "
    "CASE side.n WHEN 0 THEN s.model_a ELSE s.model_b END, '', 'import', '', '', '', "
    "CASE side.n WHEN 0 THEN s.conversation_a ELSE s.conversation_b END, "
    "CASE side.n WHEN 0 THEN s.output_a ELSE s.output_b END, s.input_fingerprint, 'import' "
    "FROM import_stage.rows s CROSS JOIN (SELECT 0 AS n UNION ALL SELECT 1) side"
)
BATTLES_FROM_STAGE = (
    "INSERT INTO battles (id, created_at, tstamp, session_id, left_generation_id, right_generation_id, left_model, "
    "right_model, left_mode, right_mode, anonymous, source, import_key) "
    "SELECT :b + s.k - 1, s.created_at, s.tstamp, s.session_id, :g + 2 * (s.k - 1), :g + 2 * (s.k - 1) + 1, "
    "s.model_a, s.model_b, '', '', s.anonymous, 'import', s.import_key FROM import_stage.rows s"
)
VOTES_FROM_STAGE = (
    "INSERT INTO votes (battle_id, winner, session_id, created_at, tstamp, voter) "
    "SELECT :b + s.k - 1, s.winner, s.session_id, s.created_at, s.tstamp, :voter FROM import_stage.rows s"
)


class StageWriter:
    """Stages validated battles (one tuple of STAGE_COLUMNS each) outside the write lock, then copies them in.

    Why two steps: the import used to hold SQLite's write lock while it parsed and validated the
    whole file (about two minutes for a million rows on a busy machine), and every vote, answer
    and Arena round of every user waited for it and failed. Now `write` puts each batch into a
    private temporary database attached to the import's connection (`ATTACH ''`: SQLite deletes
    its file itself, even when the process is killed), which takes no lock on the playground
    database; only `copy` runs inside the write transaction: three set-wise INSERT ... SELECT,
    the rules checked over the new rows, and (`bulk_mode`) the indexes re-built. Battle k of the
    stage (k = 1, 2, ...) gets generations first_generation + 2(k-1) and + 1 and battle
    first_battle + k - 1: the layout `check_rules` verifies.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.staged = 0
        self.first_generation = self.first_battle = 0
        self.check_keys = _has_import_keys(db)
        self.battles_seen = next_id(db, "battles")  # battles from here on were stored while this import staged
        db.execute(f"ATTACH DATABASE '' AS {STAGE_SCHEMA}")
        db.execute(f"PRAGMA {STAGE_SCHEMA}.journal_mode = OFF")  # a scratch file: nothing to recover
        db.execute(f"PRAGMA {STAGE_SCHEMA}.synchronous = OFF")
        db.execute(f"CREATE TABLE {STAGE_SCHEMA}.rows (k INTEGER PRIMARY KEY, {', '.join(STAGE_COLUMNS)})")
        self._insert = "INSERT INTO {}.rows ({}) VALUES ({})".format(
            STAGE_SCHEMA, ", ".join(STAGE_COLUMNS), ", ".join("?" * len(STAGE_COLUMNS)))

    def write(self, rows: Sequence[Sequence[Any]]) -> int:
        """Stage the rows whose import_key is not in the database yet; how many that was. No write lock."""
        if self.check_keys and rows:
            present = _present_keys(self.db, [row[0] for row in rows])
            if present:
                rows = [row for row in rows if row[0] not in present]
        if not rows:
            return 0
        conn = self.db.conn
        conn.executemany(self._insert, rows)  # k continues 1, 2, ... in file order
        conn.commit()  # the stage's own transaction; the playground database was only read
        self.staged += len(rows)
        return len(rows)

    def copy(self) -> int:
        """Inside the write transaction (and `bulk_mode`): every staged battle into generations, battles, votes.

        Rows another import stored while this one staged are refused (nothing written; run again)
        rather than stored twice. Returns the battles written; a broken rule raises StorageError.
        """
        db = self.db
        if not db.conn.in_transaction:
            raise RuntimeError("StageWriter.copy needs an open write transaction")
        if self.staged == 0:
            return 0
        if _keys_since(db, self.battles_seen):
            db.execute(f"CREATE INDEX IF NOT EXISTS {STAGE_SCHEMA}.rows_key ON rows (import_key)")
            clash = db.execute(f"SELECT count(*) FROM battles b JOIN {STAGE_SCHEMA}.rows s ON s.import_key = "
                               "b.import_key WHERE b.id >= ?", [self.battles_seen]).fetchone()[0]
            if clash:
                raise StorageError(f"import refused, nothing written: another import stored {clash} of these "
                                   "battles while this one read the file; run the import again (it adds only "
                                   "what is missing)")
        self.first_generation = next_id(db, "generations")
        self.first_battle = next_id(db, "battles")
        params = {"g": self.first_generation, "b": self.first_battle, "voter": voter_of_session(IMPORT_SESSION_PREFIX)}
        from_vote = next_id(db, "votes")
        conn = db.conn
        conn.execute(GENERATIONS_FROM_STAGE, params)
        conn.execute(BATTLES_FROM_STAGE, params)
        conn.execute(VOTES_FROM_STAGE, params)
        check_rules(db, self.first_generation, self.first_battle, self.first_battle, from_vote)
        return self.staged

    def close(self) -> None:
        """Detach (and so delete) the stage; outside any transaction."""
        if self.db.conn.in_transaction:
            self.db.conn.commit()
        self.db.execute(f"DETACH DATABASE {STAGE_SCHEMA}")


def _keys_since(db: Database, battle_id: int) -> bool:
    return db.execute("SELECT 1 FROM battles WHERE id >= ? AND import_key IS NOT NULL LIMIT 1",
                      [battle_id]).fetchone() is not None


def _present_keys(db: Database, keys: list[str], per_query: int = 5_000) -> set[str]:
    present: set[str] = set()
    for start in range(0, len(keys), per_query):
        chunk = keys[start:start + per_query]
        sql = f"SELECT import_key FROM battles WHERE import_key IN ({','.join('?' * len(chunk))})"
        present.update(row[0] for row in db.execute(sql, chunk))
    return present


def check_rules(db: Database, first_generation: int, first_battle: int, from_battle: int, from_vote: int) -> None:
    """The rules of the dropped triggers and foreign keys, checked over the battles from `from_battle` on
    and the votes from `from_vote` on (an import's first ids are `first_generation` and `first_battle`).

    `StageWriter.copy` calls it once over all the rows it copied. Raises StorageError (the caller rolls back)
    naming the first battle that breaks a rule.
    """
    from storage.migrations import _UNFINISHED_SQL, JUDGE_VOTER_GLOB, WINNERS  # the triggers' own definitions

    unfinished = {side: _UNFINISHED_SQL.replace("g.", f"{side}.") for side in ("l", "r")}
    checks = (  # one pass over the new battles with both their answers, then one over the new votes
        ("the two answers are to different inputs, or one is missing, cancelled or failed, or they are not "
         "the next two fresh generations of this import",
         "SELECT b.id FROM battles b LEFT JOIN generations l ON l.id = b.left_generation_id "
         "LEFT JOIN generations r ON r.id = b.right_generation_id WHERE b.id >= :from_b "
         "AND (l.id IS NULL OR r.id IS NULL OR l.input_fingerprint IS NOT r.input_fingerprint "
         f"OR {unfinished['l']} OR {unfinished['r']} "
         "OR b.left_generation_id <> :g + 2 * (b.id - :b) OR b.right_generation_id <> b.left_generation_id + 1) "
         "LIMIT 1"),
        ("its vote is not one of this import's battles, or not left, right, tie or both_bad, or a judge's",
         "SELECT v.battle_id FROM votes v WHERE v.id >= :from_v AND (v.battle_id < :b OR v.battle_id >= :b_end "
         f"OR v.winner IS NULL OR v.winner NOT IN ({', '.join(repr(w) for w in WINNERS)}) "
         f"OR v.voter GLOB '{JUDGE_VOTER_GLOB}') LIMIT 1"),
    )
    params = {"b": first_battle, "g": first_generation, "from_b": from_battle, "from_v": from_vote,
              "b_end": next_id(db, "battles")}
    for what, sql in checks:
        found = db.execute(sql, params).fetchone()
        if found is not None:
            raise StorageError(f"import refused, nothing written: battle {found[0]}: {what}")
