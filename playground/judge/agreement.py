"""Agreement between a judge and people on the same battles: pure maths, no database.

The agreement rate and Cohen's kappa of the two label lists, each with a percentile bootstrap
interval over battles (resampling pairs of labels, seeded); the statistics are playground/stats.py's.
An undefined figure (no battles, one verdict throughout, fewer than two battles for an interval)
is None here, as it is in the report's JSON.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from playground.stats import CONFIDENCE, kappa_codes, label_codes, percentile_bootstrap
from playground.verdicts import WINNERS

CATEGORIES = WINNERS


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def _defined(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def confusion(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = CATEGORIES) -> list[list[int]]:
    """counts[i][j]: rater a said categories[i], rater b said categories[j]."""
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    k = len(categories)
    flat = label_codes(a, categories) * k + label_codes(b, categories)
    return np.bincount(flat, minlength=k * k).reshape(k, k).tolist()


def agreement_rate(a: Sequence[str], b: Sequence[str]) -> float | None:
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None


def bootstrap(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = CATEGORIES,
              rounds: int = 1000, seed: int = 0, level: float = CONFIDENCE) -> tuple[Interval, Interval]:
    """(agreement rate, kappa), each with a percentile bootstrap interval over items."""
    rate = agreement_rate(a, b)
    x, y = label_codes(a, categories), label_codes(b, categories)
    k = len(categories)

    def interval(value: float | None, statistic) -> Interval:
        low, high = percentile_bootstrap(statistic, len(x), resamples=rounds, confidence=level, seed=seed)
        return Interval(value, _defined(low), _defined(high))

    return (interval(rate, lambda idx: float(np.mean(x[idx] == y[idx]))),
            interval(_defined(kappa_codes(x, y, k)), lambda idx: kappa_codes(x[idx], y[idx], k)))
