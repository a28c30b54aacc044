"""Bulk writes of imported battles: one transaction, the judging rules checked set-wise, indexes built once.

Why this exists (issue 16: a million Arena battles in <= 20 s): written row by row, every battle
fires the five judging triggers of m008/m020 (each a few index look-ups) and updates ten
secondary indexes at random places; on 100k battles the triggers were half the SQLite time and
the indexes another quarter (CPU time, measured with bench/bench_import.py's rows).

What it does instead, all inside ONE write transaction (BEGIN IMMEDIATE), so no other connection
ever sees the tables without their triggers or indexes, and a crash or error rolls everything
back (nothing half-imported, every trigger and index as before):

1. the judging-rule triggers on battles and votes are dropped (their stored SQL is kept);
2. when the import is large against what the tables hold (at least 20k rows and twice the
   battles already there), their non-unique indexes are dropped too (unique indexes stay: they are what keeps `import_key` and pairs unique);
3. rows go in with `executemany`, only the columns an import sets;
4. the same rules the triggers enforce are checked once over the new id range
   (`check_rules`): both answers of a battle have the same input fingerprint, no imported answer
   is unfinished, battle k of the import has generations g+2k and g+2k+1 of the import (so no
   pair can repeat, in either order); the unique (battle_id, voter) index, kept, gives each
   voter one vote per battle. Any breach raises and rolls the whole import back;
5. triggers and indexes are re-created from their own stored SQL, exactly as they were.

PRAGMAs for the transaction only (restored after): a larger page cache and in-memory temp
storage for the index sorts; both are about memory, neither about durability.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database

from storage.db import StorageError

TABLES = ("generations", "battles", "votes")
RULE_TRIGGERS = ("battles_same_input", "battles_finished_answers", "battles_one_per_pair",
                 "votes_finished_answers", "votes_one_per_pair_per_voter")
DEFER_INDEXES_FROM_ROWS = 20_000
_CACHE_KIB = 262_144  # 256 MiB page cache for the import transaction only

GENERATION_COLUMNS = ("id", "created_at", "tstamp", "session_id", "model_id", "model_sha256", "backend",
                      "device", "mode", "rendered_prompt", "conversation", "output", "input_fingerprint",
                      "source")
BATTLE_COLUMNS = ("id", "created_at", "tstamp", "session_id", "left_generation_id", "right_generation_id",
                  "left_model", "right_model", "left_mode", "right_mode", "anonymous", "source", "import_key")
VOTE_COLUMNS = ("battle_id", "winner", "session_id", "created_at", "tstamp", "voter")


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
    saved = _drop(db, defer_indexes)
    pragmas = {name: db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("cache_size", "temp_store")}
    db.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
    db.execute("PRAGMA temp_store = MEMORY")
    try:
        yield
        for sql in saved:
            db.execute(sql)
    finally:
        for name, value in pragmas.items():
            db.execute(f"PRAGMA {name} = {int(value)}")


def _drop(db: Database, with_indexes: bool) -> list[str]:
    """Drop the rule triggers (and the tables' non-unique indexes); their SQL, to re-create them."""
    marks = ",".join("?" * len(TABLES))
    found = db.execute(f"SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ({marks}) AND sql IS NOT NULL "
                       "AND type IN ('trigger', 'index')", list(TABLES)).fetchall()
    saved = []
    for kind, name, sql in found:
        if kind == "trigger" and name in RULE_TRIGGERS:
            saved.append(sql)
            db.execute(f'DROP TRIGGER "{name}"')
        elif kind == "index" and with_indexes and not sql.upper().startswith("CREATE UNIQUE"):
            saved.append(sql)
            db.execute(f'DROP INDEX "{name}"')
    return saved


def insert_rows(db: Database, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One prepared INSERT, executemany'd over validated plain tuples.

    Why not sqlite-utils' `insert_all`: its per-value conversion took half the import time
    (100k Arena rows: 36 s against 18 s, measured in session 1).
    """
    if rows:
        sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
            table, ", ".join(f'"{c}"' for c in columns), ", ".join("?" * len(columns)))
        db.conn.executemany(sql, rows)


def check_rules(db: Database, first_generation: int, first_battle: int) -> None:
    """The judging triggers' rules, checked once over the rows written from these ids on.

    Raises StorageError (the caller rolls back) naming the first battle that breaks a rule.
    """
    from storage.migrations import _UNFINISHED_SQL  # the triggers' own definition of unfinished

    checks = (
        ("the two answers are to different inputs",
         "SELECT b.id FROM battles b JOIN generations l ON l.id = b.left_generation_id "
         "JOIN generations r ON r.id = b.right_generation_id WHERE b.id >= :b "
         "AND l.input_fingerprint IS NOT r.input_fingerprint LIMIT 1"),
        ("an answer was cancelled or failed",
         f"SELECT b.id FROM battles b JOIN generations g ON g.id IN (b.left_generation_id, b.right_generation_id) "
         f"WHERE b.id >= :b AND {_UNFINISHED_SQL} LIMIT 1"),
        ("its answers are not the next two fresh generations of this import",
         "SELECT b.id FROM battles b WHERE b.id >= :b AND (b.left_generation_id <> :g + 2 * (b.id - :b) "
         "OR b.right_generation_id <> b.left_generation_id + 1) LIMIT 1"),
    )
    params = {"b": first_battle, "g": first_generation}
    for what, sql in checks:
        found = db.execute(sql, params).fetchone()
        if found is not None:
            raise StorageError(f"import refused, nothing written: battle {found[0]}: {what}")
