"""The small statistics the ranking, the lab, the team report and the judge report share: pure maths.

One definition each: the 95% normal quantile, the Wilson score interval, Cohen's and Fleiss'
kappa, and the percentile bootstrap over items.

Undefined results are NaN, never None or a made-up value: a Wilson interval of zero trials, a
kappa with no items or whose chance agreement is 1 (everyone gave one verdict), a bootstrap with
fewer than two items or no resample where the statistic is defined. NaN keeps the arrays numeric
(the bootstrap filters it out); the callers that write JSON turn it into null at that edge.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from playground.verdicts import WINNERS

Z95 = 1.959963984540054
"""The two-sided 95% quantile of the standard normal distribution."""
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1000


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion: well-behaved at 0/n and n/n and for small samples,
    unlike the Wald interval. (nan, nan) for zero trials: nothing was observed."""
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


def label_codes(labels: Sequence[str], categories: Sequence[str]) -> np.ndarray:
    """Labels as integer codes into `categories`; ValueError naming the labels that are not among them."""
    index = {c: i for i, c in enumerate(categories)}
    unknown = sorted({x for x in labels if x not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the categories {list(categories)}")
    return np.fromiter((index[x] for x in labels), dtype=np.int64, count=len(labels))


def kappa_codes(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Cohen's kappa (Cohen 1960) on integer-coded labels, (p_o - p_e) / (1 - p_e) with p_e from the two
    raters' marginals. Vectorised: the bootstrap calls it a thousand times."""
    n = len(a)
    if n == 0:
        return math.nan
    observed = float(np.mean(a == b))
    chance = float(np.bincount(a, minlength=k) @ np.bincount(b, minlength=k)) / (n * n)
    if chance >= 1.0:
        return math.nan     # both raters used one and the same category: undefined, not 1
    return (observed - chance) / (1.0 - chance)


def cohen_kappa(a: Sequence[str], b: Sequence[str], categories: Sequence[str] = WINNERS) -> float:
    """Cohen's kappa of two raters' labels on the same items, in the same order (by default, verdicts)."""
    if len(a) != len(b):
        raise ValueError(f"the two raters labelled {len(a)} and {len(b)} items")
    return kappa_codes(label_codes(a, categories), label_codes(b, categories), len(categories))


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories matrix of rating counts (rows with < 2 ratings ignored).

    Rows may have different totals (the varying-raters form: P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)),
    chance from the pooled shares).
    """
    counts = np.asarray(counts, dtype=float)
    n = counts.sum(axis=1)
    counts, n = counts[n >= 2], n[n >= 2]
    if len(n) == 0:
        return math.nan
    p_items = ((counts ** 2).sum(axis=1) - n) / (n * (n - 1))
    shares = counts.sum(axis=0) / n.sum()
    chance = float((shares ** 2).sum())
    if chance >= 1.0:
        return math.nan
    return (float(p_items.mean()) - chance) / (1.0 - chance)


def percentile_bootstrap(statistic: Callable[[np.ndarray], float], n_items: int, *,
                         resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile interval of `statistic(indices)` over `resamples` draws of item indices with
    replacement (seeded, so a report is reproducible); resamples where it is NaN are left out."""
    if n_items < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_items, n_items)) for _ in range(resamples)], dtype=float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
