"""SQLite storage for generations, battles and votes (sqlite-utils; schema in migrations.py).

Open one `Database` per thread or request with `open_database`; never share one across threads.
"""
from storage.db import StorageError, open_database, write_transaction
from storage.importer import ImportFileError, ImportReport, RowError, import_arena_battles
from storage.pairs import input_difference, input_fingerprint, unvotable_reason
from storage.records import (
    ForgetResult,
    GenerationRecord,
    VoteRefused,
    VoteResult,
    count_votes,
    check_pair,
    create_battle,
    forget,
    get_battle,
    insert_generation,
    record_vote,
    upsert_model,
)

__all__ = [
    "ForgetResult",
    "check_pair",
    "forget",
    "input_difference",
    "input_fingerprint",
    "unvotable_reason",
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
