"""The shared fitting machinery: aggregated cells, batched Newton, Elo conversion, the bootstrap.

Model: logit P(i beats j in group g) = theta_i - theta_j (+ beta * z_g), fitted on grouped
counts (a[r, g] points for i out of n[r, g] battles) for R independent rounds at once (round 0
is the data, the others bootstrap redraws). Regularisation, when there is any, arrives as
virtual points in `prior_a`/`prior_n` per group (see `bradley_terry.regularised_pairs`).

Robustness: the weights n * p * (1 - p) are computed as n * expit(eta) * expit(-eta) (no
cancellation near p = 1). Whether a bootstrap round's MLE exists is decided from its own win
graph before it is fitted (`rescue_shares`), never from how far Newton's method wandered: a
round where a contestant never wins converges happily to -35 nats, which no threshold tells
apart from a real rating. A round whose ratings still run away or whose Newton system is
singular is marked failed and dropped, never fatal; only the remaining rounds keep iterating.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from playground.ranking.battles import ELO_PER_NAT, INIT_RATING, RankingError

NEWTON_TOL = 1e-10  # largest Newton step (natural log-odds) at convergence
NEWTON_MAX_ITER = 100
NEWTON_MAX_STEP = 4.0  # damping: no rating moves more than this many log-odds in one step
RUNAWAY = 40.0  # |theta| beyond this many log-odds (~7,000 Elo points): a last guard, not the test of existence
LINE_SEARCH_ABOVE = 1e-3  # steps (log-odds) larger than this are checked against the likelihood (`backtrack`)
CHUNK_ELEMENTS = 4_000_000  # bootstrap rounds are fitted in chunks of about this many cells


@dataclass(frozen=True)
class Cells:
    """Aggregated battles ready for fitting.

    Groups g are (i, j[, length bin]) with covariate z[g]; outcome cells c are (group, outcome)
    with observed counts. `score_of`/`games_of` map outcome-cell counts to group points for i and
    group battles (sparse C x G). `prior_a`/`prior_n` are added to every draw.
    """

    n_players: int
    gi: np.ndarray
    gj: np.ndarray
    z: np.ndarray | None
    counts: np.ndarray
    score_of: sparse.csr_matrix
    games_of: sparse.csr_matrix
    prior_a: np.ndarray
    prior_n: np.ndarray
    labels: np.ndarray  # component label of each contestant

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def groups_from(self, draws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(R, C) outcome counts -> (R, G) points for i and battles per group, prior included."""
        a = np.asarray((self.score_of.T @ draws.T).T) + self.prior_a
        n = np.asarray((self.games_of.T @ draws.T).T) + self.prior_n
        return a, n


def build_cells(
    n_players: int,
    gi: np.ndarray,
    gj: np.ndarray,
    z: np.ndarray | None,
    outcome_counts: np.ndarray,
    points_for_i: np.ndarray,
    prior_a: np.ndarray,
    prior_n: np.ndarray,
    games: np.ndarray,
) -> Cells:
    """Flatten (group, outcome) counts into cells, keep the non-empty ones, attach the prior."""
    n_outcomes = outcome_counts.shape[1]
    flat = outcome_counts.ravel()
    keep = np.flatnonzero(flat > 0)
    group, outcome = np.divmod(keep, n_outcomes)
    shape = (len(keep), len(gi))
    rows = np.arange(len(keep))
    score_of = sparse.csr_matrix((points_for_i[outcome], (rows, group)), shape=shape)
    score_of.eliminate_zeros()
    games_of = sparse.csr_matrix((np.ones(len(keep)), (rows, group)), shape=shape)
    _, labels = connected_components(sparse.csr_matrix(games > 0), directed=False)
    return Cells(n_players, gi, gj, z, flat[keep], score_of, games_of, np.asarray(prior_a, float),
                 np.asarray(prior_n, float), labels)


def fit_cells(
    cells: Cells, a: np.ndarray, n: np.ndarray, theta0: np.ndarray | None = None, beta0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Batched Newton on R independent grouped logistic likelihoods.

    The Hessian in theta is a weighted graph Laplacian, singular along each component's
    all-ones vector (ratings are only defined up to a shift per component): we solve with
    (H + s * P), P the projector on those vectors, which yields the minimum-norm step and keeps
    every component's mean theta at 0. Returns theta (R, n), beta (R,) or None, and a per-round
    ok flag (converged to finite ratings; False for rounds whose MLE does not exist).
    """
    rounds, players = a.shape[0], cells.n_players
    has_beta = cells.z is not None
    size = players + int(has_beta)
    incidence = incidence_matrix(cells.gi, cells.gj, players)
    laplace = laplacian_map(cells.gi, cells.gj, players)
    projector = component_projector(cells.labels)
    theta = np.zeros((rounds, players)) if theta0 is None else np.array(np.broadcast_to(theta0, (rounds, players)))
    beta = np.zeros(rounds) if beta0 is None else np.array(np.broadcast_to(beta0, (rounds,)), dtype=float)
    converged = np.zeros(rounds, dtype=bool)
    failed = np.zeros(rounds, dtype=bool)
    for _ in range(NEWTON_MAX_ITER):
        act = np.flatnonzero(~converged & ~failed)
        if not len(act):
            break
        th, aa, nn = theta[act], a[act], n[act]
        eta = th[:, cells.gi] - th[:, cells.gj]
        if has_beta:
            eta = eta + beta[act, None] * cells.z
        p = expit(eta)
        resid, weight = aa - nn * p, nn * p * expit(-eta)  # no 1 - p: it cancels to 0 near p = 1
        r = len(act)
        hess = np.zeros((r, size, size))
        grad = np.zeros((r, size))
        grad[:, :players] = np.asarray((incidence.T @ resid.T).T)
        lap = np.asarray((laplace.T @ weight.T).T).reshape(r, players, players)
        shift = np.maximum(np.trace(lap, axis1=1, axis2=2) / players, 1e-12)
        hess[:, :players, :players] = lap + shift[:, None, None] * projector
        if has_beta:
            wz = weight * cells.z
            grad[:, players] = resid @ cells.z
            cross = np.asarray((incidence.T @ wz.T).T)
            hess[:, :players, players] = cross
            hess[:, players, :players] = cross
            hess[:, players, players] = np.maximum(wz @ cells.z, 1e-12)
        step, singular = solve_each(hess, grad)
        largest = np.abs(step).max(1)
        step *= np.minimum(1.0, NEWTON_MAX_STEP / np.maximum(largest, 1e-300))[:, None]
        far = np.flatnonzero(largest > LINE_SEARCH_ABOVE)  # near the optimum a Newton step always climbs
        if len(far):
            step[far] *= backtrack(cells, th[far], beta[act][far] if has_beta else None, aa[far], nn[far],
                                   step[far])[:, None]
        theta[act] += step[:, :players]
        if has_beta:
            beta[act] += step[:, players]
        bad = singular | ~np.isfinite(theta[act]).all(1) | (np.abs(theta[act]).max(1) > RUNAWAY)
        failed[act] = bad
        converged[act] = ~bad & (largest < NEWTON_TOL)
    return theta, (beta if has_beta else None), converged & ~failed


def log_likelihood(cells: Cells, theta: np.ndarray, beta: np.ndarray | None, a: np.ndarray, n: np.ndarray
                   ) -> np.ndarray:
    """Per round: sum over groups of a log p + (n - a) log(1 - p), computed without cancellation."""
    eta = theta[:, cells.gi] - theta[:, cells.gj]
    if beta is not None:
        eta = eta + beta[:, None] * cells.z
    return (a * log_expit(eta) + (n - a) * log_expit(-eta)).sum(1)


def backtrack(cells: Cells, theta: np.ndarray, beta: np.ndarray | None, a: np.ndarray, n: np.ndarray,
              step: np.ndarray, halvings: int = 30) -> np.ndarray:
    """Per round, the factor (1, 1/2, 1/4...) that keeps a Newton step from lowering the likelihood.

    A full (or clipped) Newton step can overshoot and cycle between two points forever on a
    resample far from the full fit's ratings (seen on sparse boards); halving until the
    likelihood does not fall is enough for a concave likelihood to converge.
    """
    players = cells.n_players
    now = log_likelihood(cells, theta, beta, a, n)
    scale = np.ones(len(theta))
    for _ in range(halvings):
        th = theta + scale[:, None] * step[:, :players]
        b = None if beta is None else beta + scale * step[:, players]
        worse = log_likelihood(cells, th, b, a, n) < now - 1e-9 * (1.0 + np.abs(now))
        if not worse.any():
            break
        scale[worse] /= 2
    return scale


def solve_each(hess: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched solve; when one system is singular, solve one by one and flag the singular ones."""
    singular = np.zeros(len(hess), dtype=bool)
    try:
        return np.linalg.solve(hess, grad[..., None])[..., 0], singular
    except np.linalg.LinAlgError:
        step = np.zeros_like(grad)
        for k in range(len(hess)):
            try:
                step[k] = np.linalg.solve(hess[k], grad[k])
            except np.linalg.LinAlgError:
                singular[k] = True
        return step, singular


def incidence_matrix(gi: np.ndarray, gj: np.ndarray, players: int) -> sparse.csr_matrix:
    """G x n matrix with +1 at (g, i) and -1 at (g, j): maps group residuals to rating gradients."""
    rows = np.arange(len(gi))
    data = np.r_[np.ones(len(gi)), -np.ones(len(gj))]
    return sparse.csr_matrix((data, (np.r_[rows, rows], np.r_[gi, gj])), shape=(len(gi), players))


def laplacian_map(gi: np.ndarray, gj: np.ndarray, players: int) -> sparse.csr_matrix:
    """G x n^2 matrix turning group weights into the flattened weighted Laplacian (the Hessian)."""
    rows = np.arange(len(gi))
    cols = np.r_[gi * players + gi, gj * players + gj, gi * players + gj, gj * players + gi]
    data = np.r_[np.ones(2 * len(gi)), -np.ones(2 * len(gi))]
    return sparse.csr_matrix((data, (np.tile(rows, 4), cols)), shape=(len(gi), players * players))


def component_projector(labels: np.ndarray) -> np.ndarray:
    """Sum over components c of 1_c 1_c^T / |c|."""
    same = labels[:, None] == labels[None, :]
    return same / np.bincount(labels)[labels][:, None]


def to_elo(theta: np.ndarray, labels: np.ndarray, names: tuple[str, ...], anchor: str | None,
           anchor_rating: float) -> np.ndarray:
    """Natural log-odds -> Elo scale; each component's mean at 1000, or the anchor at anchor_rating."""
    theta = theta.copy()
    for comp in np.unique(labels):
        members = labels == comp
        theta[:, members] -= theta[:, members].mean(1, keepdims=True)
    rating = INIT_RATING + ELO_PER_NAT * theta
    if anchor is not None:
        if anchor not in names:
            raise RankingError(f"anchor {anchor!r} is not a contestant; choose one of {', '.join(names)}")
        k = names.index(anchor)
        members = labels == labels[k]
        rating[:, members] += (anchor_rating - rating[:, k])[:, None]
    return rating


@dataclass(frozen=True)
class Interval:
    """A bootstrap's percentile interval; `failed` rounds could not be fitted and were left out."""

    low: np.ndarray
    high: np.ndarray
    failed: int
    beta_low: float = float("nan")
    beta_high: float = float("nan")
    rescued: int = 0


def bootstrap_interval(
    cells: Cells,
    theta: np.ndarray,
    rounds: int,
    seed: int | None,
    ci: float,
    names: tuple[str, ...],
    anchor: str | None,
    anchor_rating: float,
    beta: np.ndarray | None = None,
    rescue: float | None = None,
) -> Interval:
    """Percentile interval of refits on multinomial redraws of the outcome cells (chunked batches).

    A round whose MLE does not exist (its win graph is not strongly connected: `rescue_shares`)
    is fitted with `rescue` virtual ties on the pairs that cause it (counted in `rescued`; pass
    None to drop such rounds instead). Rounds that cannot be fitted are counted in `failed` and
    left out; when every round fails the interval is NaN (the caller warns), never an exception.
    Without an anchor each round is aligned to the full fit by `align_to_fit`.
    """
    full = to_elo(theta, cells.labels, names, anchor, anchor_rating)[0]
    b0 = float(beta[0]) if beta is not None else float("nan")
    if rounds <= 0:
        return Interval(full, full.copy(), 0, b0, b0)
    rng = np.random.default_rng(seed)
    total, p = cells.total, cells.counts / cells.counts.sum()
    chunk = max(1, CHUNK_ELEMENTS // max(len(cells.counts), cells.n_players**2))
    weight = np.asarray(cells.games_of.T @ cells.counts).ravel()
    weight = np.bincount(cells.gi, weight, cells.n_players) + np.bincount(cells.gj, weight, cells.n_players)
    samples, betas, failed, rescued = [], [], 0, 0
    for start in range(0, rounds, chunk):
        draws = rng.multinomial(total, p, size=min(chunk, rounds - start)).astype(np.float64)
        a, n = cells.groups_from(draws)
        # Whether a resample has a finite MLE is read off its own win graph, before fitting it.
        share = rescue_shares(cells.gi, cells.gj, cells.n_players, a, n - a)
        infinite = share.any(1)
        if rescue is not None:
            a, n = a + share * (rescue / 2), n + share * rescue
            rescued += int(infinite.sum())
        t, b, ok = fit_cells(cells, a, n, theta0=theta, beta0=beta)
        if rescue is None:
            ok &= ~infinite  # however far Newton got, these ratings are infinite
        sample = to_elo(np.where(ok[:, None], t, 0.0), cells.labels, names, anchor, anchor_rating)
        if anchor is None:
            sample = align_to_fit(sample, full, cells.labels, weight)
        sample[~ok] = np.nan
        failed += int((~ok).sum())
        samples.append(sample)
        if b is not None:
            betas.append(np.where(ok, b, np.nan))
    if failed == rounds:
        nan = np.full(len(full), np.nan)
        return Interval(nan, nan.copy(), failed, rescued=rescued)
    tail = 100 * (1 - ci) / 2
    low, high = np.nanpercentile(np.concatenate(samples), [tail, 100 - tail], axis=0)
    if beta is None:
        return Interval(low, high, failed, rescued=rescued)
    b_low, b_high = np.nanpercentile(np.concatenate(betas), [tail, 100 - tail])
    return Interval(low, high, failed, float(b_low), float(b_high), rescued)


def align_to_fit(sample: np.ndarray, full: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shift each round, per component, so that its battle-weighted mean change from the full fit is 0.

    Ratings are defined up to a shift; centring every round on its plain mean makes each
    contestant's interval carry 1/n of every other contestant's swing, and a contestant with 15
    battles swings by hundreds of points between resamples. Weighting the alignment by battles
    played lets the well-measured contestants fix the scale (with equal battle counts it is the
    plain mean, as before).
    """
    aligned = sample.copy()
    for comp in np.unique(labels):
        members = labels == comp
        w = weight[members] / max(weight[members].sum(), 1e-300)
        aligned[:, members] -= ((sample[:, members] - full[members]) @ w)[:, None]
    return aligned


def groups_across_parts(gi: np.ndarray, gj: np.ndarray, players: int, for_i: np.ndarray, for_j: np.ndarray
                        ) -> np.ndarray:
    """(R, G) bool: the groups whose two contestants lie in different strongly connected parts of their
    round's "scored a point against" graph (all rounds as one block-diagonal graph, one call)."""
    rounds = for_i.shape[0]
    offset = (np.arange(rounds) * players)[:, None]
    src, dst = gi + offset, gj + offset
    forward, backward = for_i > 1e-12, for_j > 1e-12
    rows = np.r_[src[forward], dst[backward]]
    cols = np.r_[dst[forward], src[backward]]
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(rounds * players,) * 2)
    _, strong = connected_components(graph, directed=True, connection="strong")
    return strong[src] != strong[dst]


def rescue_shares(gi: np.ndarray, gj: np.ndarray, players: int, for_i: np.ndarray, for_j: np.ndarray) -> np.ndarray:
    """Per round and group, the share of one contestant's rescue ties its pair gets (0 where none is needed).

    Groups are pairs that met in the full data; `for_i`/`for_j` (R, G) are the points i and j
    scored against each other in each round. A round's MLE is finite and unique iff its "scored
    a point against" graph is strongly connected within every set of contestants that met in the
    full data (Zermelo/Ford): the groups whose pair lies across two strongly connected parts are
    exactly those that need virtual ties (the rule `bradley_terry.regularised_pairs` applies to
    the full data; a pair the resample never drew counts too, or a contestant drawn into no
    battle would leave its rating undefined). All rounds are one block-diagonal graph, so one
    `connected_components` call tests them all. A pair's share is 1 / (the larger number of
    one-sided pairs of its two contestants in that round).
    """
    rounds, groups = for_i.shape
    cross = groups_across_parts(gi, gj, players, for_i, for_j)
    if not cross.any():
        return np.zeros((rounds, groups))
    pair_id, pair_of = np.unique(gi * players + gj, return_inverse=True)  # several groups may share a pair
    group_pair = sparse.csr_matrix((np.ones(groups), (np.arange(groups), pair_of)), shape=(groups, len(pair_id)))
    pair_cross = np.asarray((group_pair.T @ cross.T.astype(float)).T) > 0
    pi, pj = np.divmod(pair_id, players)
    ends = sparse.csr_matrix((np.ones(2 * len(pair_id)), (np.tile(np.arange(len(pair_id)), 2), np.r_[pi, pj])),
                             shape=(len(pair_id), players))
    degree = np.asarray((ends.T @ pair_cross.T.astype(float)).T)
    share = 1.0 / np.maximum(np.maximum(degree[:, gi], degree[:, gj]), 1.0)
    return np.where(cross, share, 0.0)
