"""Preference data for training: the DPO export (same filters, same rules) split into train and held-out,
and for KTO the unpaired export's rows with the held-out pairs' answers left out.

The export is the one source of truth for what a vote means as a pair or a labelled row
(playground/export.py); here it is written to a temporary file, read back, shuffled with a seed
and split. The held-out share is always DPO pairs, so both methods are scored the same way.
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
from playground.export import export_dpo, export_kto


@dataclass(frozen=True)
class PreferenceFilters:
    """The export's filters: contestant (either side), mode, vote time window, blind only, cut answers,
    and `agreed_only`: only pairs two or more annotators judged alike, once (the export's rule)."""

    model: str | None = None
    mode: str | None = None
    since: float | None = None
    until: float | None = None
    anonymous_only: bool = False
    include_truncated: bool = False
    agreed_only: bool = False

    def export_kwargs(self) -> dict[str, Any]:
        return dict(model=self.model, mode=self.mode, since=self.since, until=self.until,
                    anonymous_only=self.anonymous_only, include_truncated=self.include_truncated,
                    agreed_only=self.agreed_only)

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
                     seed: int = 0, require_pairs: bool = True) -> PreferenceSplit:
    """Export the votes as conversational DPO pairs and split them; no pair -> PlaygroundError
    (unless `require_pairs` is False: KTO can train on rows without any decisive pair)."""
    if not 0 <= held_out_fraction < 1:
        raise PlaygroundError(f"held-out fraction {held_out_fraction} must be at least 0 and below 1 (default 0.1)")
    with tempfile.TemporaryDirectory(prefix="playground-train-") as tmp:
        result = export_dpo(db, Path(tmp) / "pairs.jsonl", format="conversational", **filters.export_kwargs())
        text = result.path.read_text(encoding="utf-8")
    if result.written == 0 and not require_pairs:
        return PreferenceSplit([], [], hashlib.sha256(b"").hexdigest(), _counts(result))
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
    return PreferenceSplit(train, held, hashlib.sha256(text.encode("utf-8")).hexdigest(), _counts(result))


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
    with tempfile.TemporaryDirectory(prefix="playground-train-") as tmp:
        result = export_kto(db, Path(tmp) / "rows.jsonl", format="conversational", **filters.export_kwargs())
        text = result.path.read_text(encoding="utf-8")
    held = {_answer_key(p["prompt"], p[k]) for p in held_out for k in ("chosen", "rejected")}
    rows = [r for r in map(json.loads, text.splitlines()) if _answer_key(r["prompt"], r["completion"]) not in held]
    if not rows:
        raise PlaygroundError(
            f"no KTO rows to train on with these filters ({describe(filters)}): a row needs a vote other than a "
            f"tie on two answers to the same input, outside the held-out pairs; {result.skipped} votes were "
            f"unusable, left out: {result.left_out or 'none'}. Vote in the Arena, widen the filters or hold out less")
    random.Random(seed).shuffle(rows)
    counts = _counts(result) | {"held_out_rows_dropped": len(text.splitlines()) - len(rows)}
    return UnpairedRows(rows, hashlib.sha256(text.encode("utf-8")).hexdigest(), counts)


def _answer_key(prompt: Any, answer: Any) -> str:
    return json.dumps([prompt, answer], sort_keys=True, ensure_ascii=False)


def _counts(result: Any) -> dict[str, Any]:
    return {"written": result.written, "duplicates_dropped": result.duplicates, "skipped": result.skipped,
            "left_out": result.left_out, "truncated_included": result.truncated}


def describe(filters: PreferenceFilters) -> str:
    """The filters in words, for messages and the model card."""
    parts = [f"{k}={v}" for k, v in filters.to_dict().items() if v not in (None, False)]
    if not filters.include_truncated:
        parts.append("answers cut by the token limit left out")
    return ", ".join(parts) or "no filters"
