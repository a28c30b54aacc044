"""SQLite storage for generations, battles and votes (sqlite-utils; schema in migrations.py).

Open one `Database` per thread or request with `open_database`; never share one across threads.
"""
from storage.db import StorageError, open_database, write_transaction
from storage.importer import ImportFileError, ImportReport, RowError, import_arena_battles
from storage.migrations import WINNERS
from storage.records import (
    GenerationRecord,
    VoteRefused,
    VoteResult,
    count_votes,
    create_battle,
    get_battle,
    insert_generation,
    record_vote,
    upsert_model,
)

__all__ = [
    "WINNERS",
    "GenerationRecord",
    "ImportFileError",
    "ImportReport",
    "RowError",
    "StorageError",
    "VoteRefused",
    "VoteResult",
    "count_votes",
    "create_battle",
    "get_battle",
    "import_arena_battles",
    "insert_generation",
    "open_database",
    "record_vote",
    "upsert_model",
    "write_transaction",
]
