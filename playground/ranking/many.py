"""Bradley-Terry for many contestants: the plain fit and its bootstrap in memory and time linear in the
pairs that met, never contestants x contestants.

The dense path (`bradley_terry`, `fitting`) builds n x n tables and solves an n x n system per Newton
step and bootstrap round: right for tens of models, 800 MB a table and an n^3 solve at 10,000. Here
every quantity is per pair that met: counts from one `np.unique` over pair codes (`PairTally`), the
MLE-existence rule from one sparse strongly-connected-components pass, and Newton's method whose
step is solved by Jacobi-preconditioned conjugate gradients: the Hessian is a weighted graph
Laplacian, applied without forming it (two sparse products over the pairs), batched over bootstrap
rounds. The pairs are in the dense path's order, and the draws, the rescue rule and the alignment are
the dense path's, so on the same data both give the same ratings and intervals (tests compare them).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from playground.backends.free_cores import FreeCores
from playground.devices import cpu_cores
from playground.ranking.battles import (BOTH_BAD, ELO_PER_NAT, INIT_RATING, LEFT, RIGHT, TIE, Battles, BothBad,
                                        ContestantTotals, RankingError, _check_both_bad, _require_battles)
from playground.ranking.bradley_terry import RESCUE_TIES, BTRatings, rescue_amount
from playground.ranking.fitting import (LINE_SEARCH_ABOVE, NEWTON_MAX_ITER, NEWTON_MAX_STEP, NEWTON_TOL, RUNAWAY,
                                        Cells, groups_across_parts, incidence_matrix)

CG_RTOL = 1e-9  # conjugate gradients stop when the residual is this share of the gradient
BOOT_TOL, BOOT_RTOL = 1e-4, 0.1  # a bootstrap round: Newton until no rating moves 1e-4 log-odds (0.007 Elo points)
CG_MAX_ITER = 500
CHUNK_ELEMENTS = 6_000_000  # bootstrap rounds x pairs fitted at once


@dataclass(frozen=True)
class PairTally:
    """Battle counts per unordered pair that met (i < j, sorted by i then j, as the dense path orders them)."""

    names: tuple[str, ...]
    pi: np.ndarray
    pj: np.ndarray
    wins_i: np.ndarray
    wins_j: np.ndarray
    ties: np.ndarray
    both_bad: np.ndarray

    @property
    def n(self) -> int:
        return len(self.names)

    def draws(self, both_bad: BothBad) -> np.ndarray:
        return self.ties + self.both_bad if both_bad == "tie" else self.ties

    def games(self, both_bad: BothBad) -> np.ndarray:
        """Battles per pair that count in the fit."""
        return self.wins_i + self.wins_j + self.draws(both_bad)

    def per_contestant(self, values_i: np.ndarray, values_j: np.ndarray) -> np.ndarray:
        """Sum a per-pair quantity over each contestant's pairs (i's share, j's share)."""
        return np.bincount(self.pi, values_i, self.n) + np.bincount(self.pj, values_j, self.n)

    def games_per(self, both_bad: BothBad) -> np.ndarray:
        games = self.games(both_bad)
        return self.per_contestant(games, games)

    def scores_per(self, both_bad: BothBad) -> np.ndarray:
        half = 0.5 * self.draws(both_bad)
        return self.per_contestant(self.wins_i + half, self.wins_j + half)

    def totals(self) -> ContestantTotals:
        """The dense `contestant_totals` from the pairs: battles, wins, losses, ties (both_bad incl.), both_bad."""
        wins = self.per_contestant(self.wins_i, self.wins_j)
        losses = self.per_contestant(self.wins_j, self.wins_i)
        both_bad = self.per_contestant(self.both_bad, self.both_bad)
        ties = self.per_contestant(self.ties, self.ties) + both_bad
        return ContestantTotals(wins + losses + ties, wins, losses, ties, both_bad)

    def labels(self, both_bad: BothBad) -> np.ndarray:
        """Connected component of each contestant in the 'met in a counted battle' graph."""
        met = self.games(both_bad) > 0
        graph = sparse.csr_matrix((np.ones(int(met.sum())), (self.pi[met], self.pj[met])), shape=(self.n,) * 2)
        return connected_components(graph, directed=False)[1]

    def groups(self, both_bad: BothBad) -> tuple[tuple[str, ...], ...]:
        """The dense `comparison_groups`: components, largest first, each in name order."""
        labels = self.labels(both_bad)
        order = np.argsort(labels, kind="stable")
        cuts = np.flatnonzero(np.diff(labels[order])) + 1
        groups = [tuple(self.names[k] for k in part) for part in np.split(order, cuts)] if self.n else []
        return tuple(sorted(groups, key=lambda group: (-len(group), group)))

    def matrices(self, rows: np.ndarray, both_bad: BothBad) -> tuple[np.ndarray, np.ndarray]:
        """The dense `win_rate_matrix` (observed score of row vs column, ties half, NaN where they never met)
        and `battle_count_matrix` (battles of every outcome), for the given contestants only."""
        where = np.full(self.n, -1, np.intp)
        where[rows] = np.arange(len(rows))
        a, b = where[self.pi], where[self.pj]
        keep = (a >= 0) & (b >= 0)
        a, b = a[keep], b[keep]
        half = 0.5 * self.draws(both_bad)[keep]
        score, games, counts = np.zeros((3, len(rows), len(rows)))
        counts[a, b] = counts[b, a] = (self.wins_i + self.wins_j + self.ties + self.both_bad)[keep]
        games[a, b] = games[b, a] = self.games(both_bad)[keep]
        score[a, b], score[b, a] = self.wins_i[keep] + half, self.wins_j[keep] + half
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = score / games
        rate[games == 0] = np.nan
        return rate, counts


def pair_tally(battles: Battles) -> PairTally:
    """Aggregate battles per unordered pair with one `np.unique` over int64 pair codes (self-battles left out)."""
    coded = _require_battles(battles)
    n = len(coded.names)
    left, right, winner = coded.left, coded.right, coded.winner
    keep = left != right
    left, right, winner = left[keep], right[keep], winner[keep]
    flip = left > right
    lo, hi = np.where(flip, right, left).astype(np.int64), np.where(flip, left, right).astype(np.int64)
    outcome = np.where(winner == LEFT, np.where(flip, 1, 0), np.where(winner == RIGHT, np.where(flip, 0, 1), winner))
    pairs, inverse = np.unique(lo * n + hi, return_inverse=True)
    table = np.bincount(inverse.ravel() * 4 + outcome, minlength=4 * len(pairs)).reshape(-1, 4).astype(np.float64)
    pi, pj = np.divmod(pairs, n)
    return PairTally(coded.names, pi.astype(np.intp), pj.astype(np.intp), table[:, LEFT], table[:, RIGHT],
                     table[:, TIE], table[:, BOTH_BAD])


def regularised_pairs_sparse(pairs: PairTally, both_bad: BothBad) -> tuple[np.ndarray, tuple[str, ...]]:
    """The dense `regularised_pairs` rule per pair: which met pairs need virtual ties, and who is named."""
    games, draws = pairs.games(both_bad), pairs.draws(both_bad)
    forward, backward = pairs.wins_i + 0.5 * draws > 0, pairs.wins_j + 0.5 * draws > 0
    rows = np.r_[pairs.pi[forward], pairs.pj[backward]]
    cols = np.r_[pairs.pj[forward], pairs.pi[backward]]
    scored = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(pairs.n,) * 2)
    _, strong = connected_components(scored, directed=True, connection="strong")
    need = (games > 0) & (strong[pairs.pi] != strong[pairs.pj])
    if not need.any():
        return need, ()
    points, played = pairs.scores_per(both_bad), pairs.games_per(both_bad)
    stuck = np.flatnonzero((played > 0) & ((points == 0) | (points == played)))
    if not len(stuck):
        involved = np.flatnonzero(pairs.per_contestant(need.astype(float), need.astype(float)) > 0)
        sizes = np.bincount(strong)
        biggest = involved[int(np.argmax(sizes[strong[involved]]))]
        stuck = involved[strong[involved] != strong[biggest]]
    return need, tuple(pairs.names[k] for k in stuck)


def virtual_ties(pairs: PairTally, both_bad: BothBad, prior: float | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Virtual tied battles per pair under the prior rule (the dense `prior_per_pair`), and who got them."""
    games = pairs.games(both_bad)
    if prior is None:
        need, named = regularised_pairs_sparse(pairs, both_bad)
        degree = pairs.per_contestant(need.astype(float), need.astype(float))
        worst = np.maximum(degree[pairs.pi], degree[pairs.pj])
        return np.where(need, RESCUE_TIES / np.maximum(worst, 1.0), 0.0), named
    if prior < 0:
        raise RankingError(f"prior must be >= 0 (or None for the plain MLE), got {prior}")
    if prior == 0:
        need, named = regularised_pairs_sparse(pairs, both_bad)
        if need.any():
            raise RankingError(
                "with prior=0 the Bradley-Terry ratings are infinite (a contestant or group never won or never "
                f"lost against the rest): {', '.join(named[:6])}; use the default (prior=None) or prior > 0")
    return prior * (games > 0), ()


def sparse_cells(pairs: PairTally, both_bad: BothBad, virtual: np.ndarray) -> Cells:
    """The dense `pair_cells` from the pairs: one group per pair that met; cells i wins, j wins, tie."""
    met = pairs.games(both_bad) > 0
    gi, gj = pairs.pi[met], pairs.pj[met]
    outcome = np.stack([pairs.wins_i[met], pairs.wins_j[met], pairs.draws(both_bad)[met]], axis=1)
    flat = outcome.ravel()
    keep = np.flatnonzero(flat > 0)
    group, kind = np.divmod(keep, 3)
    shape, rows = (len(keep), len(gi)), np.arange(len(keep))
    score_of = sparse.csr_matrix((np.array([1.0, 0.0, 0.5])[kind], (rows, group)), shape=shape)
    score_of.eliminate_zeros()
    games_of = sparse.csr_matrix((np.ones(len(keep)), (rows, group)), shape=shape)
    return Cells(pairs.n, gi, gj, None, flat[keep], score_of, games_of, virtual[met] / 2, virtual[met].copy(),
                 pairs.labels(both_bad))


class _Laplacian:
    """The Newton system of one batch of rounds: a weighted graph Laplacian plus a shift on each
    component's all-ones vector (the dense path's `H + s * P`), applied matrix-free in (players, rounds) layout."""

    def __init__(self, cells: Cells):
        self.gi, self.gj = cells.gi, cells.gj
        self.incidence = incidence_matrix(cells.gi, cells.gj, cells.n_players).tocsr()  # G x n
        self.scatter = self.incidence.T.tocsr()  # n x G
        self.ends = abs(self.scatter)
        n_comp = int(cells.labels.max()) + 1 if len(cells.labels) else 0
        self.labels = cells.labels
        self.member = sparse.csr_matrix((np.ones(len(cells.labels)), (np.arange(len(cells.labels)), cells.labels)),
                                        shape=(len(cells.labels), n_comp))
        self.size = np.bincount(cells.labels, minlength=n_comp).astype(float)

    def component_mean(self, v: np.ndarray) -> np.ndarray:
        """Each contestant's component mean of v (players, rounds)."""
        return (self.member.T @ v / self.size[:, None])[self.labels]

    def apply(self, v: np.ndarray, weight: np.ndarray, shift: np.ndarray) -> np.ndarray:
        return self.scatter @ (weight * (self.incidence @ v)) + shift * self.component_mean(v)

    def solve(self, rhs: np.ndarray, weight: np.ndarray, shift: np.ndarray, rtol: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """Jacobi-preconditioned CG per column; returns the solutions and a per-column 'singular' flag."""
        diag = self.ends @ weight + shift / self.size[self.labels][:, None]
        inv = 1.0 / np.maximum(diag, 1e-300)
        x = np.zeros_like(rhs)
        r = rhs.copy()
        z = r * inv
        p = z.copy()
        rz = (r * z).sum(0)
        goal = rtol * np.sqrt((rhs * rhs).sum(0))
        singular = np.zeros(rhs.shape[1], bool)
        for _ in range(CG_MAX_ITER):
            live = (np.sqrt((r * r).sum(0)) > goal) & ~singular
            if not live.any():
                break
            ap = self.apply(p, weight, shift)
            curv = (p * ap).sum(0)
            singular |= live & ~(curv > 0)
            alpha = np.where(live & ~singular, rz / np.where(curv > 0, curv, 1.0), 0.0)
            x += alpha * p
            r -= alpha * ap
            z = r * inv
            rz_new = (r * z).sum(0)
            p = z + np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0) * p
            rz = rz_new
        return x, singular


def fit_sparse(cells: Cells, a: np.ndarray, n: np.ndarray, theta0: np.ndarray | None = None,
               tol: float = NEWTON_TOL, rtol: float = CG_RTOL, steps: int = NEWTON_MAX_ITER
               ) -> tuple[np.ndarray, np.ndarray]:
    """`fitting.fit_cells` for many contestants: batched Newton on (R, G) points and battles with CG steps.

    Same safeguards as the dense fit: steps clipped to NEWTON_MAX_STEP, large steps halved until the
    likelihood does not fall, rounds that run away or whose system is singular marked failed.
    Returns theta (R, n) and a per-round ok flag.
    """
    system = _Laplacian(cells)
    rounds, players = a.shape[0], cells.n_players
    a, n = np.ascontiguousarray(a.T), np.ascontiguousarray(n.T)  # (G, R): one column per round
    theta = np.zeros((players, rounds)) if theta0 is None else np.array(np.broadcast_to(
        np.asarray(theta0).reshape(-1, 1) if np.ndim(theta0) == 1 else np.asarray(theta0).T, (players, rounds)))
    converged, failed = np.zeros(rounds, bool), np.zeros(rounds, bool)
    for k in range(steps):
        act = np.flatnonzero(~converged & ~failed)
        if not len(act):
            break
        th, aa, nn = theta[:, act], a[:, act], n[:, act]
        eta = system.incidence @ th
        p = expit(eta)
        resid, weight = aa - nn * p, nn * p * expit(-eta)
        grad = system.scatter @ resid
        shift = np.maximum((system.ends @ weight).sum(0) / players, 1e-12)
        step, singular = system.solve(grad, weight, shift, rtol)
        largest = np.abs(step).max(0) if players else np.zeros(len(act))
        step *= np.minimum(1.0, NEWTON_MAX_STEP / np.maximum(largest, 1e-300))
        far = np.flatnonzero(largest > LINE_SEARCH_ABOVE)
        if len(far):
            # A concave likelihood still rising at the full step rose all along it: those steps need no
            # search (one product and one expit instead of a likelihood per halving); the rest are halved.
            delta = system.incidence @ step[:, far]
            rising = ((aa[:, far] - nn[:, far] * expit(eta[:, far] + delta)) * delta).sum(0) >= 0
            far, delta = far[~rising], delta[:, ~rising]
        if len(far):
            step[:, far] *= _backtrack(eta[:, far], delta, aa[:, far], nn[:, far])
        theta[:, act] = th + step
        new = theta[:, act]
        bad = singular | ~np.isfinite(new).all(0) | (np.abs(new).max(0) > RUNAWAY)
        failed[act] = bad
        converged[act] = ~bad & (largest < tol)
    if steps < NEWTON_MAX_ITER:
        converged = ~failed
    return theta.T, converged & ~failed


def _log_likelihood(eta: np.ndarray, a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Per column: sum of a log p + (n - a) log(1 - p) = a eta - n log(1 + e^eta), with log(1 + e^eta)
    written as max(eta, 0) + log1p(e^-|eta|) (no overflow; 6x faster than two `log_expit` calls)."""
    softplus = np.abs(eta)
    np.negative(softplus, out=softplus)
    np.exp(softplus, out=softplus)
    np.log1p(softplus, out=softplus)
    softplus += np.maximum(eta, 0.0)
    softplus *= n
    return (a * eta).sum(0) - softplus.sum(0)


def _backtrack(eta: np.ndarray, delta: np.ndarray, a: np.ndarray, n: np.ndarray, halvings: int = 30) -> np.ndarray:
    """`fitting.backtrack` on pair log-odds: halve a step (which moves eta by `delta`) until the
    likelihood does not fall."""
    now = _log_likelihood(eta, a, n)
    scale = np.ones(eta.shape[1])
    for _ in range(halvings):
        worse = _log_likelihood(eta + scale * delta, a, n) < now - 1e-9 * (1.0 + np.abs(now))
        if not worse.any():
            break
        scale[worse] /= 2
    return scale


def to_elo_many(theta: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`fitting.to_elo` without an anchor, vectorised over components: each component's mean at 1000."""
    size = np.bincount(labels).astype(float)
    mean = np.stack([np.bincount(labels, row, len(size)) for row in theta]) / size
    return INIT_RATING + ELO_PER_NAT * (theta - mean[:, labels])


def align_many(sample: np.ndarray, full: np.ndarray, labels: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`fitting.align_to_fit` vectorised over components (battle-weighted mean change 0 per component)."""
    total = np.bincount(labels, weight)
    w = weight / np.maximum(total[labels], 1e-300)
    shift = np.stack([np.bincount(labels, row * w, len(total)) for row in sample - full])
    return sample - shift[:, labels]


def fit_bradley_terry_many(
    battles: Battles,
    *,
    both_bad: BothBad = "tie",
    prior: float | None = None,
    rounds: int = 1000,
    seed: int | None = 0,
    ci: float = 0.95,
    pairs: PairTally | None = None,
    boot_steps: int = NEWTON_MAX_ITER,
) -> BTRatings:
    """`fit_bradley_terry` (no anchor) for many contestants: the same MLE, rescue rule and bootstrap.

    `boot_steps` bounds the Newton steps of a bootstrap round, each started from the full fit: the
    default refits every round to convergence; a very large board takes 2 (see `board.LARGE_BOARD_STEPS`).
    """
    _check_both_bad(both_bad)
    coded = _require_battles(battles)
    pairs = pair_tally(battles) if pairs is None else pairs
    virtual, named = virtual_ties(pairs, both_bad, prior)
    cells = sparse_cells(pairs, both_bad, virtual)
    if cells.total == 0:
        raise RankingError("no battles left to rank: every battle was both_bad and both_bad='exclude'")
    theta, ok = fit_sparse(cells, *cells.groups_from(cells.counts[None, :]))
    if not ok[0]:
        raise RankingError("the Bradley-Terry fit did not converge; report this data set as a bug")
    rating = to_elo_many(theta, cells.labels)[0]
    low, high, failed, rescued = _bootstrap(cells, theta[0], rating, rounds, seed, ci, rescue_amount(prior),
                                             steps=boot_steps)
    played = pairs.games_per(both_bad) > 0
    rating, low, high = (np.where(played, x, np.nan) for x in (rating, low, high))
    return BTRatings(coded.names, rating, low, high, rounds, pairs.groups(both_bad), prior, both_bad, failed, named,
                     rescued_rounds=rescued)


def pair_rescue_shares(gi: np.ndarray, gj: np.ndarray, players: int, for_i: np.ndarray, for_j: np.ndarray
                       ) -> np.ndarray:
    """`fitting.rescue_shares` when every group is its own pair (the plain fit): the same rule, without
    mapping groups to pairs (a sort of every pair per call, which was a third of a bootstrap round)."""
    rounds, groups = for_i.shape
    cross = groups_across_parts(gi, gj, players, for_i, for_j)
    if not cross.any():
        return np.zeros((rounds, groups))
    r, g = np.nonzero(cross)
    ends = np.r_[gi[g] + r * players, gj[g] + r * players]
    degree = np.bincount(ends, minlength=rounds * players).reshape(rounds, players).astype(float)
    share = 1.0 / np.maximum(np.maximum(degree[:, gi], degree[:, gj]), 1.0)
    return np.where(cross, share, 0.0)


def _bootstrap(cells: Cells, theta: np.ndarray, full: np.ndarray, rounds: int, seed: int | None, ci: float,
               rescue: float | None, steps: int = NEWTON_MAX_ITER, rtol: float = BOOT_RTOL) -> tuple[np.ndarray, np.ndarray, int, int]:
    """`fitting.bootstrap_interval` (no anchor): the same multinomial draws, rescue rule and alignment."""
    if rounds <= 0:
        return full, full.copy(), 0, 0
    rng = np.random.default_rng(seed)
    total, p = cells.total, cells.counts / cells.counts.sum()
    workers = min(FreeCores(cpu_cores()).usable(), max(1, rounds * len(cells.counts) // CHUNK_ELEMENTS))
    chunk = max(1, CHUNK_ELEMENTS // max(len(cells.counts), 1) // workers)
    weight = np.asarray(cells.games_of.T @ cells.counts).ravel()
    weight = np.bincount(cells.gi, weight, cells.n_players) + np.bincount(cells.gj, weight, cells.n_players)
    # The draws are made here, in order, so the intervals do not depend on how many threads fit them.
    draws = [rng.multinomial(total, p, size=min(chunk, rounds - start)).astype(np.float64)
             for start in range(0, rounds, chunk)]

    def one_chunk(drawn: np.ndarray) -> tuple[np.ndarray, int, int]:
        a, n = cells.groups_from(drawn)
        share = pair_rescue_shares(cells.gi, cells.gj, cells.n_players, a, n - a)
        infinite = share.any(1)
        if rescue is not None:
            a, n = a + share * (rescue / 2), n + share * rescue
        t, ok = fit_sparse(cells, a, n, theta0=theta, tol=BOOT_TOL, rtol=rtol, steps=steps)
        if rescue is None:
            ok &= ~infinite
        sample = align_many(to_elo_many(np.where(ok[:, None], t, 0.0), cells.labels), full, cells.labels, weight)
        sample[~ok] = np.nan
        return sample, int((~ok).sum()), int(infinite.sum()) if rescue is not None else 0

    # numpy and scipy's sparse products release the GIL: chunks fit on the cores other processes leave free.
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(one_chunk, draws))
    samples = [sample for sample, _, _ in done]
    failed, rescued = sum(f for _, f, _ in done), sum(r for _, _, r in done)
    if failed == rounds:
        nan = np.full(len(full), np.nan)
        return nan, nan.copy(), failed, rescued
    tail = 100 * (1 - ci) / 2
    low, high = percentiles(np.concatenate(samples), tail, 100 - tail)
    return low, high, failed, rescued


def percentiles(sample: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
    """`np.nanpercentile(sample, [low, high], axis=0)` (linear interpolation) in one sort: numpy's
    NaN-aware version goes column by column, seconds for 10,000 contestants."""
    ordered = np.sort(sample, axis=0)  # NaN sorts last
    valid = (~np.isnan(sample)).sum(0)
    cols = np.arange(sample.shape[1])
    out = []
    for q in (low, high):
        pos = (valid - 1) * q / 100
        below = np.floor(pos).astype(np.intp)
        above = np.minimum(below + 1, np.maximum(valid - 1, 0))
        frac = pos - below
        lo_v, hi_v = ordered[np.maximum(below, 0), cols], ordered[above, cols]
        value = lo_v + (hi_v - lo_v) * frac
        out.append(np.where(valid > 0, np.where(frac == 0, lo_v, value), np.nan))
    return out[0], out[1]
