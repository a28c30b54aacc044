"""Task files for the emergence lab: reading, validating, and scoring one item's answer.

Two JSONL formats, detected line by line (a file may mix them):

- GSM8K: `{"question": ..., "answer": "...worked solution...\\n#### 1,234"}`; the gold answer is
  the number after the last `####`, normalised (`1,234` -> `1234`).
- generic: `{"input": ..., "target": ..., "choices": [...]}` (choices optional). With choices the
  options are appended to the question as "Answer Choices: (A) ... (B) ..." (the CoT papers'
  format for multiple choice) and the target, given as the option text or its letter, becomes
  the letter. Without choices the answer kind is inferred from the target: a number, yes/no
  (also JSON true/false), or free text.

A bad line is reported with its line number and skipped; a file that cannot be used at all
(missing, a folder, binary, not UTF-8, empty, no usable line) raises `TaskFileError` naming it.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.errors import PlaygroundError
from playground.prompting.extract import answers_match, normalize_number, normalize_text
from playground.prompting.presets import FAMILIES

CHOICE_LETTERS = "ABCDEFGHIJ"   # what the answer extractor recognises
SNIFF_BYTES = 8_192
MAX_LABELS = 10
SENTIMENT_LABELS = frozenset({"positive", "negative", "neutral", "mixed"})
_PLAIN_NUMBER_RE = re.compile(
    r"^\s*[-\u2212+]?\s*[$\u20ac\u00a3\u00a5]?\s*(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?\s*%?\s*$"
    r"|^\s*[-\u2212+]?\d+\s*/\s*\d+\s*$")
_LETTER_RE = re.compile(r"^\(?([A-Ja-j])\)?$")


class TaskFileError(PlaygroundError):
    """The task file as a whole cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class LineError:
    """One skipped line of a task file."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class TaskItem:
    """One evaluation item: the question exactly as the model gets it, and the gold answer."""

    index: int                 # position among the file's valid items (0-based): the resume key
    line: int                  # 1-based line in the file, for messages
    question: str              # with the answer choices appended for multiple choice
    gold: str                  # normalised: "1234", "yes", "B", "positive"
    answer_kind: str           # number | yes_no | choice | text
    choices: tuple[str, ...] = ()
    stem: str = ""             # multiple choice: the question without its options (log-likelihood scoring)


@dataclass(frozen=True)
class TaskSet:
    """A parsed task file: its valid items, the skipped lines, and a content hash for resuming."""

    path: Path
    sha256: str
    items: tuple[TaskItem, ...]
    errors: tuple[LineError, ...] = ()
    formats: tuple[str, ...] = field(default=())   # which formats occurred: gsm8k, generic

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def labels(self) -> tuple[str, ...]:
        """The closed label set of a text task (e.g. positive/negative), else ()."""
        return text_labels(self.items)


# ---------------------------------------------------------------- reading the file

def read_task_text(path: Path) -> tuple[str, str]:
    """(text, sha256 of the bytes); whole-file problems raise TaskFileError."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TaskFileError(f"task file {path} does not exist; pass a JSONL file, e.g. one in presets/tasks/") from None
    except IsADirectoryError:
        raise TaskFileError(f"task file {path} is a folder; pass a JSONL file inside it") from None
    except OSError as exc:
        raise TaskFileError(f"cannot read task file {path}: {exc.strerror or exc}") from exc
    if b"\x00" in data[:SNIFF_BYTES]:
        raise TaskFileError(f"task file {path} is a binary file, not JSONL text; pass a .jsonl file "
                            "with one JSON object per line")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaskFileError(f"task file {path} is not UTF-8 text (bad byte at offset {exc.start}); "
                            "save it as UTF-8 JSONL") from None
    if not text.strip():
        raise TaskFileError(f"task file {path} is empty; it needs one JSON object per line with "
                            "question/answer (GSM8K) or input/target (generic) keys")
    return text, hashlib.sha256(data).hexdigest()


def load_task_file(path: str | Path) -> TaskSet:
    """Parse a task file; bad lines are collected in `errors`, never fatal unless all are bad."""
    path = Path(path)
    text, digest = read_task_text(path)
    items: list[TaskItem] = []
    errors: list[LineError] = []
    formats: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item, fmt = parse_line(line, len(items), number)
        except ValueError as exc:
            errors.append(LineError(number, str(exc)))
            continue
        items.append(item)
        formats.add(fmt)
    if not items:
        shown = "; ".join(str(e) for e in errors[:3])
        raise TaskFileError(f"task file {path} has no usable item ({len(errors)} bad line(s): {shown}). "
                            "Each line needs question/answer (GSM8K, answer ending '#### N') or input/target.")
    return TaskSet(path=path, sha256=digest, items=tuple(items), errors=tuple(errors),
                   formats=tuple(sorted(formats)))


def parse_line(text: str, index: int, line_no: int) -> tuple[TaskItem, str]:
    """One JSONL line -> (item, format). Raises ValueError with the message for the line report."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    if "question" in row and "answer" in row:
        return gsm8k_item(row, index, line_no), "gsm8k"
    if "input" in row and "target" in row:
        return generic_item(row, index, line_no), "generic"
    keys = ", ".join(sorted(map(str, row))) or "none"
    raise ValueError(f"expected keys question+answer (GSM8K) or input+target (generic), got: {keys}")


def _required_text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"'{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def gsm8k_item(row: dict[str, Any], index: int, line_no: int) -> TaskItem:
    """GSM8K: the gold number follows the last '####' of the worked answer."""
    question = _required_text(row, "question")
    answer = _required_text(row, "answer")
    if "####" not in answer:
        raise ValueError("'answer' has no final '#### <number>' line (GSM8K format)")
    final = answer.rsplit("####", 1)[1].strip()
    try:
        gold = normalize_number(final)
    except ValueError:
        raise ValueError(f"the text after '####' is not a number: {final!r}") from None
    return TaskItem(index=index, line=line_no, question=question, gold=gold, answer_kind="number")


def generic_item(row: dict[str, Any], index: int, line_no: int) -> TaskItem:
    """Generic: input + target, with optional choices (multiple choice)."""
    question = _required_text(row, "input")
    target = row.get("target")
    choices = row.get("choices")
    if choices is not None:
        options = _choices(choices)
        letter = choice_letter(target, options)
        return TaskItem(index=index, line=line_no, question=with_choices(question, options), gold=letter,
                        answer_kind="choice", choices=options, stem=question)
    kind, gold = infer_kind(target)
    return TaskItem(index=index, line=line_no, question=question, gold=gold, answer_kind=kind)


def _choices(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not 2 <= len(value) <= len(CHOICE_LETTERS):
        raise ValueError(f"'choices' must be a list of 2 to {len(CHOICE_LETTERS)} options, got {value!r}")
    options = tuple(str(c).strip() for c in value if isinstance(c, (str, int, float)) and not isinstance(c, bool))
    if len(options) != len(value) or not all(options):
        raise ValueError("every choice must be a non-empty string or number")
    return options


def choice_letter(target: Any, options: tuple[str, ...]) -> str:
    """The target as an option letter: given as the option text (case-insensitive) or as 'B' / '(B)'."""
    if isinstance(target, bool) or not isinstance(target, (str, int, float)):
        raise ValueError(f"'target' must be one of the choices or its letter, got {target!r}")
    text = str(target).strip()
    folded = [o.casefold() for o in options]
    if text.casefold() in folded:
        return CHOICE_LETTERS[folded.index(text.casefold())]
    match = _LETTER_RE.match(text)
    if match and CHOICE_LETTERS.index(match.group(1).upper()) < len(options):
        return match.group(1).upper()
    letters = ", ".join(f"({CHOICE_LETTERS[i]}) {o}" for i, o in enumerate(options))
    raise ValueError(f"'target' {text!r} is neither a choice nor a choice letter; choices: {letters}")


def with_choices(question: str, options: tuple[str, ...]) -> str:
    """The question with its options, as in the CoT papers: 'Answer Choices: (A) x (B) y'."""
    listed = " ".join(f"({CHOICE_LETTERS[i]}) {o}" for i, o in enumerate(options))
    return f"{question}\nAnswer Choices: {listed}"


def infer_kind(target: Any) -> tuple[str, str]:
    """(answer kind, normalised gold) of a target without choices."""
    if isinstance(target, bool):
        return "yes_no", "yes" if target else "no"
    if isinstance(target, (int, float)):
        return "number", normalize_number(repr(target) if isinstance(target, float) else str(target))
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"'target' must be a non-empty string, number or true/false, got {target!r}")
    text = target.strip()
    if text.casefold() in ("yes", "no"):
        return "yes_no", text.casefold()
    if _PLAIN_NUMBER_RE.match(text):
        return "number", normalize_number(text)
    return "text", normalize_text(text)


# ---------------------------------------------------------------- families and labels

def text_labels(items: tuple[TaskItem, ...]) -> tuple[str, ...]:
    """A text task whose targets come from a few short labels (sentiment) is scored by label."""
    texts = [i.gold for i in items if i.answer_kind == "text"]
    if not texts or len(texts) != len(items):
        return ()
    labels = sorted({t.casefold() for t in texts})
    if len(labels) > MAX_LABELS or len(labels) == len(texts) > 2 or any(len(t.split()) > 3 for t in labels):
        return ()
    return tuple(labels)


def infer_family(items: tuple[TaskItem, ...]) -> str:
    """Which prompting presets fit: all numbers -> arithmetic, all yes/no -> commonsense_yes_no,
    sentiment labels -> sentiment, anything else -> general."""
    kinds = Counter(i.answer_kind for i in items)
    if set(kinds) == {"number"}:
        return "arithmetic"
    if set(kinds) == {"yes_no"}:
        return "commonsense_yes_no"
    labels = text_labels(items)
    if labels and set(labels) <= SENTIMENT_LABELS:
        return "sentiment"
    return "general"


def check_family(family: str) -> str:
    if family not in FAMILIES:
        raise PlaygroundError(f"unknown task family '{family}'; choose one of: {', '.join(FAMILIES)}")
    return family


# ---------------------------------------------------------------- scoring one answer

def match_label(text: str, labels: tuple[str, ...]) -> str | None:
    """The label the answer commits to: the last label named as a whole word ('... so it is positive.')."""
    if not text or not labels:
        return None
    pattern = re.compile(r"\b(" + "|".join(re.escape(lab) for lab in labels) + r")\b", re.IGNORECASE)
    found = pattern.findall(text)
    return found[-1].casefold() if found else None


def score_answer(item: TaskItem, extracted: str | None, answer_text: str,
                 labels: tuple[str, ...] = ()) -> tuple[str | None, bool]:
    """(the answer as stored, correct?) under the item's kind.

    Numbers, yes/no and choices use the extractor's value and `answers_match`. Free text with a
    closed label set (sentiment) looks for a label in the extracted sentence first, then in the
    whole answer: small models answer "The review is positive." rather than one bare word.
    """
    if item.answer_kind == "text" and labels:
        value = match_label(extracted or "", labels) or match_label(answer_text, labels) or extracted
    else:
        value = extracted
    return value, answers_match(value, item.gold, item.answer_kind)
