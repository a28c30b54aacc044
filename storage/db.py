"""Opening the playground database and running writes in short, safe transactions.

One `Database` (one SQLite connection) belongs to one thread: open one per request, per worker
thread or per process with `open_database`. WAL mode makes that cheap, lets readers run while a
vote is written, and the busy timeout makes concurrent writers queue instead of failing.
"""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from playground.errors import PlaygroundError
from storage.migrations import migrations

BUSY_TIMEOUT_S = 30.0  # one wait of SQLite's busy handler
WRITE_WAIT_S = 120.0  # how long a writer waits for the write lock, retrying, before it gives up with a message


class StorageError(PlaygroundError):
    """The database cannot be opened or written; the message names the file and the fix."""


def open_database(path: str | Path) -> Database:
    """Open (creating on first run) the database at `path`, migrated to the current schema.

    The connection is in WAL mode with foreign keys on and a 30 s busy timeout. It must stay
    in the thread that opened it (sqlite3 enforces this): open one per request or thread.
    Raises `StorageError` naming the path when the file is a directory, corrupt or read-only.
    """
    path = Path(path).expanduser()
    _check_path(path)
    conn = _connect(path)
    try:
        db = Database(conn, execute_plugins=False)
        _configure(db)
        apply_migrations(db)
    except sqlite3.Error as exc:
        conn.close()
        raise explain_error(path, exc, "open the database") from exc
    except BaseException:
        conn.close()
        raise
    return db


def apply_migrations(db: Database) -> None:
    """Apply pending migrations; safe when several processes open a new file at once.

    The pending check is a cheap read; only when something is pending is the write lock taken,
    and `Migrations.apply` re-reads what is pending under it, so each migration runs once.
    """
    if not migrations.pending(db):
        return
    with write_transaction(db):
        migrations.apply(db)


@contextmanager
def write_transaction(db: Database, action: str = "write to the database") -> Iterator[Database]:
    """`db.atomic()` that takes SQLite's write lock up front (BEGIN IMMEDIATE), waiting for it.

    Why: in WAL mode a deferred transaction that reads and then writes fails at once with
    "database is locked" when another connection committed in between; the busy timeout does
    not help there. Taking the lock first makes writers wait their turn instead. A writer waits
    up to WRITE_WAIT_S for another connection's write (an import's final copy, another vote),
    retrying, and then raises StorageError saying what was not saved (`action`) and to try again:
    never a raw sqlite3 error. Nested use (or use inside an open transaction) becomes a savepoint
    through `db.atomic()`.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    begin_immediate(db, action)
    try:
        yield db
    except BaseException:
        db.rollback()
        raise
    try:
        db.conn.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


def begin_immediate(db: Database, action: str = "write to the database") -> None:
    """BEGIN IMMEDIATE, waiting (SQLite's busy handler, then retries) up to WRITE_WAIT_S in all."""
    began = time.monotonic()
    while True:
        left = WRITE_WAIT_S - (time.monotonic() - began)
        db.conn.execute(f"PRAGMA busy_timeout = {max(1, int(min(left, BUSY_TIMEOUT_S) * 1000))}")
        try:
            db.conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc):
                raise
            if time.monotonic() - began >= WRITE_WAIT_S:
                raise StorageError(
                    f"Could not {action}: database {database_file(db)} was busy for "
                    f"{time.monotonic() - began:.0f} s (another process holds a long write, such as an "
                    "import). Nothing was saved; try again in a minute.") from exc
            time.sleep(0.05)
        finally:
            db.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


@contextmanager
def storage_errors(db: Database, action: str) -> Iterator[None]:
    """Re-raise operational failures (lock timeout, disk full, read-only) as StorageError.

    Integrity and programming errors (e.g. a connection used from another thread) pass
    through: they are refusals the caller handles, or bugs.
    """
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError):
        raise
    except sqlite3.DatabaseError as exc:
        raise explain_error(database_file(db), exc, f"{action} (nothing was saved)") from exc


def database_file(db: Database) -> str:
    """The file behind a connection, for messages."""
    try:
        return next(r[2] for r in db.conn.execute("PRAGMA database_list") if r[1] == "main")
    except Exception:  # naming the file must never hide the error being reported
        return "(unknown file)"


def _check_path(path: Path) -> None:
    """Refuse paths SQLite would fail on with an unhelpful message."""
    if path.is_dir():
        raise StorageError(
            f"Database path {path} is a directory. Pass a file path instead, "
            f"for example {path / 'playground.db'}."
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"Cannot create the folder for database {path}: {exc.strerror or exc}. "
            "Choose a writable location with --db or PLAYGROUND_DB."
        ) from exc
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise _read_only(path)
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise _read_only(path)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        return sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise explain_error(path, exc, "open the database") from exc


def _configure(db: Database) -> None:
    """Connection settings; the first statement also proves the file is a database."""
    db.execute("PRAGMA foreign_keys = ON")
    db.enable_wal()
    # NORMAL is the documented safe choice with WAL: a commit survives a crash of the
    # process; only a power cut may drop the last commits, never corrupt the file.
    db.execute("PRAGMA synchronous = NORMAL")


def _read_only(path: Path) -> StorageError:
    return StorageError(
        f"Database {path} is read-only (the file, or its folder, which must hold the WAL "
        "files, is not writable). Fix the permissions, or copy the file somewhere writable "
        "and point --db or PLAYGROUND_DB at the copy."
    )


def explain_error(path: Path | str, exc: sqlite3.Error, action: str) -> StorageError:
    """Turn a sqlite3 error into a message that names the file and says what to do."""
    text = str(exc).lower()
    if "readonly" in text or "read-only" in text:
        return _read_only(Path(path))
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StorageError(
            f"{path} is not a playground database or is corrupt ({exc}). Move it aside and "
            "a new database is created on the next start; restore from a backup if it held "
            "votes."
        )
    if "locked" in text or "busy" in text:
        return StorageError(
            f"Could not {action}: database {path} stayed locked for {BUSY_TIMEOUT_S:.0f} s "
            f"({exc}). Another process holds a long write; stop it or retry."
        )
    if "disk" in text or "full" in text:
        return StorageError(f"Could not {action}: database {path}: {exc}. Free disk space, retry.")
    return StorageError(
        f"Could not {action}: database {path}: {exc}. Check the path and its permissions, "
        "or pass another file with --db or PLAYGROUND_DB."
    )
