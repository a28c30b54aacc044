"""The rows the playground writes and reads: models, generations, battles, votes.

Every write runs in one short `write_transaction`, so a vote is either fully stored or not at
all, and concurrent writers (one connection each) queue on SQLite's lock instead of failing.
"""
from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlite_utils import Database

from storage.db import StorageError, storage_errors, write_transaction
from storage.migrations import WINNERS

GENERATION_SOURCES = ("local", "import")
BATTLE_SOURCES = ("playground", "arena", "import")
ROLES = ("system", "user", "assistant")


class VoteRefused(StorageError):
    """A battle or vote that must not be stored (unknown ids, invalid winner, failed answer)."""


@dataclass(frozen=True)
class GenerationRecord:
    """One finished answer, as stored in `generations` (JSON columns as Python objects)."""

    model_id: str
    conversation: Sequence[Mapping[str, str]]  # what the user saw, ending with their turn
    output: str
    session_id: str = ""
    model_sha256: str = ""
    backend: str = ""
    device: str = ""
    mode: str = ""
    preset: str | None = None
    rendered_prompt: str = ""
    extracted_answer: str | None = None
    samples: Any = None  # self-consistency paths and tally
    sampling: Any = None  # SamplingParams, or a mapping of its fields
    n_prompt_tokens: int | None = None
    n_output_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    source: str = "local"
    created_at: str | None = None  # ISO-8601 UTC; defaults to now (or to tstamp)
    tstamp: float | None = None  # epoch seconds; defaults to now (or to created_at)


@dataclass(frozen=True)
class VoteResult:
    """The stored vote. `duplicate` is True when the battle already had one (it is returned)."""

    vote_id: int
    battle_id: int
    winner: str
    duplicate: bool = False


def resolve_times(created_at: str | None = None, tstamp: float | None = None) -> tuple[str, float]:
    """(ISO-8601 UTC text, epoch seconds) for the same instant, filling whichever is missing."""
    if tstamp is None:
        tstamp = _parse_iso(created_at) if created_at else time.time()
    if created_at is None:
        created_at = iso_utc(tstamp)
    return created_at, float(tstamp)


def iso_utc(tstamp: float) -> str:
    """Epoch seconds -> '2025-01-31T12:00:00.123456+00:00'."""
    return datetime.fromtimestamp(tstamp, timezone.utc).isoformat(timespec="microseconds")


def _parse_iso(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise StorageError(f"created_at {text!r} is not an ISO-8601 time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


# ---------------------------------------------------------------- models


def upsert_model(
    db: Database,
    *,
    model_id: str,
    display_name: str,
    backend: str,
    path: str,
    sha256: str | None,
    n_params: int | None,
    quantization: str | None,
    context_length: int | None,
    is_chat: bool,
) -> int:
    """Register a model file once per (model_id, sha256) and return its `models.id`.

    An existing row is kept as is (insert-or-ignore): the first sighting of a file wins.
    An unknown hash is stored as '' so the uniqueness still holds.
    """
    _require_text("model_id", model_id)
    row = {
        "model_id": model_id, "display_name": display_name, "backend": backend,
        "path": str(path), "sha256": sha256 or "", "n_params": n_params,
        "quantization": quantization, "context_length": context_length,
        "is_chat": int(bool(is_chat)), "created_at": resolve_times()[0],
    }
    with storage_errors(db, "register model"), write_transaction(db):
        db["models"].insert(row, ignore=True)
        found = db.execute(
            "SELECT id FROM models WHERE model_id = ? AND sha256 = ?", [model_id, row["sha256"]]
        ).fetchone()
    return int(found[0])


# ---------------------------------------------------------------- generations


def generation_row(rec: GenerationRecord) -> dict[str, Any]:
    """Validate a record and turn it into a `generations` row (JSON columns serialised)."""
    _require_text("model_id", rec.model_id)
    if rec.source not in GENERATION_SOURCES:
        raise StorageError(f"generation source {rec.source!r} is not one of {GENERATION_SOURCES}")
    for name in ("output", "mode"):
        if not isinstance(getattr(rec, name), str):
            raise StorageError(f"generation {name} must be text, got {getattr(rec, name)!r}")
    created_at, tstamp = resolve_times(rec.created_at, rec.tstamp)
    row = {f.name: getattr(rec, f.name) for f in dataclasses.fields(rec)}
    row.update(
        created_at=created_at,
        tstamp=tstamp,
        conversation=_to_json("conversation", check_conversation(rec.conversation)),
        samples=None if rec.samples is None else _to_json("samples", rec.samples),
        sampling=None if rec.sampling is None else _to_json("sampling", rec.sampling),
    )
    return row


def insert_generation(db: Database, rec: GenerationRecord) -> int:
    """Store one finished answer and return its `generations.id`."""
    row = generation_row(rec)
    with storage_errors(db, "save the answer"), write_transaction(db):
        return int(db["generations"].insert(row).last_pk)


def check_conversation(conversation: Any) -> list[dict[str, str]]:
    """A list of {role, content} messages with known roles and text content, as plain dicts."""
    if not isinstance(conversation, (list, tuple)):
        raise StorageError(
            f"conversation must be a list of messages, got {type(conversation).__name__}"
        )
    messages = []
    for i, message in enumerate(conversation):
        if not isinstance(message, Mapping):
            raise StorageError(f"conversation[{i}] must be a {{role, content}} mapping")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise StorageError(f"conversation[{i}].role {role!r} is not one of {ROLES}")
        if not isinstance(content, str):
            raise StorageError(f"conversation[{i}].content must be text")
        messages.append({"role": role, "content": content})
    return messages


def _to_json(name: str, value: Any) -> str:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = getattr(value, "to_dict", lambda: dataclasses.asdict(value))()
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise StorageError(f"{name} cannot be stored as JSON: {exc}") from exc


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise StorageError(f"{name} must be a non-empty string, got {value!r}")


# ---------------------------------------------------------------- battles


def create_battle(
    db: Database,
    *,
    left_generation_id: int,
    right_generation_id: int,
    anonymous: bool,
    session_id: str,
    source: str = "playground",
) -> int:
    """Pair two finished answers for a vote and return the battle id.

    Contestant fields (model, mode) are copied from the generations so rankings group without
    joins. The same (left, right) pair returns the existing battle. Raises `VoteRefused` for
    unknown generations, a generation against itself, or an answer that failed with no output.
    """
    if source not in BATTLE_SOURCES:
        raise VoteRefused(f"battle source {source!r} is not one of {BATTLE_SOURCES}")
    if left_generation_id == right_generation_id:
        raise VoteRefused(
            f"a battle needs two different generations, got {left_generation_id} twice"
        )
    with storage_errors(db, "create the battle"), write_transaction(db):
        existing = _battle_id_for_pair(db, left_generation_id, right_generation_id)
        if existing is not None:
            return existing
        left = _battle_ready_generation(db, left_generation_id, "left")
        right = _battle_ready_generation(db, right_generation_id, "right")
        created_at, tstamp = resolve_times()
        row = {
            "created_at": created_at, "tstamp": tstamp, "session_id": session_id,
            "left_generation_id": left_generation_id,
            "right_generation_id": right_generation_id,
            "left_model": left["model_id"], "right_model": right["model_id"],
            "left_mode": left["mode"], "right_mode": right["mode"],
            "anonymous": int(bool(anonymous)), "source": source,
        }
        return int(db["battles"].insert(row).last_pk)


def _battle_id_for_pair(db: Database, left_id: int, right_id: int) -> int | None:
    found = db.execute(
        "SELECT id FROM battles WHERE left_generation_id = ? AND right_generation_id = ?",
        [left_id, right_id],
    ).fetchone()
    return None if found is None else int(found[0])


def _battle_ready_generation(db: Database, generation_id: int, side: str) -> dict[str, Any]:
    found = db.execute(
        "SELECT model_id, mode, output, error FROM generations WHERE id = ?", [generation_id]
    ).fetchone()
    if found is None:
        raise VoteRefused(f"{side} generation {generation_id} does not exist; nothing to vote on")
    model_id, mode, output, error = found
    if error and not output:
        raise VoteRefused(
            f"{side} generation {generation_id} ({model_id}) failed with no output "
            f"({error}); a failed answer cannot be voted on"
        )
    return {"model_id": model_id, "mode": mode}


def get_battle(db: Database, battle_id: int) -> dict[str, Any] | None:
    """The battle row, plus `vote` (the vote row, or None), or None if there is no such battle."""
    rows = list(db["battles"].rows_where("id = ?", [battle_id]))
    if not rows:
        return None
    battle = rows[0]
    votes = list(db["votes"].rows_where("battle_id = ?", [battle_id]))
    battle["vote"] = votes[0] if votes else None
    return battle


# ---------------------------------------------------------------- votes


def record_vote(
    db: Database,
    *,
    battle_id: int,
    winner: str,
    session_id: str,
    note: str | None = None,
) -> VoteResult:
    """Store the one vote of a battle, in one transaction.

    A second vote on the same battle (a double click, a retry) stores nothing and returns the
    first vote with duplicate=True. Raises `VoteRefused` for an invalid winner or unknown battle.
    """
    if winner not in WINNERS:
        raise VoteRefused(f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    with storage_errors(db, "save the vote"), write_transaction(db):
        first = db.execute(
            "SELECT id, winner FROM votes WHERE battle_id = ?", [battle_id]
        ).fetchone()
        if first is not None:
            return VoteResult(int(first[0]), battle_id, first[1], duplicate=True)
        if db.execute("SELECT 1 FROM battles WHERE id = ?", [battle_id]).fetchone() is None:
            raise VoteRefused(f"battle {battle_id} does not exist; the vote was not stored")
        created_at, tstamp = resolve_times()
        row = {
            "battle_id": battle_id, "winner": winner, "note": note,
            "session_id": session_id, "created_at": created_at, "tstamp": tstamp,
        }
        vote_id = int(db["votes"].insert(row).last_pk)
    return VoteResult(vote_id, battle_id, winner)


def count_votes(db: Database) -> int:
    """How many votes are stored."""
    return int(db.execute("SELECT count(*) FROM votes").fetchone()[0])
