"""Agreement between a judge and people on the same battles: pure maths, no database.

Cohen's kappa (Cohen 1960) = (p_o - p_e) / (1 - p_e), with p_e from the two raters' marginals;
intervals by the percentile bootstrap over battles (resampling pairs of labels, seeded). Kept
self-contained on purpose (playground/agreement.py covers annotators, separately).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

CATEGORIES = ("left", "right", "tie", "both_bad")


@dataclass(frozen=True)
class Interval:
    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def _codes(labels: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    unknown = sorted({x for x in labels if x not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the categories {list(categories)}")
    return np.fromiter((index[x] for x in labels), dtype=np.int64, count=len(labels))


def confusion(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = CATEGORIES) -> list[list[int]]:
    """counts[i][j]: rater a said categories[i], rater b said categories[j]."""
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    k = len(categories)
    flat = _codes(a, categories) * k + _codes(b, categories)
    return np.bincount(flat, minlength=k * k).reshape(k, k).tolist()


def _kappa_from_codes(x: np.ndarray, y: np.ndarray, k: int) -> float | None:
    n = len(x)
    if n == 0:
        return None
    p_o = float(np.mean(x == y))
    p_e = float(np.dot(np.bincount(x, minlength=k), np.bincount(y, minlength=k))) / (n * n)
    if p_e >= 1.0:
        return None   # both raters used one and the same category: kappa is undefined
    return (p_o - p_e) / (1.0 - p_e)


def cohen_kappa(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = CATEGORIES) -> float | None:
    """Cohen's kappa of two raters over the same items; None when undefined (no items, or no
    variation at all)."""
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    return _kappa_from_codes(_codes(a, categories), _codes(b, categories), len(categories))


def agreement_rate(a: Sequence[str], b: Sequence[str]) -> float | None:
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a) if a else None


def bootstrap(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = CATEGORIES,
              rounds: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[Interval, Interval]:
    """(agreement rate, kappa), each with a percentile bootstrap interval over items."""
    x, y = _codes(a, categories), _codes(b, categories)
    n, k = len(x), len(categories)
    rate = Interval(agreement_rate(a, b), None, None)
    kappa = Interval(_kappa_from_codes(x, y, k), None, None)
    if n < 2:
        return rate, kappa
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(rounds, n))
    rates = np.mean(x[idx] == y[idx], axis=1)
    kappas = np.array([v for v in (_kappa_from_codes(x[i], y[i], k) for i in idx) if v is not None])
    tail = (1 - level) / 2 * 100
    rate = Interval(rate.value, *map(float, np.percentile(rates, [tail, 100 - tail])))
    if len(kappas):
        kappa = Interval(kappa.value, *map(float, np.percentile(kappas, [tail, 100 - tail])))
    return rate, kappa
