"""The schema, as an append-only list of sqlite-utils migrations (see docs/architecture.md).

Never edit or reorder a migration that has shipped: databases in the wild have recorded it as
applied. Change the schema by appending a new function. `sqlite-utils migrate DB
storage/migrations.py` applies the same set from the command line.
"""
from __future__ import annotations

from sqlite_utils import Database, Migrations

from storage.db import write_transaction

WINNERS = ("left", "right", "tie", "both_bad")

migrations = Migrations("playground")


@migrations()
def m001_initial_schema(db: Database) -> None:
    """models, generations, battles, votes with their keys and constraints."""
    db["models"].create(
        {
            "id": int, "model_id": str, "display_name": str, "backend": str, "path": str,
            "sha256": str, "n_params": int, "quantization": str, "context_length": int,
            "is_chat": int, "created_at": str,
        },
        pk="id",
        not_null=["model_id", "sha256", "created_at"],
        defaults={"sha256": ""},
        if_not_exists=True,
    )
    db["models"].create_index(["model_id", "sha256"], unique=True, if_not_exists=True)
    db["generations"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "session_id": str, "model_id": str,
            "model_sha256": str, "backend": str, "device": str, "mode": str, "preset": str,
            "rendered_prompt": str, "conversation": str, "output": str,
            "extracted_answer": str, "samples": str, "sampling": str,
            "n_prompt_tokens": int, "n_output_tokens": int, "ttft_s": float, "total_s": float,
            "finish_reason": str, "error": str, "source": str,
        },
        pk="id",
        not_null=["created_at", "tstamp", "model_id", "mode", "conversation", "output", "source"],
        if_not_exists=True,
    )
    db["battles"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "session_id": str,
            "left_generation_id": int, "right_generation_id": int,
            "left_model": str, "right_model": str, "left_mode": str, "right_mode": str,
            "anonymous": int, "source": str,
        },
        pk="id",
        foreign_keys=[
            ("left_generation_id", "generations", "id"),
            ("right_generation_id", "generations", "id"),
        ],
        not_null=[
            "created_at", "tstamp", "left_generation_id", "right_generation_id",
            "left_model", "right_model", "left_mode", "right_mode", "anonymous", "source",
        ],
        if_not_exists=True,
    )
    db["battles"].create_index(
        ["left_generation_id", "right_generation_id"], unique=True, if_not_exists=True
    )
    db["votes"].create(
        {
            "id": int, "battle_id": int, "winner": str, "note": str, "session_id": str,
            "created_at": str, "tstamp": float,
        },
        pk="id",
        foreign_keys=[("battle_id", "battles", "id")],
        not_null=["battle_id", "winner", "created_at", "tstamp"],
        if_not_exists=True,
    )
    db["votes"].create_index(["battle_id"], unique=True, if_not_exists=True)
    _add_winner_check(db)


def _add_winner_check(db: Database) -> None:
    """CHECK on votes.winner. sqlite-utils cannot declare CHECK constraints, so triggers."""
    allowed = ", ".join(f"'{w}'" for w in WINNERS)
    message = f"votes.winner must be one of {', '.join(WINNERS)}"
    for event in ("INSERT", "UPDATE OF winner"):
        name = "votes_winner_check_" + event.split()[0].lower()
        db.execute(
            f"CREATE TRIGGER IF NOT EXISTS {name} BEFORE {event} ON votes "
            f"WHEN NEW.winner IS NULL OR NEW.winner NOT IN ({allowed}) "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
        )


@migrations()
def m002_query_indexes(db: Database) -> None:
    """Indexes for the leaderboard, exports and per-session views."""
    db["battles"].create_index(["tstamp"], if_not_exists=True)
    db["battles"].create_index(["left_model", "right_model"], if_not_exists=True)
    db["battles"].create_index(["right_generation_id"], if_not_exists=True)
    db["votes"].create_index(["tstamp"], if_not_exists=True)
    db["generations"].create_index(["session_id"], if_not_exists=True)
    db["generations"].create_index(["model_id"], if_not_exists=True)


@migrations()
def m003_battles_import_key(db: Database) -> None:
    """battles.import_key: makes importing the same Arena file twice a no-op."""
    db["battles"].add_column("import_key", str)
    db["battles"].create_index(["import_key"], unique=True, if_not_exists=True)


def apply_migrations(db: Database) -> None:
    """Apply pending migrations; safe when several processes open a new file at once.

    The pending check is a cheap read; only when something is pending is the write lock taken,
    and `Migrations.apply` re-reads what is pending under it, so each migration runs once.
    """
    if not migrations.pending(db):
        return
    with write_transaction(db):
        migrations.apply(db)


@migrations()
def m004_lab_tables(db: Database) -> None:
    """lab_runs and lab_results: the emergence lab's batch evaluations (see playground/lab.py)."""
    db["lab_runs"].create(
        {
            "id": int, "created_at": str, "tstamp": float, "name": str, "task_file": str,
            "task_hash": str, "n_items": int, "model_id": str, "model_n_params": int,
            "backend": str, "device": str, "mode": str, "preset": str, "family": str,
            "shots": int, "samples": int, "sampling": str, "seed": int, "status": str,
            "items_per_s": float, "config_key": str, "error": str,
        },
        pk="id",
        not_null=["created_at", "tstamp", "task_file", "task_hash", "n_items", "model_id", "mode",
                  "status", "config_key"],
        if_not_exists=True,
    )
    db["lab_runs"].create_index(["config_key"], if_not_exists=True)
    db["lab_runs"].create_index(["tstamp"], if_not_exists=True)
    db["lab_runs"].create_index(["model_id", "mode"], if_not_exists=True)
    db["lab_results"].create(
        {
            "id": int, "run_id": int, "item_index": int, "question": str, "gold": str,
            "prompt": str, "output": str, "extracted": str, "correct": int,
            "gold_logprob_mean": float, "gold_n_tokens": int, "n_prompt_tokens": int,
            "n_output_tokens": int, "total_s": float, "finish_reason": str, "error": str,
            "created_at": str, "tstamp": float,
        },
        pk="id",
        foreign_keys=[("run_id", "lab_runs", "id")],
        not_null=["run_id", "item_index", "question", "gold", "correct", "created_at", "tstamp"],
        if_not_exists=True,
    )
    db["lab_results"].create_index(["run_id", "item_index"], unique=True, if_not_exists=True)


# --- issue 12 ---


@migrations()
def m010_battles_tag(db: Database) -> None:
    """battles.tag: an optional user tag, the battle's category on the leaderboard (NULL = by preset family)."""
    db["battles"].add_column("tag", str)
    db["battles"].create_index(["tag"], if_not_exists=True)
