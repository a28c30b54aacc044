"""Import Chatbot Arena battles (JSON array or JSONL) as generations + battles + votes.

Each good row becomes two `source='import'` generations, one battle and its vote. Bad rows are
reported with their line (JSONL) or index (JSON array) and skipped. Every battle carries an
`import_key` (a fingerprint of the row and which repeat of that row it is), so importing the
same file again adds nothing. Rows are written in batches, one transaction per batch.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from playground.errors import PlaygroundError
from storage.db import StorageError, storage_errors, write_transaction
from storage.pairs import input_difference, input_fingerprint
from storage.records import check_conversation, iso_utc
from storage.voters import voter_of_session

ARENA_WINNERS = {"model_a": "left", "model_b": "right", "tie": "tie", "tie (bothbad)": "both_bad"}
BATCH_ROWS = 2_000
_SNIFF_BYTES = 8_192


class ImportFileError(PlaygroundError):
    """The whole file cannot be imported (missing, binary, empty, not JSON); names the path."""


@dataclass(frozen=True)
class RowError:
    """One skipped row: where it is ('line 12' or 'index 3') and what is wrong with it."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class ImportReport:
    """What an import did: rows stored, rows already in the database, rows skipped."""

    path: str
    imported: int = 0
    already_imported: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.imported + self.already_imported + len(self.errors)


@dataclass(frozen=True)
class _ArenaBattle:
    """One validated row, ready to write."""

    import_key: str
    session_id: str
    tstamp: float
    anonymous: bool
    winner: str
    sides: tuple[tuple[str, list[dict[str, str]], str], ...]  # (model, conversation, output) x2


class _BadRow(ValueError):
    pass


def import_arena_battles(db: Database, path: str | Path) -> ImportReport:
    """Import an Arena battles file into `db`; see the module docstring for the rules.

    Raises `ImportFileError` when the file as a whole is unusable; row problems go in the report.
    """
    path = Path(path)
    report = ImportReport(str(path))
    repeats: dict[bytes, int] = {}
    batch: list[_ArenaBattle] = []
    for location, raw in _read_rows(path):
        if isinstance(raw, RowError):
            report.errors.append(raw)
            continue
        try:
            battle = _parse_row(raw, _import_key(raw, repeats))
        except _BadRow as exc:
            report.errors.append(RowError(location, str(exc)))
            continue
        batch.append(battle)
        if len(batch) >= BATCH_ROWS:
            _flush(db, batch, report)
            batch = []
    _flush(db, batch, report)
    return report


# ---------------------------------------------------------------- reading


def _read_rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(location, decoded row or RowError) for each row; whole-file problems raise."""
    text = _read_text(path)
    if text.lstrip().startswith("["):
        yield from _json_array_rows(path, text)
    else:
        yield from _jsonl_rows(path, text)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImportFileError(f"{path} does not exist. Check the file name.") from None
    except IsADirectoryError:
        raise ImportFileError(f"{path} is a folder; pass the battles file inside it.") from None
    except OSError as exc:
        raise ImportFileError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise ImportFileError(
            f"{path} is a binary file, not Arena battles. Pass a JSON array or JSONL file."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path} is not UTF-8 text (byte {exc.start}). Pass a JSON array or JSONL file."
        ) from exc
    if not text.strip():
        raise ImportFileError(f"{path} is empty; there are no battles to import.")
    return text


def _json_array_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Fix the file, or convert it to JSONL so bad rows can be skipped one by one."
        ) from exc
    for index, row in enumerate(rows):
        yield f"index {index}", row


def _jsonl_rows(path: Path, text: str) -> Iterator[tuple[str, Any]]:
    parsed = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"line {number}", RowError(
                f"line {number}", f"not valid JSON ({exc.msg}, column {exc.colno})"
            )
            continue
        parsed += 1
        yield f"line {number}", row
    if parsed == 0:
        raise ImportFileError(
            f"{path} has no JSON on any line; expected a JSON array or JSONL "
            "(one battle object per line)."
        )


# ---------------------------------------------------------------- validating


def _import_key(raw: Any, repeats: dict[bytes, int]) -> str:
    """Row fingerprint plus which repeat of identical content this is, stable across runs."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode("utf-8")).digest()[:16]
    nth = repeats.get(digest, 0)
    repeats[digest] = nth + 1
    return f"arena:{digest.hex()}:{nth}"


def _parse_row(raw: Any, import_key: str) -> _ArenaBattle:
    if not isinstance(raw, Mapping):
        raise _BadRow(f"a battle must be a JSON object, got {_type_name(raw)}")
    model_a, model_b = _model(raw, "model_a"), _model(raw, "model_b")
    winner = raw.get("winner", _MISSING)
    if winner is _MISSING:
        raise _BadRow("missing key 'winner'")
    if not isinstance(winner, str) or winner not in ARENA_WINNERS:
        raise _BadRow(f"winner {winner!r} is not one of {', '.join(ARENA_WINNERS)}")
    tstamp = _tstamp(raw.get("tstamp"))
    side_a = _split_turn(raw.get("conversation_a"), "conversation_a")
    side_b = _split_turn(raw.get("conversation_b"), "conversation_b")
    _check_same_input(side_a[0], side_b[0])
    return _ArenaBattle(
        import_key=import_key,
        session_id=_session_id(raw.get("question_id")),
        tstamp=time.time() if tstamp is None else tstamp,
        anonymous=_anony(raw.get("anony")),
        winner=ARENA_WINNERS[winner],
        sides=((model_a, *side_a), (model_b, *side_b)),
    )


_MISSING = object()


def _model(raw: Mapping[str, Any], key: str) -> str:
    if key not in raw:
        raise _BadRow(f"missing key '{key}'")
    value = raw[key]
    if not isinstance(value, str) or not value.strip():
        raise _BadRow(f"{key} must be a non-empty string, got {value!r}")
    return value


def _tstamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _BadRow(f"tstamp must be epoch seconds (a number), got {value!r}")
    return float(value)


def _anony(value: Any) -> bool:
    """Only rows that say they were blind count as anonymous: the leaderboard ranks those by default."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _BadRow(f"anony must be true or false, got {value!r}")
    return value


def _session_id(question_id: Any) -> str:
    if question_id is None:
        return "import"
    if isinstance(question_id, bool) or not isinstance(question_id, (str, int)):
        raise _BadRow(f"question_id must be a string, got {_type_name(question_id)}")
    return f"import:{question_id}"


def _split_turn(value: Any, key: str) -> tuple[list[dict[str, str]], str]:
    """(conversation up to the last user message, last assistant answer after it)."""
    if value is None:
        return [], ""
    try:
        messages = check_conversation(value)
    except StorageError as exc:
        raise _BadRow(f"{key}: {exc}") from None
    if not messages:
        return [], ""
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise _BadRow(f"{key} has no user message")
    answers = [m["content"] for m in messages[last_user + 1:] if m["role"] == "assistant"]
    return messages[: last_user + 1], answers[-1] if answers else ""


def _check_same_input(conversation_a: list[dict[str, str]], conversation_b: list[dict[str, str]]) -> None:
    """The battle rule of storage/pairs.py (what create_battle enforces), worded for a file row."""
    difference = input_difference(conversation_a, conversation_b)
    if difference is None:
        return
    users_a = [m["content"] for m in conversation_a if m["role"] == "user"]
    users_b = [m["content"] for m in conversation_b if m["role"] == "user"]
    start = ("do not start from the same user turn" if users_a[:1] != users_b[:1]
             else "start from the same user turn but differ later")
    raise _BadRow(f"conversation_a and conversation_b {start} ({difference}): a battle compares two answers "
                  "to the same input")


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


# ---------------------------------------------------------------- writing


def _flush(db: Database, batch: list[_ArenaBattle], report: ImportReport) -> None:
    """Write one batch in one transaction; rows already imported are counted, not written."""
    if not batch:
        return
    with storage_errors(db, "import battles"), write_transaction(db):
        present = _present_keys(db, [b.import_key for b in batch])
        fresh = [b for b in batch if b.import_key not in present]
        _insert_battles(db, fresh)
    report.imported += len(fresh)
    report.already_imported += len(batch) - len(fresh)


def _present_keys(db: Database, keys: list[str]) -> set[str]:
    marks = ",".join("?" * len(keys))
    sql = f"SELECT import_key FROM battles WHERE import_key IN ({marks})"
    return {row[0] for row in db.execute(sql, keys)}


def _next_id(db: Database, table: str) -> int:
    """Next free id; safe because the caller holds the write lock."""
    return int(db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0])


def _insert_battles(db: Database, battles: list[_ArenaBattle]) -> None:
    generation_id, battle_id = _next_id(db, "generations"), _next_id(db, "battles")
    generations, battle_rows, votes = [], [], []
    for battle in battles:
        created_at = iso_utc(battle.tstamp)
        side_ids = []
        for model, conversation, output in battle.sides:
            generations.append(_generation(generation_id, battle, created_at, model,
                                           conversation, output))
            side_ids.append(generation_id)
            generation_id += 1
        (left_model, _, _), (right_model, _, _) = battle.sides
        battle_rows.append({
            "id": battle_id, "created_at": created_at, "tstamp": battle.tstamp,
            "session_id": battle.session_id, "left_generation_id": side_ids[0],
            "right_generation_id": side_ids[1], "left_model": left_model,
            "right_model": right_model, "left_mode": "", "right_mode": "",
            "anonymous": int(battle.anonymous), "source": "import",
            "import_key": battle.import_key,
        })
        votes.append({
            "battle_id": battle_id, "winner": battle.winner, "note": None,
            "session_id": battle.session_id, "created_at": created_at, "tstamp": battle.tstamp,
            "voter": voter_of_session(battle.session_id),
        })
        battle_id += 1
    _insert_rows(db, "generations", generations)
    _insert_rows(db, "battles", battle_rows)
    _insert_rows(db, "votes", votes)


def _insert_rows(db: Database, table: str, rows: list[dict[str, Any]]) -> None:
    """One prepared INSERT, executemany'd: the rows are already validated plain values.

    Why not `insert_all`: its per-value conversion took half the import time (100k Arena rows:
    36 s against 18 s on the same machine); the schema still comes from the migrations.
    """
    if not rows:
        return
    columns = list(rows[0])
    sql = 'INSERT INTO "{}" ({}) VALUES ({})'.format(
        table, ", ".join(f'"{c}"' for c in columns), ", ".join("?" * len(columns))
    )
    db.conn.executemany(sql, [[row[c] for c in columns] for row in rows])


def _generation(generation_id: int, battle: _ArenaBattle, created_at: str, model: str,
                conversation: list[dict[str, str]], output: str) -> dict[str, Any]:
    return {
        "id": generation_id, "created_at": created_at, "tstamp": battle.tstamp,
        "session_id": battle.session_id, "model_id": model, "model_sha256": "",
        "backend": "import", "device": "", "mode": "", "preset": None, "rendered_prompt": "",
        "conversation": json.dumps(conversation, ensure_ascii=False), "output": output,
        "input_fingerprint": input_fingerprint(conversation),
        "extracted_answer": None, "samples": None, "sampling": None,
        "n_prompt_tokens": None, "n_output_tokens": None, "ttft_s": None, "total_s": None,
        "finish_reason": None, "error": None, "source": "import",
    }
