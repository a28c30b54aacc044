"""Bradley-Terry ratings with bootstrap CIs, and the rule that decides where regularisation goes.

Default (`prior=None`): the plain maximum-likelihood fit, as Chatbot Arena computes it. Where
that MLE does not exist (a contestant or a group never won, or never lost, against the others
it met) only the pairs that cause it get virtual tied battles (`RESCUE_TIES` per affected
contestant in all, shared among those pairs), and those
contestants are named (`BTRatings.regularised`) so the reader is warned. A uniform prior on
every pair that met (`prior > 0`, the old default) pulls every rating towards the mean: on
Arena-like data it moved the weakest contestant by +104 points on average (docs/benchmarks.md).
`prior=0` is the strict MLE and raises when it does not exist.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from playground.ranking.battles import (INIT_RATING, Battles, BothBad, RankingError, Tally, _check_both_bad,
                                        _require_battles, comparison_groups, tally_battles)
from playground.ranking.fitting import Cells, bootstrap_interval, build_cells, fit_cells, to_elo

DEFAULT_PRIOR: float | None = None  # plain MLE, regularised only where it does not exist
RESCUE_TIES = 0.5  # virtual tied battles per contestant without a finite MLE (spread over its one-sided pairs)


@dataclass(frozen=True)
class BTRatings:
    """Bradley-Terry ratings (Elo scale) with bootstrap percentile intervals, aligned with `names`.

    `rating` is the fit on all battles; `ci_low`/`ci_high` are percentiles of the bootstrap
    refits (equal to `rating` when rounds=0); NaN for a contestant without counted battles.
    `regularised` names the contestants whose rating needed virtual ties (no finite MLE);
    `rescued_rounds` counts bootstrap rounds without a finite MLE that got the same minimal
    regularisation; `failed_rounds` those that could not be fitted at all and were left out.
    The tie model's fields (`tie_model`, `nu`...) are set by `ties.fit_davidson`.
    """

    names: tuple[str, ...]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rounds: int
    groups: tuple[tuple[str, ...], ...]
    prior: float | None
    both_bad: str
    failed_rounds: int = 0
    regularised: tuple[str, ...] = ()
    rescued_rounds: int = 0
    tie_model: str = "half"
    nu: float | None = None
    nu_ci: tuple[float, float] | None = None

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.rating.tolist(), strict=True))


def regularised_pairs(tally: Tally, both_bad: BothBad) -> tuple[np.ndarray, tuple[str, ...]]:
    """Pairs that need virtual ties for a finite MLE, as a boolean matrix, and who is affected.

    The MLE exists iff, within every group that met, each contestant can reach every other along
    "scored a point against" edges (Zermelo/Ford). Pairs that met but lie in different strongly
    connected parts of that graph are exactly the one-sided results that push ratings to
    infinity; a virtual tie on each of them reconnects the graph and touches nothing else.
    Named: contestants that never won or never lost, or, when a whole group did, its members
    outside the largest strongly connected part.
    """
    games = tally.games(both_bad)
    scored = sparse.csr_matrix(tally.scores(both_bad) > 0)
    _, strong = connected_components(scored, directed=True, connection="strong")
    met = np.triu(games > 0, 1)
    need = met & (strong[:, None] != strong[None, :])
    if not need.any():
        return need, ()
    points, played = tally.scores(both_bad).sum(1), games.sum(1)
    stuck = [k for k in range(len(tally.names)) if played[k] > 0 and points[k] in (0, played[k])]
    if not stuck:
        involved = np.flatnonzero((need | need.T).any(1))
        sizes = np.bincount(strong)
        biggest = max(involved, key=lambda k: sizes[strong[k]])
        stuck = [k for k in involved if strong[k] != strong[biggest]]
    return need, tuple(tally.names[k] for k in stuck)


def spread_rescue(need: np.ndarray) -> np.ndarray:
    """RESCUE_TIES virtual tied battles per affected contestant, shared among its one-sided pairs.

    A contestant that never won against 20 opponents gets 0.5 / 20 virtual ties per pair, i.e.
    half a virtual battle in all (a quarter of a win): just enough for a finite rating.
    """
    degree = need.sum(1).astype(float)
    worst = np.maximum(degree[:, None], degree[None, :])
    return np.where(need, RESCUE_TIES / np.maximum(worst, 1.0), 0.0)


def prior_per_pair(tally: Tally, both_bad: BothBad, prior: float | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Virtual tied battles per pair (symmetric matrix) under the prior rule, and who got them."""
    games = tally.games(both_bad)
    if prior is None:
        need, named = regularised_pairs(tally, both_bad)
        return spread_rescue(need | need.T), named
    if prior < 0:
        raise RankingError(f"prior must be >= 0 (or None for the plain MLE), got {prior}")
    if prior == 0:
        _require_finite_mle(tally, both_bad)
    return prior * (games > 0), ()


def fit_bradley_terry(
    battles: Battles,
    *,
    both_bad: BothBad = "tie",
    prior: float | None = DEFAULT_PRIOR,
    rounds: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    anchor: str | None = None,
    anchor_rating: float = INIT_RATING,
) -> BTRatings:
    """Bradley-Terry MLE on the Elo scale with bootstrap CIs, fitted on aggregated counts.

    Fit: Newton's method on the pair-aggregated log-likelihood (O(contestants^2) a step, quadratic
    convergence). Bootstrap: each round draws the (pair, outcome) counts from a multinomial with
    the observed proportions and the observed number of battles (the same distribution as
    resampling battles with replacement, without touching a million rows), then refits from the
    full fit; all rounds are fitted together as a batch of small linear systems.
    """
    _check_both_bad(both_bad)
    coded = _require_battles(battles)
    tally = tally_battles(battles)
    virtual, named = prior_per_pair(tally, both_bad, prior)
    cells = pair_cells(tally, both_bad, virtual)
    if cells.total == 0:
        raise RankingError("no battles left to rank: every battle was both_bad and both_bad='exclude'")
    theta, _, ok = fit_cells(cells, *cells.groups_from(cells.counts[None, :]))
    if not ok[0]:
        raise RankingError("the Bradley-Terry fit did not converge; report this data set as a bug")
    rating = to_elo(theta, cells.labels, coded.names, anchor, anchor_rating)[0]
    interval = bootstrap_interval(cells, theta, rounds, seed, ci, coded.names, anchor, anchor_rating,
                                  rescue=rescue_amount(prior))
    rating, low, high = (blank_isolated(x, tally, both_bad) for x in (rating, interval.low, interval.high))
    groups = tuple(comparison_groups(tally, both_bad))
    return BTRatings(coded.names, rating, low, high, rounds, groups, prior, both_bad, interval.failed, named,
                     rescued_rounds=interval.rescued)


def rescue_amount(prior: float | None) -> float | None:
    """Virtual ties for a bootstrap round without a finite MLE: the default rule's, else none (dropped)."""
    return RESCUE_TIES if prior is None else None


def pair_cells(tally: Tally, both_bad: BothBad, virtual: np.ndarray) -> Cells:
    """One group per unordered pair that met; outcome cells: i wins, j wins, tie (incl. both_bad)."""
    games = tally.games(both_bad)
    gi, gj = np.nonzero(np.triu(games > 0, 1))
    draws = tally.ties + tally.both_bad if both_bad == "tie" else tally.ties
    outcome_counts = np.stack([tally.wins[gi, gj], tally.wins[gj, gi], draws[gi, gj]], axis=1)
    prior_n = virtual[gi, gj]
    return build_cells(len(tally.names), gi, gj, None, outcome_counts, np.array([1.0, 0.0, 0.5]),
                       prior_n / 2, prior_n, games)


def blank_isolated(values: np.ndarray, tally: Tally, both_bad: BothBad) -> np.ndarray:
    """NaN for contestants with no counted battle (e.g. only both_bad battles, excluded)."""
    values = np.array(values, dtype=np.float64)
    values[tally.games(both_bad).sum(1) == 0] = np.nan
    return values


def _require_finite_mle(tally: Tally, both_bad: BothBad) -> None:
    """Without any regularisation the MLE must exist; say who prevents it."""
    need, named = regularised_pairs(tally, both_bad)
    if need.any():
        raise RankingError(
            "with prior=0 the Bradley-Terry ratings are infinite (a contestant or group never won or never "
            f"lost against the rest): {', '.join(named[:6])}; use the default (prior=None) or prior > 0"
        )
