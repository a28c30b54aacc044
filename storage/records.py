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

from playground.verdicts import WINNERS
from storage.db import StorageError, storage_errors, write_transaction
from storage.voters import voter_of_session
from storage.pairs import (battle_for_pair, first_vote_for_pair, input_difference, input_fingerprint,
                           unvotable_reason)

GENERATION_SOURCES = ("local", "import")
BATTLE_SOURCES = ("playground", "arena", "import")
ROLES = ("system", "user", "assistant")


class VoteRefused(StorageError):
    """A battle or vote that must not be stored: unknown ids, invalid winner, an answer cut by
    Stop or failed, answers to different inputs, a forgotten answer (rules: storage/pairs.py)."""


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
    system_prompt: str | None = None  # the contestant's own system prompt (scaffolding, not input)
    sampling_requested: Any = None  # the pane's settings before any override (`sampling` = what ran)
    calls: Any = None  # every prompt sent: [{step, prompt, sampling, ...}]
    model_identity: Any = None  # what the model was: file/folder hash, hub commit, server report


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
        input_fingerprint=input_fingerprint(check_conversation(rec.conversation)),
    )
    for name in ("sampling_requested", "calls", "model_identity"):
        row[name] = None if row[name] is None else _to_json(name, row[name])
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
    tag: str | None = None,
) -> int:
    """Pair two finished answers to the same input for a vote and return the battle id.

    The one function that creates battles (the UI, the Gradio API and the CLI all come here; the
    importer applies the same `check_pair`). A battle is the unordered pair: (B, A) after (A, B)
    returns the first battle. Contestant fields (model, mode) are copied from the generations so
    rankings group without joins. Raises `VoteRefused` for unknown or forgotten generations, a
    generation against itself, an answer cut by Stop or failed, or answers to different inputs.
    `tag` (optional) is the battle's leaderboard category, stored when the battle is created.
    """
    if source not in BATTLE_SOURCES:
        raise VoteRefused(f"battle source {source!r} is not one of {BATTLE_SOURCES}")
    if left_generation_id == right_generation_id:
        raise VoteRefused(
            f"a battle needs two different generations, got {left_generation_id} twice"
        )
    with storage_errors(db, "create the battle"), write_transaction(db):
        left = _battle_ready_generation(db, left_generation_id, "left")
        right = _battle_ready_generation(db, right_generation_id, "right")
        check_pair(left, right)
        existing = battle_for_pair(db, left_generation_id, right_generation_id)
        if existing is not None:
            return existing
        created_at, tstamp = resolve_times()
        row = {
            "created_at": created_at, "tstamp": tstamp, "session_id": session_id,
            "left_generation_id": left_generation_id,
            "right_generation_id": right_generation_id,
            "left_model": left["model_id"], "right_model": right["model_id"],
            "left_mode": left["mode"], "right_mode": right["mode"],
            "anonymous": int(bool(anonymous)), "source": source,
        }
        if tag:
            row["tag"] = tag
        return int(db["battles"].insert(row).last_pk)


def check_pair(left: Mapping[str, Any], right: Mapping[str, Any]) -> None:
    """Refuse (VoteRefused) two answers that cannot be judged against each other.

    `left`/`right`: {id, model_id, finish_reason, error, conversation (list)} of each side.
    """
    for side, gen in (("left", left), ("right", right)):
        why = unvotable_reason(gen.get("finish_reason"), gen.get("error"))
        if why:
            raise VoteRefused(
                f"{side} answer (generation {gen.get('id')}, {gen['model_id']}) {why}: only finished "
                "answers can be judged; ask again and let it finish"
            )
    difference = input_difference(left["conversation"], right["conversation"])
    if difference:
        raise VoteRefused(
            f"generations {left.get('id')} and {right.get('id')} answered different inputs: {difference}. "
            "A vote compares two answers to the same question (and the same earlier user turns); "
            "judge two answers of the latest question"
        )


def _battle_ready_generation(db: Database, generation_id: int, side: str) -> dict[str, Any]:
    found = db.execute(
        "SELECT model_id, mode, output, error, finish_reason, conversation FROM generations WHERE id = ?",
        [generation_id],
    ).fetchone()
    if found is None:
        raise VoteRefused(f"{side} generation {generation_id} does not exist; nothing to vote on")
    model_id, mode, output, error, finish_reason, conversation = found
    if error and not output:
        raise VoteRefused(
            f"{side} generation {generation_id} ({model_id}) failed with no output "
            f"({error}); a failed answer cannot be voted on"
        )
    if db.execute("SELECT 1 FROM tombstones WHERE kind = 'generation' AND target_id = ?",
                  [generation_id]).fetchone():
        raise VoteRefused(f"{side} generation {generation_id} was forgotten (tombstone); it cannot be judged")
    try:
        messages = check_conversation(json.loads(conversation))
    except (ValueError, StorageError):
        messages = []
    return {"id": generation_id, "model_id": model_id, "mode": mode, "finish_reason": finish_reason,
            "error": error, "conversation": messages}


def get_battle(db: Database, battle_id: int) -> dict[str, Any] | None:
    """The battle row, plus `vote` (its first vote row, or None) and `votes` (every voter's, in order),
    or None if there is no such battle."""
    rows = list(db["battles"].rows_where("id = ?", [battle_id]))
    if not rows:
        return None
    battle = rows[0]
    votes = list(db["votes"].rows_where("battle_id = ?", [battle_id], order_by="id"))
    battle["vote"] = votes[0] if votes else None
    battle["votes"] = votes
    return battle


# ---------------------------------------------------------------- votes


def record_vote(
    db: Database,
    *,
    battle_id: int,
    winner: str,
    session_id: str,
    note: str | None = None,
    tstamp: float | None = None,
    voter: str | None = None,
) -> VoteResult:
    """Store one voter's judgement of a pair of answers, in one transaction.

    `voter` defaults to the one `session_id` names (`storage.voters.voter_of_session`). Several
    voters may judge one pair; the same voter's second vote on it, in either order (a double
    click, a retry, B-vs-A after A-vs-B), stores nothing and returns their first vote with
    duplicate=True. `tstamp` is the
    vote's time (default now; imports and tests give their own). Raises `VoteRefused` for an
    invalid winner, an unknown battle, or a battle whose answers cannot be judged.
    """
    if winner not in WINNERS:
        raise VoteRefused(f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    with storage_errors(db, "save the vote"), write_transaction(db):
        battle = db.execute(
            "SELECT left_generation_id, right_generation_id FROM battles WHERE id = ?", [battle_id]
        ).fetchone()
        if battle is None:
            raise VoteRefused(f"battle {battle_id} does not exist; the vote was not stored")
        voter = voter or voter_of_session(session_id)
        first = first_vote_for_pair(db, *battle, voter)
        if first is not None:
            return VoteResult(first["id"], first["battle_id"], first["winner"], duplicate=True)
        check_pair(_battle_ready_generation(db, battle[0], "left"), _battle_ready_generation(db, battle[1], "right"))
        created_at, tstamp = resolve_times(None, tstamp)
        row = {
            "battle_id": battle_id, "winner": winner, "note": note,
            "session_id": session_id, "created_at": created_at, "tstamp": tstamp, "voter": voter,
        }
        vote_id = int(db["votes"].insert(row).last_pk)
    return VoteResult(vote_id, battle_id, winner)


def count_votes(db: Database) -> int:
    """How many votes are stored."""
    return int(db.execute("SELECT count(*) FROM votes").fetchone()[0])


# ---------------------------------------------------------------- tombstones

TOMBSTONE_KINDS = ("generation", "battle", "vote")


@dataclass(frozen=True)
class ForgetResult:
    """What `forget` wrote: one tombstone per hidden row, by kind."""

    tombstones: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.tombstones.values())


def forget(
    db: Database,
    *,
    reason: str,
    requested_by: str = "",
    generations: Sequence[int] = (),
    battles: Sequence[int] = (),
    votes: Sequence[int] = (),
    session_id: str | None = None,
) -> ForgetResult:
    """Hide rows from rankings and exports by writing tombstones; no row is changed or deleted.

    A session means every generation it stored and every vote it cast. Unknown ids are refused
    (StorageError) so a typo never silently forgets nothing; already forgotten rows are skipped.
    """
    if not isinstance(reason, str) or not reason.strip():
        raise StorageError("forget needs a reason (it is stored in the tombstone and shown in the log)")
    wanted = {"generation": list(generations), "battle": list(battles), "vote": list(votes)}
    with storage_errors(db, "write the tombstones"), write_transaction(db):
        if session_id is not None:
            wanted["generation"] += [r[0] for r in db.execute(
                "SELECT id FROM generations WHERE session_id = ?", [session_id])]
            wanted["vote"] += [r[0] for r in db.execute("SELECT id FROM votes WHERE session_id = ?", [session_id])]
            if not wanted["generation"] and not wanted["vote"]:
                raise StorageError(f"session {session_id!r} stored nothing in {_db_name(db)}; check the id")
        created_at, tstamp = resolve_times()
        written: dict[str, list[int]] = {kind: [] for kind in TOMBSTONE_KINDS}
        for kind, ids in wanted.items():
            table = kind + "s"
            for target in dict.fromkeys(int(i) for i in ids):
                if db.execute(f"SELECT 1 FROM {table} WHERE id = ?", [target]).fetchone() is None:
                    raise StorageError(f"there is no {kind} {target} in {_db_name(db)}; nothing was forgotten")
                if db.execute("SELECT 1 FROM tombstones WHERE kind = ? AND target_id = ?", [kind, target]).fetchone():
                    continue
                db["tombstones"].insert({
                    "created_at": created_at, "tstamp": tstamp, "kind": kind, "target_id": target,
                    "session_id": session_id, "reason": reason.strip(), "requested_by": requested_by,
                })
                written[kind].append(target)
    return ForgetResult(written)


def _db_name(db: Database) -> str:
    from storage.db import database_file

    return database_file(db)
