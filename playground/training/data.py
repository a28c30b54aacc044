"""Preference data for training: the DPO export (same filters, same rules) split into train and held-out.

The export is the one source of truth for what a vote means as a pair (playground/export.py); here
it is written to a temporary file, read back, shuffled with a seed and split.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from playground.errors import PlaygroundError
from playground.export import export_dpo


@dataclass(frozen=True)
class PreferenceFilters:
    """The export's filters: contestant (either side), mode, vote time window, blind only, cut answers."""

    model: str | None = None
    mode: str | None = None
    since: float | None = None
    until: float | None = None
    anonymous_only: bool = False
    include_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


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
                     seed: int = 0) -> PreferenceSplit:
    """Export the votes as conversational DPO pairs and split them; no pair -> PlaygroundError."""
    if not 0 <= held_out_fraction < 1:
        raise PlaygroundError(f"held-out fraction {held_out_fraction} must be at least 0 and below 1 (default 0.1)")
    with tempfile.TemporaryDirectory(prefix="playground-train-") as tmp:
        result = export_dpo(db, Path(tmp) / "pairs.jsonl", format="conversational", model=filters.model,
                            mode=filters.mode, since=filters.since, until=filters.until,
                            anonymous_only=filters.anonymous_only, include_truncated=filters.include_truncated)
        text = result.path.read_text(encoding="utf-8")
    if result.written == 0:
        raise PlaygroundError(
            f"no preference pairs to train on with these filters ({describe(filters)}): a pair needs a decisive "
            f"vote (left or right) on two answers to the same input; {result.skipped} votes were unusable, "
            f"left out: {result.left_out or 'none'}. Vote in the Arena or widen the filters")
    rows = [json.loads(line) for line in text.splitlines()]
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_held = math.ceil(len(rows) * held_out_fraction) if held_out_fraction and len(rows) > 1 else 0
    held = [rows[i] for i in order[:n_held]]
    train = [rows[i] for i in order[n_held:]]
    counts = {"written": result.written, "duplicates_dropped": result.duplicates, "skipped": result.skipped,
              "left_out": result.left_out, "truncated_included": result.truncated}
    return PreferenceSplit(train, held, hashlib.sha256(text.encode("utf-8")).hexdigest(), counts)


def describe(filters: PreferenceFilters) -> str:
    """The filters in words, for messages and the model card."""
    parts = [f"{k}={v}" for k, v in filters.to_dict().items() if v not in (None, False)]
    if not filters.include_truncated:
        parts.append("answers cut by the token limit left out")
    return ", ".join(parts) or "no filters"
