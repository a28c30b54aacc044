"""Ties modelled, not halved: Davidson's (1970) extension of Bradley-Terry.

    P(i beats j) = pi_i / D,  P(j beats i) = pi_j / D,  P(tie) = nu * sqrt(pi_i * pi_j) / D

with D the sum of the three. With theta = log pi and d = theta_i - theta_j, the three outcomes
are a softmax over (d/2, -d/2, log nu): among decisive battles P(i beats j) = expit(d), so the
ratings sit on the same Elo scale as the plain fit, and `nu` says how tie-prone the voters are
(between equal contestants P(tie) = nu / (2 + nu)). Tie-as-half-win, the default, treats a tie as
half a win each way; it gives the same ranking when ties are rare and independent of the gap,
and shrinks the spread of ratings when ties are common (half-wins pull every pair towards 0.5).
`bench/bench_priors.py` compares both on synthetic data with known tie rates.

Fitted like the plain model: batched Newton on pair-aggregated counts (theta and log nu
together; the Hessian is the Fisher information of a three-outcome multinomial logit) with the
same multinomial bootstrap; failed rounds are counted, not fatal.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import softmax

from playground.ranking.battles import (INIT_RATING, Battles, BothBad, RankingError, _check_both_bad,
                                        _require_battles, comparison_groups, tally_battles)
from playground.ranking.bradley_terry import (DEFAULT_PRIOR, RESCUE_TIES, BTRatings, blank_isolated,
                                              prior_per_pair)
from playground.ranking.fitting import (NEWTON_MAX_ITER, NEWTON_MAX_STEP, NEWTON_TOL, RUNAWAY, align_to_fit,
                                        component_projector, incidence_matrix, laplacian_map, rescue_shares,
                                        solve_each, to_elo)


def tie_probability_at_equal_strength(nu: float) -> float:
    """P(tie) between two contestants of equal strength under Davidson's model."""
    return nu / (2.0 + nu) if math.isfinite(nu) else math.nan


def fit_davidson(
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
    """Davidson tie-model ratings (Elo scale) with bootstrap CIs and the fitted tie parameter `nu`.

    Regularisation follows the same rule as `fit_bradley_terry` (virtual ties only on pairs whose
    results make the MLE infinite). Without any tie (or both_bad counted as one) nu's MLE is 0:
    the ratings are then the plain fit on decisive battles and nu is reported as 0.
    """
    _check_both_bad(both_bad)
    coded = _require_battles(battles)
    tally = tally_battles(battles)
    virtual, named = prior_per_pair(tally, both_bad, prior)
    games = tally.games(both_bad)
    gi, gj = np.nonzero(np.triu(games > 0, 1))
    if not len(gi):
        raise RankingError("no battles left to rank: every battle was both_bad and both_bad='exclude'")
    draws = tally.ties + tally.both_bad if both_bad == "tie" else tally.ties
    counts = np.stack([tally.wins[gi, gj], tally.wins[gj, gi], draws[gi, gj]], axis=1)  # (G, 3)
    extra = np.zeros_like(counts)
    extra[:, 2] = virtual[gi, gj]
    _, labels = connected_components(sparse.csr_matrix(games > 0), directed=False)
    model = _Davidson(len(coded.names), gi, gj, labels, extra)
    theta, lam, ok = model.fit(counts[None])
    if not ok[0]:
        raise RankingError("the Davidson tie-model fit did not converge; report this data set as a bug")
    rating = to_elo(theta, labels, coded.names, anchor, anchor_rating)[0]
    low, high, failed, rescued = rating.copy(), rating.copy(), 0, 0
    nu = math.exp(lam[0])
    nu_ci = (nu, nu)
    if rounds > 0:
        flat = counts.ravel()
        rng = np.random.default_rng(seed)
        draws_ = rng.multinomial(int(flat.sum()), flat / flat.sum(), size=rounds).astype(float).reshape(rounds, *counts.shape)
        # The plain fit's per-resample rule: virtual ties where its MLE is infinite (or, with a prior, left out).
        seen = draws_ + extra
        share = rescue_shares(gi, gj, len(coded.names), seen[..., 0] + seen[..., 2] / 2,
                              seen[..., 1] + seen[..., 2] / 2)
        infinite = share.any(1)
        if prior is None:
            draws_[..., 2] += share * RESCUE_TIES
            rescued = int(infinite.sum())
        t, lam_r, ok_r = model.fit(draws_, theta0=theta[0], lam0=lam[0])
        if prior is not None:
            ok_r &= ~infinite
        failed = int((~ok_r).sum())
        if failed < rounds:
            sample = to_elo(np.where(ok_r[:, None], t, 0.0), labels, coded.names, anchor, anchor_rating)
            if anchor is None:
                sample = align_to_fit(sample, rating, labels, games.sum(1))
            sample = sample[ok_r]
            tail = 100 * (1 - ci) / 2
            low, high = np.percentile(sample, [tail, 100 - tail], axis=0)
            nu_low, nu_high = np.percentile(np.exp(lam_r[ok_r]), [tail, 100 - tail])
            nu_ci = (float(nu_low), float(nu_high))
        else:
            low = high = np.full(len(rating), np.nan)
            nu_ci = (math.nan, math.nan)
    rating, low, high = (blank_isolated(x, tally, both_bad) for x in (rating, low, high))
    return BTRatings(coded.names, rating, low, high, rounds, tuple(comparison_groups(tally, both_bad)), prior,
                     both_bad, failed, named, rescued, tie_model="davidson", nu=nu, nu_ci=nu_ci)


class _Davidson:
    """Batched Newton for (theta, lambda = log nu) on (R, G, 3) counts: i wins, j wins, tie."""

    LAMBDA_FLOOR = -30.0  # nu below e^-30: no ties at all, the MLE of nu is 0

    def __init__(self, players: int, gi: np.ndarray, gj: np.ndarray, labels: np.ndarray, extra: np.ndarray):
        self.players, self.gi, self.gj, self.extra = players, gi, gj, extra
        self.incidence = incidence_matrix(gi, gj, players)
        self.laplace = laplacian_map(gi, gj, players)
        self.projector = component_projector(labels)

    def fit(self, counts: np.ndarray, theta0: np.ndarray | None = None, lam0: float | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        counts = counts + self.extra
        rounds, players = counts.shape[0], self.players
        a, b, t = counts[..., 0], counts[..., 1], counts[..., 2]
        n = a + b + t
        no_ties = t.sum(1) == 0
        theta = np.zeros((rounds, players)) if theta0 is None else np.tile(theta0, (rounds, 1))
        start = np.log(np.maximum(t.sum(1), 0.5) / np.maximum((a + b).sum(1), 1.0) * 2)
        lam = start if lam0 is None else np.full(rounds, lam0 if math.isfinite(lam0) else 0.0)
        lam = np.where(no_ties, self.LAMBDA_FLOOR, lam)
        converged, failed = np.zeros(rounds, bool), np.zeros(rounds, bool)
        for _ in range(NEWTON_MAX_ITER):
            act = np.flatnonzero(~converged & ~failed)
            if not len(act):
                break
            th, la = theta[act], lam[act]
            d = th[:, self.gi] - th[:, self.gj]
            probs = softmax(np.stack([d / 2, -d / 2, np.broadcast_to(la[:, None], d.shape)], -1), axis=-1)
            pw, pl, pt = probs[..., 0], probs[..., 1], probs[..., 2]
            nn, aa, bb, tt = n[act], a[act], b[act], t[act]
            g_d = (aa - bb) / 2 - nn * (pw - pl) / 2
            g_l = (tt - nn * pt).sum(1)
            v_d = nn * ((pw + pl) / 4 - (pw - pl) ** 2 / 4)
            c_dl = nn * (-(pw - pl) / 2 * pt)
            v_l = (nn * pt * (1 - pt)).sum(1)
            r = len(act)
            size = players + 1
            hess = np.zeros((r, size, size))
            grad = np.zeros((r, size))
            grad[:, :players] = np.asarray((self.incidence.T @ g_d.T).T)
            grad[:, players] = g_l
            lap = np.asarray((self.laplace.T @ v_d.T).T).reshape(r, players, players)
            shift = np.maximum(np.trace(lap, axis1=1, axis2=2) / players, 1e-12)
            hess[:, :players, :players] = lap + shift[:, None, None] * self.projector
            cross = np.asarray((self.incidence.T @ c_dl.T).T)
            hess[:, :players, players] = cross
            hess[:, players, :players] = cross
            hess[:, players, players] = np.maximum(v_l, 1e-12)
            frozen = no_ties[act]  # nu stays at 0: fit theta alone
            hess[frozen, players, :] = 0.0
            hess[frozen, :, players] = 0.0
            hess[frozen, players, players] = 1.0
            grad[frozen, players] = 0.0
            step, singular = solve_each(hess, grad)
            largest = np.abs(step).max(1)
            step *= np.minimum(1.0, NEWTON_MAX_STEP / np.maximum(largest, 1e-300))[:, None]
            theta[act] += step[:, :players]
            lam[act] += step[:, players]
            bad = (singular | ~np.isfinite(theta[act]).all(1) | (np.abs(theta[act]).max(1) > RUNAWAY)
                   | (lam[act] < self.LAMBDA_FLOOR - 1) & ~frozen)
            failed[act] = bad
            converged[act] = ~bad & (largest < NEWTON_TOL)
        lam = np.where(no_ties, -np.inf, lam)
        return theta, lam, converged & ~failed
