"""Answer extraction from model output, answer comparison, and the self-consistency vote.

The rules mirror the answer cleansing of the CoT papers so scores are comparable: look at the
text after the LAST answer marker ("The answer is", "Therefore, the answer (arabic numerals) is",
"Answer:", "####", or a `\\boxed{}`), take the first value of the wanted kind there (Kojima et
al.), and for numbers fall back to the last number in the whole output.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from playground.prompting.plan import ANSWER_KINDS

# ---------------------------------------------------------------- patterns

_NUMBER_RE = re.compile(
    r"(?<![\w.,/])"                                  # not inside a word or another number
    r"(?P<sign>[-\u2212])?"                          # ASCII or Unicode minus
    r"(?P<cur>[$\u20ac\u00a3\u00a5])?"               # $ EUR GBP YEN
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d/]))?"             # a fraction, but not a date like 3/4/2020
    r"(?P<pct>\s?%)?"
)
_MARKER_RE = re.compile(
    r"(?:\b(?:the\s+)?(?:final\s+)?answer(?:\s*\([^)\n]{0,40}\))?\s*(?:is\b\s*:?|:|=)|####)[ \t]*",
    re.IGNORECASE,
)
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_YES_NO_RE = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_LEADING_YES_NO_RE = re.compile(r"[\s*_\"'`(\[]*(yes|no)\b", re.IGNORECASE)
_TRAILING_YES_NO_RE = re.compile(r"\b(yes|no)\b(?=[\s*_\"'`)\]]*(?:[.!,;]|$))", re.IGNORECASE)
_CHOICE_PAREN_RE = re.compile(r"\(([A-Ja-j])\)")
_CHOICE_LEADING_RE = re.compile(r"[\s*_\"'`\[]*\(?([A-J])(?:\)|[.:,]|(?=\s*$)|(?=\s*\())")
_CHOICE_LOOSE_RE = re.compile(r"[\s*_\"'`\[]*\(?([A-J])\b(?![-'\u2019])")
_SENTENCE_END_RE = re.compile(r"[.!?](?=\s|$)|\n")
_LATEX_FRAC_RE = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_LATEX_TEXT_RE = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{([^{}]*)\}")


@dataclass(frozen=True)
class Extracted:
    """An answer found in a model's output; span is where it is in that text, for highlighting."""

    value: str                  # normalised: "1250", "3/4", "yes", "B", "positive"
    kind: str                   # number | yes_no | choice | text
    span: tuple[int, int]
    number: float | None = None  # the numeric value, for number answers


@dataclass(frozen=True)
class Vote:
    """Self-consistency result; tally is [(answer or None for 'no answer', count)], most votes first."""

    winner: str | None
    tally: list[tuple[str | None, int]]
    tie: bool


# ---------------------------------------------------------------- what the question asks for

_ASKS_NUMBER_RE = re.compile(
    r"\d|\bhow\s+(?:many|much|old|long|far|tall|big|fast|often)\b|\b(?:what|which)\s+year\b|"
    r"\b(?:calculate|compute|solve|sum|product|difference|total|percent(?:age)?|average)\b", re.IGNORECASE)
_ASKS_YES_NO_RE = re.compile(
    r"^\W*(?:is|are|was|were|am|do|does|did|can|could|will|would|should|shall|has|have|had|may|might|"
    r"must|isn't|aren't|doesn't|don't|didn't|can't|won't)\b", re.IGNORECASE)
_OPTION_A_RE = re.compile(r"\(A\)|^\s*A[.):]\s", re.MULTILINE)
_OPTION_B_RE = re.compile(r"\(B\)|^\s*B[.):]\s", re.MULTILINE)


def asked_kind(question: str) -> str:
    """What kind of answer the question itself asks for: choice (it lists (A)/(B) options),
    yes_no (it starts like 'Is ...?' without an 'or'), number (a digit or 'how many/much'),
    or 'none' ("Name three colours.": nothing to extract, so nothing is shown)."""
    text = question or ""
    if _OPTION_A_RE.search(text) and _OPTION_B_RE.search(text):
        return "choice"
    last = [line for line in text.strip().splitlines() if line.strip()][-1:] or [""]
    if _ASKS_YES_NO_RE.search(last[0]) and not re.search(r"\bor\b", last[0], re.IGNORECASE):
        return "yes_no"
    return "number" if _ASKS_NUMBER_RE.search(text) else "none"


def resolve_answer_kind(preset_kind: str, question: str) -> str:
    """The kind a plan extracts, from the preset's kind and the question: 'auto' follows the
    question; a number preset (arithmetic) extracts only when the question has numbers or asks
    'how many' (a list's "3." in "Name three colours." is not an answer); yes/no, choice and
    text presets (commonsense, multiple choice, sentiment) ask for their kind themselves."""
    if preset_kind == "auto":
        return asked_kind(question)
    if preset_kind == "number" and asked_kind(question) != "number":
        return "none"
    return preset_kind


# ---------------------------------------------------------------- numbers

def _number_parts(match: re.Match[str]) -> tuple[str, float]:
    """(normalised string, float) for one _NUMBER_RE match; fractions reduce, 6/3 becomes 2."""
    negative = bool(match.group("sign"))
    numerator = Decimal(match.group("num").replace(",", ""))
    if match.group("den") is not None:
        denominator = int(match.group("den"))
        if denominator == 0:
            raise ValueError("zero denominator")
        fraction = Fraction(numerator) / denominator * (-1 if negative else 1)
        if fraction.denominator == 1:
            return str(fraction.numerator), float(fraction)
        return f"{fraction.numerator}/{fraction.denominator}", float(fraction)
    value = -numerator if negative else numerator
    return _decimal_text(value), float(value)


def _decimal_text(value: Decimal) -> str:
    """Plain text without exponent or trailing zeros: 1000.00 -> 1000, 0.50 -> 0.5, -0 -> 0."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def normalize_number(s: str) -> str:
    """Canonical text of a written number: '1,000.00' -> '1000', '$5' -> '5', '0.50' -> '0.5', '50%' -> '50'.

    Raises ValueError if s holds no number. Percent signs are dropped because the benchmarks this
    app reproduces (GSM8K-style) write percentages as plain numbers.
    """
    match = _NUMBER_RE.search(s.strip())
    if match is None:
        raise ValueError(f"not a number: {s!r}")
    return _number_parts(match)[0]


def _numbers(text: str, start: int = 0, end: int | None = None) -> list[Extracted]:
    found = []
    for match in _NUMBER_RE.finditer(text, start, len(text) if end is None else end):
        try:
            value, number = _number_parts(match)
        except (ValueError, InvalidOperation, ZeroDivisionError):
            continue
        span_end = match.end("den") if match.group("den") is not None else match.end("num")
        found.append(Extracted(value, "number", (match.start(), span_end), number))
    return found


# ---------------------------------------------------------------- other kinds

def _yes_no_at_start(text: str, start: int, end: int) -> Extracted | None:
    match = _LEADING_YES_NO_RE.match(text, start, end)
    return Extracted(match.group(1).lower(), "yes_no", match.span(1)) if match else None


def _last_yes_no(text: str) -> Extracted | None:
    """A yes/no that closes a clause ('... so no.'), not the determiner in 'there is no way'."""
    matches = list(_TRAILING_YES_NO_RE.finditer(text))
    return Extracted(matches[-1].group(1).lower(), "yes_no", matches[-1].span(1)) if matches else None


def _choice_at_start(text: str, start: int, end: int, loose: bool = False) -> Extracted | None:
    """'(B)', 'B)', 'B.', a lone 'B'; loose (kind=choice) also takes 'B because ...'."""
    match = (_CHOICE_LOOSE_RE if loose else _CHOICE_LEADING_RE).match(text, start, end)
    if match is None:
        match = _CHOICE_PAREN_RE.match(text, _skip_spaces(text, start, end), end)
    return Extracted(match.group(1).upper(), "choice", match.span(1)) if match else None


def _last_paren_choice(text: str) -> Extracted | None:
    matches = list(_CHOICE_PAREN_RE.finditer(text))
    return Extracted(matches[-1].group(1).upper(), "choice", matches[-1].span(1)) if matches else None


def _skip_spaces(text: str, start: int, end: int) -> int:
    while start < end and text[start] in " \t*_\"'`":
        start += 1
    return start


def normalize_text(s: str) -> str:
    """Free-text answers: trimmed, single-spaced, without wrapping quotes/markdown or a final period."""
    text = " ".join(s.split()).strip(" *_\"'`")
    return text.rstrip(".!").strip(" *_\"'`")


def _sentence_span(text: str, start: int, end: int) -> tuple[int, int]:
    start = _skip_spaces(text, start, end)
    match = _SENTENCE_END_RE.search(text, start, end)
    stop = match.start() if match else end
    return start, stop


def _text_answer(text: str, start: int, end: int) -> Extracted | None:
    first, last = _sentence_span(text, start, end)
    value = normalize_text(text[first:last])
    if not value:
        return None
    offset = text.find(value, first, last + 1)
    span = (offset, offset + len(value)) if offset >= 0 else (first, last)
    return Extracted(value, "text", span)


# ---------------------------------------------------------------- answer regions

def _boxed_regions(text: str) -> list[tuple[int, int]]:
    """Content spans of every \\boxed{...}, with nested braces balanced."""
    regions = []
    for match in _BOXED_RE.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            regions.append((match.end(), i - 1))
    return regions


def _clean_latex(content: str) -> str:
    content = _LATEX_FRAC_RE.sub(r"\1/\2", content)
    content = _LATEX_TEXT_RE.sub(r"\1", content)
    for junk in ("\\!", "\\,", "\\;", "\\ ", "\\$", "$", "^\\circ", "^{\\circ}", "\\left", "\\right"):
        content = content.replace(junk, "")
    return content.replace("\\%", "%").strip()


def _value_in(text: str, start: int, end: int, kind: str) -> Extracted | None:
    """The first value of `kind` in text[start:end] (an answer region); auto tries choice, yes/no, number, text."""
    if kind in ("choice", "auto"):
        found = _choice_at_start(text, start, end, loose=kind == "choice")
        if found or kind == "choice":
            return found
    if kind in ("yes_no", "auto"):
        found = _yes_no_at_start(text, start, end)
        if found is None and kind == "yes_no":
            match = _YES_NO_RE.search(text, start, end)
            found = Extracted(match.group(1).lower(), "yes_no", match.span(1)) if match else None
        if found or kind == "yes_no":
            return found
    if kind in ("number", "auto"):
        numbers = _numbers(text, start, end)
        if numbers or kind == "number":
            return numbers[0] if numbers else None
    return _text_answer(text, start, end)


def _boxed_value(text: str, start: int, end: int, kind: str) -> Extracted | None:
    """Parse the LaTeX-cleaned content; the span covers the whole box content."""
    content = _clean_latex(text[start:end])
    found = _value_in(content, 0, len(content), kind)
    return Extracted(found.value, found.kind, (start, end), found.number) if found else None


def _answer_regions(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, is_boxed) after each marker, in text order; a region runs to the end of the text."""
    regions = [(m.end(), len(text), False) for m in _MARKER_RE.finditer(text)]
    regions += [(s, e, True) for s, e in _boxed_regions(text)]
    return sorted(regions)


def _fallback(text: str, kind: str) -> Extracted | None:
    """No marker: last number (number), leading or clause-final yes/no, leading or last '(X)' choice."""
    if kind == "number":
        numbers = _numbers(text)
        return numbers[-1] if numbers else None
    if kind == "yes_no":
        return _yes_no_at_start(text, 0, len(text)) or _last_yes_no(text)
    if kind == "choice":
        return _choice_at_start(text, 0, len(text)) or _last_paren_choice(text)
    if kind == "text":
        return _text_answer(text, 0, len(text))
    found = _choice_at_start(text, 0, len(text)) or _yes_no_at_start(text, 0, len(text))
    if found:
        return found
    numbers = _numbers(text)
    return numbers[-1] if numbers else None


def extract_answer(text: str, kind: str = "auto") -> Extracted | None:
    """Find the answer in a model output; None when there is none.

    The latest marker or box that holds a value of the kind wins (models often restate and
    correct themselves); without one, fall back as described in `_fallback`.
    """
    if kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; one of {ANSWER_KINDS}")
    if kind == "none" or not text or not text.strip():
        return None
    for start, end, boxed in reversed(_answer_regions(text)):
        found = _boxed_value(text, start, end, kind) if boxed else _value_in(text, start, end, kind)
        if found is not None:
            return found
    return _fallback(text, kind)


# ---------------------------------------------------------------- comparison and vote

def _as_number(s: str) -> float | None:
    """The first number written in s, or None."""
    match = _NUMBER_RE.search(s)
    try:
        return _number_parts(match)[1] if match else None
    except (ValueError, InvalidOperation, ZeroDivisionError):
        return None


def _is_plain_number(s: str) -> bool:
    """True when s is just a number (with currency, sign, commas, %), not text containing one."""
    return _NUMBER_RE.fullmatch(normalize_text(s)) is not None


def answers_match(pred: str | None, gold: str | None, kind: str = "auto") -> bool:
    """Compare a predicted and a gold answer under the kind's normalisation.

    Numbers compare by value (3/4 == 0.75, $1,250 == 1250) with a relative tolerance of 1e-6;
    yes/no and text compare case-insensitively; choices compare the letter.
    """
    if pred is None or gold is None:
        return False
    if kind == "number" or (kind == "auto" and _is_plain_number(pred) and _is_plain_number(gold)):
        a, b = _as_number(pred), _as_number(gold)
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if kind == "choice":
        return normalize_text(pred).strip("()").upper() == normalize_text(gold).strip("()").upper()
    return normalize_text(pred).casefold() == normalize_text(gold).casefold()


def majority_vote(answers: Sequence[str | None]) -> Vote:
    """Majority vote over sampled answers (self-consistency).

    None means 'no answer': it is tallied but never wins unless every answer is None. Ties go to
    the answer that reached the top count first in sampling order, reported with tie=True, so the
    same samples always give the same winner. The tally lists answers by count, then by when they
    reached that count.
    """
    counts: dict[str | None, int] = {}
    reached: dict[str | None, int] = {}
    for index, answer in enumerate(answers):
        counts[answer] = counts.get(answer, 0) + 1
        reached[answer] = index
    tally = sorted(counts.items(), key=lambda item: (-item[1], reached[item[0]]))
    real = [(answer, count) for answer, count in tally if answer is not None]
    if not real:
        return Vote(winner=None, tally=tally, tie=False)
    top = real[0][1]
    return Vote(winner=real[0][0], tally=tally, tie=sum(1 for _, c in real if c == top) > 1)


def split_reasoning(text: str) -> tuple[str, str]:
    """(reasoning, final): final starts at the sentence holding the last answer marker.

    With no marker, everything is reasoning and final is "". Nothing is dropped: reasoning + final
    covers the whole (stripped) text, so the UI can show both without losing a word.
    """
    starts = [m.start() for m in _MARKER_RE.finditer(text)] + [m.start() for m in _BOXED_RE.finditer(text)]
    if not starts:
        return text.strip(), ""
    marker_start = max(starts)
    sentence_start = _sentence_start(text, marker_start)
    return text[:sentence_start].strip(), text[sentence_start:].strip()


def _sentence_start(text: str, position: int) -> int:
    """Index just after the last sentence end ('. ', '!', '?', newline) before position."""
    start = 0
    for match in _SENTENCE_END_RE.finditer(text, 0, position):
        start = match.end()
    return start
