"""Import Chatbot Arena battles (JSON array or JSONL) as generations + battles + votes.

Each good row becomes two `source='import'` generations, one battle and its vote. Bad rows are
reported with their line (JSONL) or index (JSON array) and skipped. Every battle carries an
`import_key` (a fingerprint of the row and which repeat of that row it is), so importing the
same file again adds nothing.

Speed (the target: a million battles in <= 20 s, bench/bench_import.py): lines are decoded with orjson, the row
fingerprint is orjson's sorted-key dump (byte for byte the canonical `json.dumps` the keys were
always made of; rows where the two could differ take the `json` path, see `_canonical`). A big
JSONL file is parsed in worker processes while this one writes (storage/import_parallel.py); a
row comes out of validation as ONE plain tuple (`StageRow`), which storage/bulk_write.py stages
and copies set-wise. The whole file is written in ONE transaction (judging rules checked
set-wise, indexes built once): an import is all or nothing. Parsing and validating take no write
lock: the rows are staged in a private temporary database, and only the final copy into the
tables (with the rule checks and index rebuilds) holds SQLite's write lock, so the app's
writers wait for that step only, never for the parsing (storage/bulk_write.py `StageWriter`;
the measured hold is in docs/benchmarks.md).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlite_utils import Database

from playground.arena_format import OUR_WINNERS
from playground.errors import PlaygroundError
from storage import bulk_write, import_parallel
from storage.db import StorageError, storage_errors, write_transaction
from storage.pairs import input_difference, input_fingerprint
from storage.records import check_conversation, iso_utc

BATCH_ROWS = 20_000
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


# One validated row as the staging table takes it (storage/bulk_write.py STAGE_COLUMNS): a plain tuple,
# since a million are made per import, and one per battle (storage expands it to generations, battle, vote):
# (import_key, session_id, tstamp, created_at, anonymous 0/1, winner, model_a, model_b,
#  conversation_a JSON, output_a, conversation_b JSON, output_b, input_fingerprint)
StageRow = tuple[str, str, float, str, int, str, str, str, str, str, str, str, str]


class _BadRow(ValueError):
    pass


def import_arena_battles(db: Database, path: str | Path, *, workers: int | None = None) -> ImportReport:
    """Import an Arena battles file into `db`; see the module docstring for the rules.

    `workers`: processes that parse a JSONL file while this one writes (None: one per core but this
    one's, for files of at least `import_parallel.PARALLEL_FROM_BYTES`; 0: parse here).
    Raises `ImportFileError` when the file as a whole is unusable; row problems go in the report.
    A database error rolls the whole import back (StorageError saying nothing was saved).
    """
    path = Path(path)
    report = ImportReport(str(path))
    data = _read_bytes(path)
    is_array = _ARRAY_START.match(data) is not None
    if is_array:
        chunks = _array_chunks(*_json_array(path, data))
    else:
        chunks = import_parallel.parsed_chunks(data, parse_jsonl_chunk, workers)
    seen: dict[str, int] = {}
    lines_with_json = 0
    # closing: stop the workers on any error. The stage is attached before import_pragmas puts temp storage in
    # memory, so it stays a file. Parsing and staging take no write lock: only the final copy does.
    with closing(chunks), storage_errors(db, "import battles"), _staged(db) as writer, bulk_write.import_pragmas(db):
        for chunk in chunks:
            lines_with_json += chunk.parsed
            report.errors.extend(chunk.errors)
            rows = _number_repeats(chunk.rows, chunk.repeats, seen)
            report.already_imported += len(rows) - writer.write(rows)
        if lines_with_json == 0 and not is_array:
            raise ImportFileError(f"{path} has no JSON on any line; expected a JSON array or JSONL "
                                  "(one battle object per line).")
        if writer.staged:
            with write_transaction(db, "import battles"), bulk_write.bulk_mode(db, writer.staged):
                report.imported = writer.copy()
    return report


@contextmanager
def _staged(db: Database) -> Iterator[bulk_write.StageWriter]:
    writer = bulk_write.StageWriter(db)
    try:
        yield writer
    finally:
        writer.close()


# ---------------------------------------------------------------- reading


class ParsedChunk(NamedTuple):
    """What parsing a run of rows gives (in a worker process or here): plain data, cheap to pickle."""

    rows: list[StageRow]
    errors: list[RowError]
    repeats: dict[str, int]  # row digest -> how many rows of this chunk had it (their keys say 0, 1, ...)
    parsed: int  # rows that were JSON (good or bad); 0 in every chunk of a JSONL file: it is not JSONL


_ARRAY_START = re.compile(rb"\s*\[")


def _number_repeats(rows: list[StageRow], repeats: dict[str, int], seen: dict[str, int]) -> list[StageRow]:
    """Number the chunk's repeats after those of earlier chunks, so keys are as if one process read the file.

    A chunk numbers identical rows 0, 1, ... among themselves; `seen` counts each digest over the
    chunks before. Only rows whose digest appeared before are rebuilt (set operations find them).
    """
    common = repeats.keys() & seen.keys()
    if not common:
        seen.update(repeats)
        return rows
    before = {digest: seen[digest] for digest in common}
    seen.update(repeats)
    for digest, count in before.items():
        seen[digest] = count + repeats[digest]
    shifted = []
    for row in rows:
        key = row[0]
        offset = before.get(key[6:38])  # 'arena:' + 32 hex digits + ':' + nth
        shifted.append(row if offset is None else (f"{key[:39]}{int(key[39:]) + offset}", *row[1:]))
    return shifted


def _read_bytes(path: Path) -> bytes:
    """The file's bytes without a UTF-8 BOM, once checked to be non-empty UTF-8 text."""
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
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path} is not UTF-8 text (byte {exc.start}). Pass a JSON array or JSONL file."
        ) from exc
    if not data or data.isspace():
        raise ImportFileError(f"{path} is empty; there are no battles to import.")
    return data


def _json_array(path: Path, data: bytes) -> tuple[list[Any], bool]:
    """The decoded array, and whether orjson decoded it (else `json`: NaN, huge integers, odd floats)."""
    try:
        rows = orjson.loads(data)
        if _plain_numbers(rows):
            return rows, True
    except (orjson.JSONDecodeError, RecursionError):
        pass
    try:
        return _json_loads(data), False
    except json.JSONDecodeError as exc:
        raise ImportFileError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}. "
            "Fix the file, or convert it to JSONL so bad rows can be skipped one by one."
        ) from exc
    except RecursionError:
        raise ImportFileError(
            f"{path} holds arrays or objects nested about a thousand levels deep, which no row of Arena "
            "battles has and the JSON reader cannot walk. Convert the file to JSONL (one battle per line): "
            "then such a row is skipped by its line number and the others are imported."
        ) from None


def _array_chunks(rows: list[Any], fast: bool) -> Iterator[ParsedChunk]:
    """A decoded JSON array, parsed here in runs of BATCH_ROWS (rows are named by index)."""
    for start in range(0, len(rows), BATCH_ROWS):
        good: list[StageRow] = []
        errors: list[RowError] = []
        repeats: dict[str, int] = {}
        for index in range(start, min(start + BATCH_ROWS, len(rows))):
            try:
                good.append(_checked_row(rows[index], fast, repeats))
            except _BadRow as exc:
                errors.append(RowError(f"index {index}", str(exc)))
        yield ParsedChunk(good, errors, repeats, len(good) + len(errors))


def parse_jsonl_chunk(chunk: bytes, first_line: int) -> ParsedChunk:
    """Parse and validate whole JSONL lines numbered from `first_line` (runs in worker processes).

    Lines end at \\n only (as editors number them); a \\r before it is ignored; blank lines are skipped.
    """
    good: list[StageRow] = []
    errors: list[RowError] = []
    repeats: dict[str, int] = {}
    parsed = 0
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    for number, line in enumerate(chunk.split(b"\n"), start=first_line):
        try:
            row = loads(line)
            fast = _plain_numbers(row)
            if not fast:  # orjson reads integers past 64 bits as floats: let `json` read this line
                row = _json_loads(line)
        except (decode_error, RecursionError):
            if not line.strip():
                continue
            try:
                row, fast = _json_loads(line), False
            except json.JSONDecodeError as exc:
                errors.append(RowError(f"line {number}", f"not valid JSON ({exc.msg}, column {exc.colno})"))
                continue
            except RecursionError:
                parsed += 1
                errors.append(RowError(f"line {number}", _TOO_DEEP))
                continue
        parsed += 1
        try:
            good.append(_checked_row(row, fast, repeats))
        except _BadRow as exc:
            errors.append(RowError(f"line {number}", str(exc)))
    return ParsedChunk(good, errors, repeats, parsed)


def _plain_numbers(value: Any) -> bool:
    """True when every float in `value` lies where orjson and `json.dumps` write it alike.

    Python's repr uses exponent form below 1e-4 and from 1e16; orjson switches at other
    thresholds (9.99e-05 is '0.0000999' there), so those floats take the `json` path. Between
    them both write the shortest round-trip digits in plain notation (tests/test_import_battles.py
    checks this value by value).
    """
    kind = type(value)
    if kind is float:
        return value == 0.0 or 1e-4 <= abs(value) < 1e15
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return True
    for item in value:
        kind = type(item)
        if kind is float:
            if not (item == 0.0 or 1e-4 <= abs(item) < 1e15):
                return False
        elif (kind is dict or kind is list) and not _plain_numbers(item):
            return False
    return True


def _canonical(row: Any, fast: bool) -> bytes | None:
    """The row as sorted-key compact JSON, the bytes its import key has always been made of.

    orjson for rows it decoded whose numbers both libraries write alike (`_plain_numbers`);
    `json.dumps` for the others (NaN, huge integers, very small or large floats). None when the
    row cannot be written as UTF-8 (an unpaired surrogate escape).
    """
    if fast:
        try:
            return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)
        except orjson.JSONEncodeError:  # only its nesting limit can fail on a row orjson itself decoded
            raise _BadRow(_TOO_DEEP) from None
    if _depth(row) > MAX_NESTING:  # the json path would take what orjson refuses: the same rule on both
        raise _BadRow(_TOO_DEEP)
    try:
        return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                          default=_refuse_long_number).encode("utf-8")
    except _BadRow:
        raise
    except (UnicodeEncodeError, ValueError):
        return None


def _checked_row(row: Any, fast: bool, repeats: dict[str, int]) -> StageRow:
    """One decoded row validated into a StageRow; rows too deep for the readers are bad rows too."""
    try:
        return _parse_row(row, _import_key(_canonical(row, fast), repeats))
    except RecursionError:
        raise _BadRow(_TOO_DEEP) from None


# orjson writes at most 254 levels of arrays and objects inside each other; an Arena row has three.
MAX_NESTING = 254
_TOO_DEEP = f"arrays or objects nested more than {MAX_NESTING} levels deep (an Arena battle has three)"
# Longer integer literals are not read as numbers (Python refuses to convert past 4300 digits, and
# float() fails past 308): no field of a battle needs more than 20.
MAX_INT_DIGITS = 100


class _LongNumber:
    """An integer literal too long to be a number of any field, kept so the row is refused by name."""

    def __init__(self, digits: int) -> None:
        self.digits = digits

    def __repr__(self) -> str:
        return f"a {self.digits}-digit number"


def _parse_int(text: str) -> int | _LongNumber:
    digits = len(text) - (text[0] == "-")
    return int(text) if digits <= MAX_INT_DIGITS else _LongNumber(digits)


def _json_loads(data: bytes) -> Any:
    """`json.loads` that turns over-long integers into `_LongNumber` instead of failing the whole text."""
    return json.loads(data, parse_int=_parse_int)


def _refuse_long_number(value: Any) -> Any:
    if isinstance(value, _LongNumber):
        raise _BadRow(f"a number has {value.digits} digits; no field of a battle takes more than {MAX_INT_DIGITS}")
    raise TypeError(f"{type(value).__name__} is not JSON")


def _depth(value: Any) -> int:
    """Levels of arrays and objects inside each other (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, level)
        if level > MAX_NESTING:
            return level
        stack.extend((child, level + 1) for child in item)
    return deepest


# ---------------------------------------------------------------- validating


def _import_key(canonical: bytes | None, repeats: dict[str, int]) -> str:
    """Row fingerprint plus which repeat of identical content this is (within `repeats`' rows)."""
    if canonical is None:
        raise _BadRow("a text holds an unpaired surrogate escape (\\ud800-\\udfff); it cannot be stored")
    digest = hashlib.sha256(canonical).hexdigest()[:32]
    nth = repeats.get(digest, 0)
    repeats[digest] = nth + 1
    return f"arena:{digest}:{nth}"


def _parse_row(raw: Any, import_key: str) -> StageRow:
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise _BadRow(f"a battle must be a JSON object, got {_type_name(raw)}")
    model_a, model_b = _model(raw, "model_a"), _model(raw, "model_b")
    winner = raw.get("winner", _MISSING)
    if winner is _MISSING:
        raise _BadRow("missing key 'winner'")
    if not isinstance(winner, str) or winner not in OUR_WINNERS:
        raise _BadRow(f"winner {winner!r} is not one of {', '.join(OUR_WINNERS)}")
    tstamp = _tstamp(raw.get("tstamp"))
    if tstamp is None:
        tstamp = time.time()
    conversation_a, conversation_b = raw.get("conversation_a"), raw.get("conversation_b")
    if conversation_a is None and conversation_b is None:  # most public Arena dumps carry no text
        side_a = side_b = _NO_TURN
        json_a = json_b = "[]"
        fingerprint = _EMPTY_FINGERPRINT
    else:
        side_a = _split_turn(conversation_a, "conversation_a")
        side_b = _split_turn(conversation_b, "conversation_b")
        _check_same_input(side_a[0], side_b[0])
        json_a = _conversation_json(side_a[0])
        json_b = json_a if side_b[0] == side_a[0] else _conversation_json(side_b[0])
        fingerprint = input_fingerprint(side_a[0]) if side_a[0] else _EMPTY_FINGERPRINT
    return (import_key, _session_id(raw.get("question_id")), tstamp, _created_at(tstamp),
            1 if _anony(raw.get("anony")) else 0, OUR_WINNERS[winner], model_a, model_b,
            json_a, side_a[1], json_b, side_b[1], fingerprint)


def _conversation_json(conversation: list[dict[str, str]]) -> str:
    return json.dumps(conversation, ensure_ascii=False) if conversation else "[]"


_MISSING = object()
_EMPTY_FINGERPRINT = input_fingerprint([])
_NO_TURN: tuple[list[dict[str, str]], str] = ([], "")


def _model(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key, _MISSING)
    if type(value) is str and value and not value.isspace():
        return value
    if value is _MISSING:
        raise _BadRow(f"missing key '{key}'")
    raise _BadRow(f"{key} must be a non-empty string, got {value!r}")


def _tstamp(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadRow(f"tstamp must be epoch seconds (a number), got {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise _BadRow(f"tstamp has {len(str(abs(value)))} digits: not a date (epoch seconds)") from None
    if not math.isfinite(seconds):
        raise _BadRow(f"tstamp must be epoch seconds (a number), got {value!r}")
    return seconds


def _created_at(tstamp: float) -> str:
    try:
        return iso_utc(tstamp)
    except (ValueError, OverflowError, OSError):
        raise _BadRow(f"tstamp {tstamp!r} is not a date between years 1 and 9999 (epoch seconds)") from None


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
    if conversation_a == conversation_b:  # most Arena rows: both empty, or the same single turn
        return
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
    if isinstance(value, _LongNumber):
        return repr(value)
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )
