"""Exports: DPO preference pairs for TRL, Chatbot Arena battles JSON, leaderboard files.

DPO JSONL follows TRL's preference formats exactly, one pair per line and no other keys:
  standard:       {"prompt": str, "chosen": str, "rejected": str}
  conversational: {"prompt": [{"role", "content"}, ... ending with a user turn],
                   "chosen": [{"role": "assistant", "content": str}], "rejected": [same]}
Only decisive votes (left or right) become pairs. The prompt is the chosen side's
`conversation` (earlier turns included): both answers were shown for the same latest user turn.
In the standard format a single user turn is its plain text; longer conversations are rendered
as "Role: content" blocks separated by blank lines (prefer the conversational format for
multi-turn data, where the trainer applies the model's own chat template). Per-pair metadata
goes to a sidecar `<out>.meta.jsonl`, same line order, because TRL rejects unknown keys in
some code paths.

Every export streams rows from one SQL query into a temporary file next to the target and
renames it at the end: memory stays flat and a failed export never leaves half a file.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlite_utils import Database

from playground.errors import PlaygroundError
from playground.leaderboard import GroupBy, build_leaderboard, load_battles, to_csv, to_json, to_markdown, vote_filter_sql
from playground.ranking import BothBad

DPO_FORMATS: tuple[str, ...] = ("standard", "conversational")
LEADERBOARD_FORMATS = {".csv": "csv", ".json": "json", ".md": "markdown", ".markdown": "markdown"}
ARENA_WINNERS = {"left": "model_a", "right": "model_b", "tie": "tie", "both_bad": "tie (bothbad)"}
ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote. `skipped`: votes that cannot make a valid row (no user turn, empty answer)."""

    path: Path
    written: int
    meta_path: Path | None = None
    duplicates: int = 0
    skipped: int = 0


# ----------------------------------------------------------------------------- files


def meta_path_for(out: str | Path) -> Path:
    """The sidecar next to a DPO file: `<out>.meta.jsonl`."""
    out = Path(out)
    return out.with_name(out.name + ".meta.jsonl")


@contextmanager
def atomic_text_file(path: str | Path) -> Iterator[TextIO]:
    """Write to a hidden temporary file beside `path`, rename over `path` only on success.

    Any OSError (missing or read-only folder, path is a folder, disk full) becomes a
    PlaygroundError that names the path.
    """
    path = Path(path)
    if path.is_dir():
        raise PlaygroundError(f"cannot write the export to {path}: it is a folder; pass a file path with --out")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with handle:
            yield handle
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _unwritable(path, exc) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unwritable(path: Path, exc: OSError) -> PlaygroundError:
    return PlaygroundError(
        f"cannot write the export to {path}: {exc.strerror or exc}; choose a writable file path with --out"
    )


# ----------------------------------------------------------------------------- DPO


def export_dpo(
    db: Database,
    out: str | Path,
    *,
    format: str = "standard",
    model: str | None = None,
    mode: str | None = None,
    since: float | None = None,
    until: float | None = None,
    anonymous_only: bool = False,
    dedupe: bool = True,
    voter: str | None = None,
) -> ExportResult:
    """Write decisive votes as TRL DPO pairs to `out` and their metadata to `<out>.meta.jsonl`.

    Filters: `model`/`mode` match either side; `since <= vote time < until` (epoch seconds);
    `anonymous_only` keeps blind battles; `voter` keeps one voter's votes (`storage.voters`).
    `dedupe` drops a pair whose (prompt, chosen, rejected)
    was already written (repeated prompts with identical answers add no signal, only weight).
    """
    if format not in DPO_FORMATS:
        raise PlaygroundError(f"unknown DPO format {format!r}: choose {' or '.join(DPO_FORMATS)}")
    out = Path(out)
    rows = _dpo_rows(db, model=model, mode=mode, since=since, until=until, anonymous_only=anonymous_only, voter=voter)
    seen: set[bytes] = set()  # 16-byte digests of written lines: ~50 MB per million pairs
    written = duplicates = skipped = 0
    encode = json.JSONEncoder(ensure_ascii=False).encode  # one encoder: json.dumps re-creates it per call
    with ExitStack() as files:
        pairs, meta = files.enter_context(atomic_text_file(out)), files.enter_context(atomic_text_file(meta_path_for(out)))
        for row in rows:
            pair = dpo_pair(row, format)
            if pair is None:
                skipped += 1
                continue
            line = encode(pair) + "\n"
            if dedupe:
                key = hashlib.blake2b(line.encode("utf-8"), digest_size=16).digest()
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
            pairs.write(line)
            meta.write(encode(dpo_metadata(row)) + "\n")
            written += 1
    return ExportResult(out, written, meta_path_for(out), duplicates, skipped)


_DPO_COLUMNS = (
    "vote_id", "battle_id", "winner", "tstamp", "session_id", "left_model", "right_model",
    "left_mode", "right_mode", "anonymous", "conversation", "left_output", "right_output",
)


def _dpo_rows(db: Database, **filters: Any) -> Iterator[dict[str, Any]]:
    """Decisive votes with the chosen side's conversation and both answers, in vote-time order."""
    where, params = vote_filter_sql(**filters)
    where = (where + " AND " if where else "WHERE ") + "v.winner IN ('left', 'right')"
    sql = (
        "SELECT v.id, v.battle_id, v.winner, v.tstamp, v.session_id, b.left_model, b.right_model, "
        "b.left_mode, b.right_mode, b.anonymous, "
        "CASE v.winner WHEN 'left' THEN gl.conversation ELSE gr.conversation END, gl.output, gr.output "
        "FROM votes v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations gl ON gl.id = b.left_generation_id "
        f"JOIN generations gr ON gr.id = b.right_generation_id {where} ORDER BY v.tstamp, v.id"
    )
    for values in db.execute(sql, params):
        yield dict(zip(_DPO_COLUMNS, values))


def dpo_pair(row: dict[str, Any], format: str = "standard") -> dict[str, Any] | None:
    """One vote row -> {"prompt", "chosen", "rejected"} in the given format, or None if unusable."""
    conversation = parse_conversation(row["conversation"])
    left, right = row["left_output"], row["right_output"]
    chosen, rejected = (left, right) if row["winner"] == "left" else (right, left)
    if not conversation or conversation[-1]["role"] != "user" or not _has_text(chosen) or not _has_text(rejected):
        return None
    if format == "conversational":
        return {
            "prompt": conversation,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    return {"prompt": render_plain(conversation), "chosen": chosen, "rejected": rejected}


def dpo_metadata(row: dict[str, Any]) -> dict[str, Any]:
    left_won = row["winner"] == "left"
    return {
        "vote_id": row["vote_id"],
        "battle_id": row["battle_id"],
        "winner": row["winner"],
        "chosen_model": row["left_model"] if left_won else row["right_model"],
        "rejected_model": row["right_model"] if left_won else row["left_model"],
        "chosen_mode": row["left_mode"] if left_won else row["right_mode"],
        "rejected_mode": row["right_mode"] if left_won else row["left_mode"],
        "left_model": row["left_model"],
        "right_model": row["right_model"],
        "left_mode": row["left_mode"],
        "right_mode": row["right_mode"],
        "anonymous": bool(row["anonymous"]),
        "tstamp": row["tstamp"],
        "session_id": row["session_id"],
    }


def _has_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_conversation(text: str | None) -> list[dict[str, str]] | None:
    """The stored JSON conversation as clean {role, content} messages, or None if malformed."""
    try:
        messages = json.loads(text) if text else None
    except (TypeError, ValueError):
        return None
    if not isinstance(messages, list):
        return None
    clean = []
    for message in messages:
        if not isinstance(message, dict):
            return None
        role, content = message.get("role"), message.get("content")
        if role not in ROLE_LABELS or not isinstance(content, str):
            return None
        clean.append({"role": role, "content": content})
    return clean


def render_plain(conversation: list[dict[str, str]]) -> str:
    """Standard-format prompt: a lone user turn as is, otherwise 'Role: content' blocks."""
    if len(conversation) == 1 and conversation[0]["role"] == "user":
        return conversation[0]["content"]
    return "\n\n".join(f"{ROLE_LABELS[m['role']]}: {m['content']}" for m in conversation)


# ----------------------------------------------------------------------------- Arena battles


def export_arena_battles(
    db: Database,
    out: str | Path,
    *,
    model: str | None = None,
    mode: str | None = None,
    since: float | None = None,
    until: float | None = None,
    anonymous_only: bool = False,
    voter: str | None = None,
) -> ExportResult:
    """Every voted battle as a JSON array in Chatbot Arena's published shape.

    Keys: question_id (the battle id), model_a/model_b (left/right model), winner
    (model_a | model_b | tie | tie (bothbad)), conversation_a/b (the side's conversation plus its
    final answer), turn (user turns), anony, tstamp (vote time), judge (the voter's session).
    Modes are not part of Arena's shape and are not exported; `storage.import_arena_battles`
    reads the file back.
    """
    out = Path(out)
    where, params = vote_filter_sql(model=model, mode=mode, since=since, until=until, anonymous_only=anonymous_only,
                                    voter=voter)
    sql = (
        "SELECT b.id, b.left_model, b.right_model, v.winner, gl.conversation, gl.output, "
        "gr.conversation, gr.output, b.anonymous, v.tstamp, v.session_id "
        "FROM votes v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations gl ON gl.id = b.left_generation_id "
        f"JOIN generations gr ON gr.id = b.right_generation_id {where} ORDER BY v.tstamp, v.id"
    )
    written = 0
    encode = json.JSONEncoder(ensure_ascii=False).encode
    with atomic_text_file(out) as handle:
        handle.write("[")
        for values in db.execute(sql, params):
            handle.write(("," if written else "") + "\n" + encode(arena_row(*values)))
            written += 1
        handle.write("\n]\n")
    return ExportResult(out, written)


def arena_row(
    battle_id: int, model_a: str, model_b: str, winner: str, conv_a: str | None, out_a: str | None,
    conv_b: str | None, out_b: str | None, anonymous: int, tstamp: float, session_id: str | None,
) -> dict[str, Any]:
    conversation_a, conversation_b = _arena_side(conv_a, out_a), _arena_side(conv_b, out_b)
    return {
        "question_id": str(battle_id),
        "model_a": model_a,
        "model_b": model_b,
        "winner": ARENA_WINNERS[winner],
        "judge": session_id or "",
        "conversation_a": conversation_a,
        "conversation_b": conversation_b,
        "turn": max(1, sum(m["role"] == "user" for m in conversation_a)),
        "anony": bool(anonymous),
        "tstamp": tstamp,
    }


def _arena_side(conversation: str | None, output: str | None) -> list[dict[str, str]]:
    messages = parse_conversation(conversation) or []
    return messages + [{"role": "assistant", "content": output or ""}] if messages else []


# ----------------------------------------------------------------------------- leaderboard


def export_leaderboard(
    db: Database,
    out: str | Path,
    *,
    fmt: str | None = None,
    by: GroupBy = "model",
    rounds: int = 1000,
    seed: int | None = 0,
    anonymous_only: bool = False,
    since: float | None = None,
    until: float | None = None,
    both_bad: BothBad = "tie",
    length_control: bool = False,
) -> ExportResult:
    """The leaderboard as CSV, JSON or Markdown (`fmt`, or from the suffix: .csv .json .md)."""
    out = Path(out)
    fmt = fmt or LEADERBOARD_FORMATS.get(out.suffix.lower())
    render = {"csv": to_csv, "json": to_json, "markdown": to_markdown}.get(fmt or "")
    if render is None:
        raise PlaygroundError(f"cannot tell the leaderboard format of {out}: use a .csv, .json or .md file name")
    battles = load_battles(db, by=by, anonymous_only=anonymous_only, since=since, until=until, with_lengths=length_control)
    board = build_leaderboard(battles, rounds=rounds, seed=seed, both_bad=both_bad, length_control=length_control)
    with atomic_text_file(out) as handle:
        handle.write(render(board))
    return ExportResult(out, len(board.rows))
