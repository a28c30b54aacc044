"""Preference data for training: the DPO export's pairs (same filters, same rules) split into train and
held-out, and for KTO the unpaired export's rows with the held-out pairs' answers left out.

The export is the one source of truth for what a vote means as a pair or a labelled row
(playground/export.py `preference_rows`); here its rows are read in memory, shuffled with a seed
and split. The held-out share is always DPO pairs, so both methods are scored the same way.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any

from sqlite_utils import Database

from playground.errors import PlaygroundError
from playground.export import PreferenceCounts, PreferenceFilters, preference_rows


@dataclass(frozen=True)
class PreferenceSplit:
    """Conversational DPO pairs: `train` and `held_out`, the sha256 of the whole set, export counts."""

    train: list[dict[str, Any]]
    held_out: list[dict[str, Any]]
    sha256: str
    export_counts: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.train) + len(self.held_out)


def load_preferences(db: Database, filters: PreferenceFilters, *, held_out_fraction: float = 0.1,
                     seed: int = 0, require_pairs: bool = True) -> PreferenceSplit:
    """Export the votes as conversational DPO pairs and split them; no pair -> PlaygroundError
    (unless `require_pairs` is False: KTO can train on rows without any decisive pair)."""
    if not 0 <= held_out_fraction < 1:
        raise PlaygroundError(f"held-out fraction {held_out_fraction} must be at least 0 and below 1 (default 0.1)")
    counts = PreferenceCounts()
    lines = [line for line, _meta in preference_rows(db, "dpo", filters, format="conversational", counts=counts)]
    text = "".join(lines)
    if counts.written == 0 and not require_pairs:
        return PreferenceSplit([], [], hashlib.sha256(b"").hexdigest(), _counts(counts))
    if counts.written == 0:
        raise PlaygroundError(
            f"no preference pairs to train on with these filters ({describe(filters)}): a pair needs a decisive "
            f"vote (left or right) on two answers to the same input; {sum(counts.skipped.values())} votes were "
            f"unusable, left out: {dict(counts.left_out) or 'none'}. Vote in the Arena or widen the filters")
    rows = [json.loads(line) for line in lines]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_held = math.ceil(len(rows) * held_out_fraction) if held_out_fraction and len(rows) > 1 else 0
    held = [rows[i] for i in order[:n_held]]
    train = [rows[i] for i in order[n_held:]]
    return PreferenceSplit(train, held, hashlib.sha256(text.encode("utf-8")).hexdigest(), _counts(counts))


@dataclass(frozen=True)
class UnpairedRows:
    """KTO rows ({prompt, completion, label}, conversational) for training, their sha256, export counts."""

    rows: list[dict[str, Any]]
    sha256: str
    export_counts: dict[str, Any] = field(default_factory=dict)

    @property
    def desirable(self) -> int:
        return sum(1 for r in self.rows if r["label"])


def load_unpaired(db: Database, filters: PreferenceFilters, held_out: list[dict[str, Any]], *,
                  seed: int = 0) -> UnpairedRows:
    """The KTO export (same filters) minus every row whose answer belongs to a held-out pair, shuffled
    with `seed` (KTOTrainer reads rows in order); no row left -> PlaygroundError."""
    counts = PreferenceCounts()
    lines = [line for line, _meta in preference_rows(db, "kto", filters, format="conversational", counts=counts)]
    text = "".join(lines)
    held = {_answer_key(p["prompt"], p[k]) for p in held_out for k in ("chosen", "rejected")}
    rows = [r for r in map(json.loads, lines) if _answer_key(r["prompt"], r["completion"]) not in held]
    if not rows:
        raise PlaygroundError(
            f"no KTO rows to train on with these filters ({describe(filters)}): a row needs a vote other than a "
            f"tie on two answers to the same input, outside the held-out pairs; {sum(counts.skipped.values())} votes "
            f"were unusable, left out: {dict(counts.left_out) or 'none'}. Vote in the Arena, widen the filters or hold out less")
    random.Random(seed).shuffle(rows)
    report = _counts(counts) | {"held_out_rows_dropped": len(lines) - len(rows)}
    return UnpairedRows(rows, hashlib.sha256(text.encode("utf-8")).hexdigest(), report)


def _answer_key(prompt: Any, answer: Any) -> str:
    return json.dumps([prompt, answer], sort_keys=True, ensure_ascii=False)


def _counts(counts: PreferenceCounts) -> dict[str, Any]:
    return {"written": counts.written, "duplicates_dropped": counts.duplicates, "skipped": sum(counts.skipped.values()),
            "left_out": dict(counts.left_out), "truncated_included": counts.truncated}


def describe(filters: PreferenceFilters) -> str:
    """The filters in words, for messages and the model card."""
    default = PreferenceFilters().to_dict()
    parts = [f"{k}={v}" for k, v in filters.to_dict().items() if v not in (None, False) and v != default[k]]
    if not filters.include_truncated:
        parts.append("answers cut by the token limit left out")
    return ", ".join(parts) or "no filters"
