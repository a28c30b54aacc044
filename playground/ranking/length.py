"""Length control: Bradley-Terry with an answer-length covariate (Chatbot Arena's style control, length only)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from playground.ranking.battles import (BOTH_BAD, ELO_PER_NAT, INIT_RATING, TIE, Battles, BothBad, RankingError,
                                        Tally, _check_both_bad, _require_battles, tally_battles)
from playground.ranking.bradley_terry import DEFAULT_PRIOR, blank_isolated, prior_per_pair, rescue_amount
from playground.ranking.fitting import Cells, bootstrap_interval, build_cells, fit_cells, to_elo


@dataclass(frozen=True)
class LengthControl:
    """Bradley-Terry with an answer-length covariate (Chatbot Arena's style control, length only).

    logit P(left wins) = theta_left - theta_right + beta * z with
    z = ((left_len - right_len) / (left_len + right_len)) / std, so `rating` is a contestant's
    strength at equal answer lengths and `coef` is the rating-point bonus for being one standard
    deviation longer (relative difference) than the opponent (NaN when lengths never differ).
    Same prior and anchoring as the plain fit; CIs from the same multinomial bootstrap.
    """

    names: tuple[str, ...]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    coef: float
    coef_ci_low: float
    coef_ci_high: float
    length_std: float
    bins: int


def fit_length_controlled(
    battles: Battles,
    *,
    both_bad: BothBad = "tie",
    prior: float | None = DEFAULT_PRIOR,
    rounds: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    bins: int = 16,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> LengthControl:
    """Length-controlled ratings, fitted on (left, right, length bin, outcome) cells.

    The normalised length difference is cut into `bins` quantile bins and each battle gets its
    bin's mean value (exact when there are at most `bins` distinct values): this keeps the fit
    and the bootstrap on a few thousand cells instead of a million rows, at the cost of a
    negligible attenuation of `coef`.
    """
    _check_both_bad(both_bad)
    coded = _require_battles(battles)
    if not battles.has_lengths:
        raise RankingError("length control needs answer lengths (left_len, right_len)")
    keep = coded.winner != BOTH_BAD if both_bad == "exclude" else np.ones(len(battles), bool)
    if not keep.any():
        raise RankingError("no battles left to rank: every battle was both_bad and both_bad='exclude'")
    diff = _length_feature(battles.left_len[keep], battles.right_len[keep])
    std = float(diff.std()) or 1.0
    left, right, outcome = coded.left[keep], coded.right[keep], np.minimum(coded.winner[keep], TIE)
    flip = left > right  # orient every battle as (lower code, higher code): half the cells
    diff = np.where(flip, -diff, diff)
    outcome = np.where(flip & (outcome < TIE), 1 - outcome, outcome)
    bin_index, bin_value = _quantile_bins(diff / std, bins)
    tally = tally_battles(battles)
    lo, hi = np.where(flip, right, left), np.where(flip, left, right)
    cells = _length_cells(len(coded.names), lo, hi, outcome, bin_index, bin_value, tally, both_bad, prior)
    theta, beta, ok = fit_cells(cells, *cells.groups_from(cells.counts[None, :]))
    if not ok[0]:
        raise RankingError("the length-controlled fit did not converge; report this data set as a bug")
    rating = to_elo(theta, cells.labels, coded.names, anchor, anchor_rating)[0]
    interval = bootstrap_interval(cells, theta, rounds, seed, ci, coded.names, anchor, anchor_rating, beta=beta,
                                  rescue=rescue_amount(prior))
    low, high, b_low, b_high = interval.low, interval.high, interval.beta_low, interval.beta_high
    rating, low, high = (blank_isolated(x, tally, both_bad) for x in (rating, low, high))
    coef = float(beta[0]) * ELO_PER_NAT
    if not diff.any():  # lengths never differ: beta is not identified (it stayed at 0)
        coef = b_low = b_high = math.nan
    return LengthControl(coded.names, rating, low, high, coef, b_low * ELO_PER_NAT, b_high * ELO_PER_NAT, std, len(bin_value))


def _length_feature(left_len: np.ndarray, right_len: np.ndarray) -> np.ndarray:
    """(left - right) / (left + right) in [-1, 1]; 0 when both are empty or missing."""
    left_len, right_len = np.nan_to_num(left_len), np.nan_to_num(right_len)
    total = left_len + right_len
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (left_len - right_len) / np.where(total > 0, total, 1), 0.0)


def _quantile_bins(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Bin index per value and each bin's mean; one bin per distinct value when there are few."""
    distinct = np.unique(values)
    if len(distinct) <= bins:
        return np.searchsorted(distinct, values), distinct
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(edges, values, side="right")
    size = np.bincount(index, minlength=len(edges) + 1)
    means = np.bincount(index, weights=values, minlength=len(edges) + 1) / np.maximum(size, 1)
    used = np.flatnonzero(size)
    remap = np.zeros(len(size), np.intp)
    remap[used] = np.arange(len(used))
    return remap[index], means[used]


def _length_cells(
    n: int,
    lo: np.ndarray,
    hi: np.ndarray,
    outcome: np.ndarray,
    bin_index: np.ndarray,
    bin_value: np.ndarray,
    tally: Tally,
    both_bad: BothBad,
    prior: float | None,
) -> Cells:
    """Groups (lo, hi, bin) with outcome cells lo wins / hi wins / tie; the prior in extra groups."""
    n_bins = len(bin_value)
    group_code = (lo * n + hi) * n_bins + bin_index
    groups, inverse = np.unique(group_code, return_inverse=True)
    outcome_counts = np.bincount(inverse * 3 + outcome, minlength=len(groups) * 3).reshape(-1, 3).astype(float)
    pair, bin_of = np.divmod(groups, n_bins)
    gi, gj = np.divmod(pair, n)
    games = tally.games(both_bad)
    virtual, _ = prior_per_pair(tally, both_bad, prior)
    pi, pj = np.nonzero(np.triu(virtual > 0, 1))  # several groups share a pair: the prior gets its own
    prior_n = np.r_[np.zeros(len(groups)), virtual[pi, pj]]
    gi, gj = np.r_[gi, pi], np.r_[gj, pj]
    z = np.r_[bin_value[bin_of], np.zeros(len(pi))]
    outcome_counts = np.vstack([outcome_counts, np.zeros((len(pi), 3))])
    return build_cells(n, gi, gj, z, outcome_counts, np.array([1.0, 0.0, 0.5]), prior_n / 2, prior_n, games)


