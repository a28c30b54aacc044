"""The Arena's saved pool: which models battles are drawn from until it is changed or cleared.

Set by `python app.py arena pool --models A,B` or the Train tab's "Battle it against its base"
button; read by the Arena tab before each new pair. Rows of `arena_pool` (m040) are append-only:
the latest row is the pool in force, and clearing writes a row with no models, so the history of
pool changes stays readable. Checking that the ids are catalog models is the caller's job
(storage does not know the catalog).
"""
from __future__ import annotations

import json
from collections.abc import Sequence

from sqlite_utils import Database

from storage.db import StorageError, storage_errors, write_transaction
from storage.records import resolve_times


def set_arena_pool(db: Database, models: Sequence[str], *, set_by: str = "") -> tuple[str, ...]:
    """Save `models` (order kept, repeats dropped; at least two) as the pool; returns what was saved."""
    pool = tuple(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if len(pool) < 2:
        raise StorageError(f"a saved Arena pool needs at least two different models, got {len(pool)}: "
                           "name two or more (e.g. a base model and the model tuned from it)")
    _write(db, pool, set_by)
    return pool


def clear_arena_pool(db: Database, *, set_by: str = "") -> None:
    """Clear the saved pool: the Arena draws from each user's own model choice again."""
    _write(db, (), set_by)


def current_arena_pool(db: Database) -> tuple[str, ...] | None:
    """The saved pool's model ids, or None when none is set (never set, or cleared)."""
    row = db.execute("SELECT models FROM arena_pool ORDER BY id DESC LIMIT 1").fetchone()
    models = tuple(json.loads(row[0])) if row else ()
    return models or None


def _write(db: Database, models: tuple[str, ...], set_by: str) -> None:
    created_at, tstamp = resolve_times()
    with storage_errors(db, "save the Arena pool"), write_transaction(db):
        db.execute("INSERT INTO arena_pool (created_at, tstamp, models, set_by) VALUES (?, ?, ?, ?)",
                   [created_at, tstamp, json.dumps(list(models)), set_by])
