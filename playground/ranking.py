"""Pure maths over pairwise battles: online Elo, Bradley-Terry with bootstrap CIs, diagnostics.

Conventions shared by every function here:

- Ratings are on the Elo scale: 400 points = a factor of 10 in odds, so
  P(i beats j) = 1 / (1 + 10 ** ((r_j - r_i) / 400)).
- A tie is half a win for each side. `both_bad` is a tie by default (as Chatbot Arena counts
  "tie (bothbad)"); `both_bad="exclude"` drops those battles from the fit.
- Bradley-Terry ratings are anchored so that the mean rating of every connected group of
  contestants is 1000 (or so that a named `anchor` contestant sits at `anchor_rating`).
- Bradley-Terry uses a weak symmetric prior: `prior` (default 0.5) virtual *tied* battles are
  added to every pair of contestants that met at least once, i.e. `prior / 2` virtual wins each
  way. Without it a contestant that never won (or never lost) has a rating of -inf (+inf); with it
  the rating is finite and below (above) the others. The prior shrinks pairs with a handful of
  battles slightly towards a tie and is negligible for pairs with many; it never connects
  contestants that did not meet. `prior=0` gives the plain MLE and raises when it does not exist.

Everything works on integer-coded contestants and aggregated counts: a million battles reduce to a
contestants x contestants table once, and the fits and the bootstrap run on that table.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import expit

from playground.errors import PlaygroundError

WINNERS: tuple[str, ...] = ("left", "right", "tie", "both_bad")
LEFT, RIGHT, TIE, BOTH_BAD = range(4)
INIT_RATING = 1000.0
ELO_SCALE = 400.0
ELO_BASE = 10.0
ELO_K = 4.0
ELO_PER_NAT = ELO_SCALE / math.log(ELO_BASE)  # rating points per unit of natural log-odds
DEFAULT_PRIOR = 0.5
NO_BATTLES = "no battles to rank: vote in the Arena or import battles"
Z95 = 1.959963984540054

BothBad = Literal["tie", "exclude"]

_NEWTON_TOL = 1e-10  # largest Newton step (natural log-odds) at convergence
_NEWTON_MAX_ITER = 100
_NEWTON_MAX_STEP = 4.0  # damping: no rating moves more than this many log-odds in one step
_CHUNK_ELEMENTS = 4_000_000  # bootstrap rounds are fitted in chunks of about this many cells


class RankingError(PlaygroundError, ValueError):
    """The battles cannot be ranked as asked (none at all, bad labels, no finite MLE)."""


# ----------------------------------------------------------------------------- input


@dataclass(frozen=True)
class CodedBattles:
    """Battles with contestants as integer codes into `names` (sorted) and winners as codes into WINNERS."""

    names: tuple[str, ...]
    left: np.ndarray
    right: np.ndarray
    winner: np.ndarray


@dataclass(frozen=True)
class Battles:
    """A table of battles as parallel arrays, one entry per voted battle.

    `left`/`right` are contestant labels, `winner` is one of WINNERS, `tstamp` is epoch seconds
    (online Elo replays battles in stable tstamp order), `left_len`/`right_len` are the answers'
    lengths in characters (only needed for length control). For large tables build with
    `from_codes` (or `leaderboard.load_battles`), which skips re-encoding the labels.
    """

    left: np.ndarray
    right: np.ndarray
    winner: np.ndarray
    tstamp: np.ndarray
    left_len: np.ndarray | None = None
    right_len: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("left", "right", "winner"):
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        object.__setattr__(self, "tstamp", np.asarray(self.tstamp, dtype=np.float64))
        if (self.left_len is None) != (self.right_len is None):
            raise RankingError("Battles: give both left_len and right_len, or neither")
        for name in ("left_len", "right_len"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, np.asarray(value, dtype=np.float64))
        sizes = {name: len(getattr(self, name)) for name in self._array_fields()}
        if len(set(sizes.values())) > 1:
            raise RankingError(f"Battles: arrays differ in length: {sizes}")

    def _array_fields(self) -> list[str]:
        fields = ["left", "right", "winner", "tstamp"]
        return fields + (["left_len", "right_len"] if self.left_len is not None else [])

    def __len__(self) -> int:
        return len(self.winner)

    @property
    def has_lengths(self) -> bool:
        return self.left_len is not None

    @property
    def names(self) -> tuple[str, ...]:
        return self.coded.names

    @cached_property
    def coded(self) -> CodedBattles:
        """Integer codes for contestants and winners, computed once (validates the labels)."""
        names, codes = _factorize(np.concatenate([self.left, self.right]))
        n = len(self)
        return CodedBattles(names, codes[:n], codes[n:], _winner_codes(self.winner))

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> Battles:
        """From mappings with keys left, right, winner, tstamp[, left_len, right_len] or tuples in that order."""
        keys = ("left", "right", "winner", "tstamp", "left_len", "right_len")
        columns: dict[str, list[Any]] = {key: [] for key in keys}
        for row in rows:
            values = [row.get(k) for k in keys] if isinstance(row, Mapping) else list(row) + [None] * (6 - len(row))
            for key, value in zip(keys, values):
                columns[key].append(value)
        lengths = {}
        if columns["left_len"] and all(v is not None for v in columns["left_len"] + columns["right_len"]):
            lengths = {"left_len": np.asarray(columns["left_len"], float), "right_len": np.asarray(columns["right_len"], float)}
        names, codes = _factorize(np.asarray(columns["left"] + columns["right"], dtype=object))
        n = len(columns["winner"])
        winner = _winner_codes(np.asarray(columns["winner"], dtype=object))
        return cls.from_codes(names, codes[:n], codes[n:], winner, np.asarray(columns["tstamp"], float), **lengths)

    @classmethod
    def from_codes(
        cls,
        names: Sequence[str],
        left: np.ndarray,
        right: np.ndarray,
        winner: np.ndarray,
        tstamp: np.ndarray,
        left_len: np.ndarray | None = None,
        right_len: np.ndarray | None = None,
    ) -> Battles:
        """From integer codes into `names` and winner codes into WINNERS: no per-row Python work."""
        labels = np.asarray(list(names), dtype=object)
        left, right = np.asarray(left, dtype=np.intp), np.asarray(right, dtype=np.intp)
        winner = np.asarray(winner, dtype=np.int8)
        if len(winner) and (winner.min() < 0 or winner.max() >= len(WINNERS)):
            raise RankingError(f"winner codes must be 0..{len(WINNERS) - 1} ({', '.join(WINNERS)})")
        battles = cls(labels[left], labels[right], np.asarray(WINNERS)[winner], tstamp, left_len, right_len)
        order = np.argsort(labels) if len(labels) else np.zeros(0, np.intp)
        remap = np.empty(len(labels), np.intp)
        remap[order] = np.arange(len(labels))
        coded = CodedBattles(tuple(labels[order]), remap[left], remap[right], winner)
        battles.__dict__["coded"] = coded  # fill the cached_property: the codes are already known
        return battles


def _factorize(values: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Labels -> (sorted distinct labels, codes). A dict pass: far faster than np.unique on strings."""
    lookup: dict[Any, int] = {}
    codes = np.fromiter((lookup.setdefault(v, len(lookup)) for v in values.tolist()), dtype=np.intp, count=len(values))
    labels = list(lookup)
    bad = [label for label in labels if not isinstance(label, str) or not label]
    if bad:
        raise RankingError(f"contestant labels must be non-empty strings, got {bad[:3]!r}")
    order = sorted(range(len(labels)), key=labels.__getitem__)
    remap = np.empty(len(labels), np.intp)
    remap[order] = np.arange(len(labels))
    return tuple(labels[k] for k in order), remap[codes] if len(codes) else codes


def _winner_codes(winner: np.ndarray) -> np.ndarray:
    codes = np.full(len(winner), -1, dtype=np.int8)
    for code, label in enumerate(WINNERS):
        codes[winner == label] = code
    if (codes < 0).any():
        bad = winner[codes < 0][0]
        raise RankingError(f"unknown winner {bad!r}: expected one of {', '.join(WINNERS)}")
    return codes


def _check_both_bad(both_bad: str) -> None:
    if both_bad not in ("tie", "exclude"):
        raise RankingError(f"both_bad must be 'tie' or 'exclude', got {both_bad!r}")


def _require_battles(battles: Battles) -> CodedBattles:
    if len(battles) == 0:
        raise RankingError(NO_BATTLES)
    return battles.coded


# ----------------------------------------------------------------------------- counts


@dataclass(frozen=True)
class Tally:
    """Battle counts by pair. `wins[i, j]`: decisive wins of i over j; `ties`, `both_bad`: symmetric."""

    names: tuple[str, ...]
    wins: np.ndarray
    ties: np.ndarray
    both_bad: np.ndarray

    def games(self, both_bad: BothBad = "tie") -> np.ndarray:
        """Battles that count in the fit, by pair."""
        games = self.wins + self.wins.T + self.ties
        return games + self.both_bad if both_bad == "tie" else games

    def scores(self, both_bad: BothBad = "tie") -> np.ndarray:
        """Points of i against j: wins plus half of the ties (and of both_bad when it is a tie)."""
        draws = self.ties + self.both_bad if both_bad == "tie" else self.ties
        return self.wins + 0.5 * draws

    @property
    def counts(self) -> np.ndarray:
        """All battles by pair, both_bad included."""
        return self.wins + self.wins.T + self.ties + self.both_bad


def tally_battles(battles: Battles) -> Tally:
    """Aggregate battles into pair counts with one bincount over (left, right, winner) codes."""
    coded = battles.coded
    n = len(coded.names)
    cells = (coded.left * n + coded.right) * 4 + coded.winner
    table = np.bincount(cells, minlength=n * n * 4).reshape(n, n, 4).astype(np.float64)
    ties, both_bad = table[..., TIE], table[..., BOTH_BAD]
    return Tally(coded.names, table[..., LEFT] + table[..., RIGHT].T, ties + ties.T, both_bad + both_bad.T)


@dataclass(frozen=True)
class ContestantTotals:
    """Per contestant: battles (all), wins, losses, ties (both_bad counted as ties) and both_bad alone."""

    battles: np.ndarray
    wins: np.ndarray
    losses: np.ndarray
    ties: np.ndarray
    both_bad: np.ndarray

    @property
    def win_rate(self) -> np.ndarray:
        """(wins + ties / 2) / battles: the observed score, ties half, NaN without battles."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return (self.wins + 0.5 * self.ties) / self.battles


def contestant_totals(tally: Tally) -> ContestantTotals:
    both_bad = tally.both_bad.sum(1)
    wins, losses = tally.wins.sum(1), tally.wins.sum(0)
    ties = tally.ties.sum(1) + both_bad
    return ContestantTotals(wins + losses + ties, wins, losses, ties, both_bad)


def comparison_groups(tally: Tally, both_bad: BothBad = "tie") -> list[tuple[str, ...]]:
    """Connected components of the 'met in a counted battle' graph, largest first."""
    n_groups, labels = connected_components(sparse.csr_matrix(tally.games(both_bad) > 0), directed=False)
    groups = [tuple(tally.names[i] for i in np.flatnonzero(labels == g)) for g in range(n_groups)]
    return sorted(groups, key=lambda group: (-len(group), group))


def win_rate_matrix(tally: Tally, both_bad: BothBad = "tie") -> np.ndarray:
    """Observed score of row against column (ties half), NaN where they never met and on the diagonal."""
    games = tally.games(both_bad)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = tally.scores(both_bad) / games
    rate[games == 0] = np.nan
    return rate


def battle_count_matrix(tally: Tally) -> np.ndarray:
    """Battles between row and column, every outcome included."""
    return tally.counts.copy()


def predicted_win_matrix(ratings: np.ndarray) -> np.ndarray:
    """P(row beats column) from Elo-scale ratings; NaN on the diagonal."""
    ratings = np.asarray(ratings, dtype=np.float64)
    pred = 1.0 / (1.0 + ELO_BASE ** ((ratings[None, :] - ratings[:, None]) / ELO_SCALE))
    np.fill_diagonal(pred, np.nan)
    return pred


def ci_rank(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """Chatbot Arena's rank: 1 + the number of contestants whose lower bound is above my upper bound."""
    ci_low, ci_high = np.asarray(ci_low, float), np.asarray(ci_high, float)
    return 1 + (ci_low[None, :] > ci_high[:, None]).sum(1)


# ----------------------------------------------------------------------------- online Elo


def online_elo(
    battles: Battles,
    *,
    k: float = ELO_K,
    scale: float = ELO_SCALE,
    base: float = ELO_BASE,
    initial: float = INIT_RATING,
    both_bad: BothBad = "tie",
) -> dict[str, float]:
    """Chatbot Arena's online Elo: replay battles in stable tstamp order with update K*(score - expected).

    Order-dependent by design (it is what the early Arena leaderboard published); prefer the
    Bradley-Terry ratings for ranking. A tie (and both_bad unless excluded) scores 0.5.
    """
    _check_both_bad(both_bad)
    coded = _require_battles(battles)
    score = np.array([1.0, 0.0, 0.5, 0.5])[coded.winner]
    keep = coded.winner != BOTH_BAD if both_bad == "exclude" else slice(None)
    order = _time_order(battles.tstamp)
    left, right, score = coded.left[order][keep], coded.right[order][keep], score[order][keep]
    ratings = _elo_replay(left.tolist(), right.tolist(), score.tolist(), len(coded.names), k, math.log(base) / scale, initial)
    return dict(zip(coded.names, ratings))


def _time_order(tstamp: np.ndarray) -> np.ndarray | slice:
    """Stable time order; a no-op when the battles are already sorted (the usual case from SQL)."""
    if len(tstamp) < 2 or bool(np.all(tstamp[1:] >= tstamp[:-1])):
        return slice(None)
    return np.argsort(tstamp, kind="stable")


def _elo_replay(left: list[int], right: list[int], score: list[float], n: int, k: float, c: float, initial: float) -> list[float]:
    """The sequential part: a tight loop over Python lists (no numpy scalars), ~0.4 us a battle.

    expected = 1 / (1 + base ** ((rb - ra) / scale)) = 1 / (1 + exp((rb - ra) * c)); the right
    side's update is the exact negative of the left side's because the two expectations sum to 1.
    """
    rating = [initial] * n
    exp = math.exp
    for a, b, s in zip(left, right, score):
        ra, rb = rating[a], rating[b]
        delta = k * (s - 1.0 / (1.0 + exp((rb - ra) * c)))
        rating[a] = ra + delta
        rating[b] = rb - delta
    return rating


# ----------------------------------------------------------------------------- Bradley-Terry


@dataclass(frozen=True)
class BTRatings:
    """Bradley-Terry ratings (Elo scale) with bootstrap percentile intervals, aligned with `names`.

    `rating` is the fit on all battles; `ci_low`/`ci_high` are percentiles of the bootstrap
    refits (equal to `rating` when rounds=0); NaN for a contestant without counted battles.
    """

    names: tuple[str, ...]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    rounds: int
    groups: tuple[tuple[str, ...], ...]
    prior: float
    both_bad: str
    failed_rounds: int = 0

    def as_dict(self) -> dict[str, float]:
        return dict(zip(self.names, self.rating.tolist()))


@dataclass(frozen=True)
class _Cells:
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


def fit_bradley_terry(
    battles: Battles,
    *,
    both_bad: BothBad = "tie",
    prior: float = DEFAULT_PRIOR,
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
    cells = _pair_cells(tally, both_bad, prior)
    if cells.total == 0:
        raise RankingError("no battles left to rank: every battle was both_bad and both_bad='exclude'")
    if prior <= 0:
        _require_finite_mle(tally, both_bad)
    theta, _, _ = _fit_cells(cells, *cells.groups_from(cells.counts[None, :]))
    rating = _to_elo(theta, cells.labels, coded.names, anchor, anchor_rating)[0]
    low, high, failed = _bootstrap_interval(cells, theta, rounds, seed, ci, coded.names, anchor, anchor_rating)
    rating, low, high = (_blank_isolated(x, tally, both_bad) for x in (rating, low, high))
    groups = tuple(comparison_groups(tally, both_bad))
    return BTRatings(coded.names, rating, low, high, rounds, groups, prior, both_bad, failed)


def _pair_cells(tally: Tally, both_bad: BothBad, prior: float) -> _Cells:
    """One group per unordered pair that met; outcome cells: i wins, j wins, tie (incl. both_bad)."""
    games = tally.games(both_bad)
    gi, gj = np.nonzero(np.triu(games > 0, 1))
    draws = tally.ties + tally.both_bad if both_bad == "tie" else tally.ties
    outcome_counts = np.stack([tally.wins[gi, gj], tally.wins[gj, gi], draws[gi, gj]], axis=1)
    points_for_i = np.array([1.0, 0.0, 0.5])
    return _build_cells(len(tally.names), gi, gj, None, outcome_counts, points_for_i, prior, games)


def _build_cells(
    n_players: int,
    gi: np.ndarray,
    gj: np.ndarray,
    z: np.ndarray | None,
    outcome_counts: np.ndarray,
    points_for_i: np.ndarray,
    prior: float,
    games: np.ndarray,
    prior_pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> _Cells:
    """Flatten (group, outcome) counts into cells, keep the non-empty ones, attach the prior.

    With `prior_pairs`, the prior goes into extra groups (one per pair, z = 0) instead of the
    existing ones: used when several groups share a pair (length bins).
    """
    n_groups, n_outcomes = outcome_counts.shape
    if prior_pairs is not None and prior > 0:
        pi, pj = prior_pairs
        gi, gj = np.concatenate([gi, pi]), np.concatenate([gj, pj])
        z = None if z is None else np.concatenate([z, np.zeros(len(pi))])
        prior_a = np.concatenate([np.zeros(n_groups), np.full(len(pi), prior / 2)])
        prior_n = np.concatenate([np.zeros(n_groups), np.full(len(pi), float(prior))])
    else:
        prior_a, prior_n = np.full(n_groups, prior / 2), np.full(n_groups, float(prior))
    flat = outcome_counts.ravel()
    keep = np.flatnonzero(flat > 0)
    group, outcome = np.divmod(keep, n_outcomes)
    shape = (len(keep), len(gi))
    rows = np.arange(len(keep))
    score_of = sparse.csr_matrix((points_for_i[outcome], (rows, group)), shape=shape)
    score_of.eliminate_zeros()
    games_of = sparse.csr_matrix((np.ones(len(keep)), (rows, group)), shape=shape)
    _, labels = connected_components(sparse.csr_matrix(games > 0), directed=False)
    return _Cells(n_players, gi, gj, z, flat[keep], score_of, games_of, prior_a, prior_n, labels)


def _fit_cells(
    cells: _Cells, a: np.ndarray, n: np.ndarray, theta0: np.ndarray | None = None, beta0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Batched Newton on R independent grouped logistic likelihoods.

    Model: logit P(i beats j in group g) = theta_i - theta_j (+ beta * z_g); a[r, g] points for
    i out of n[r, g] battles. The Hessian in theta is a weighted graph Laplacian, singular along
    each component's all-ones vector (ratings are only defined up to a shift per component): we
    solve with (H + s * P), P the projector on those vectors, which yields the minimum-norm step
    and keeps every component's mean theta at 0. Returns theta (R, n), beta (R,) or None, and a
    per-round converged flag.
    """
    rounds, players = a.shape[0], cells.n_players
    has_beta = cells.z is not None
    size = players + int(has_beta)
    incidence = _incidence(cells.gi, cells.gj, players)
    laplace = _laplacian_map(cells.gi, cells.gj, players)
    projector = _component_projector(cells.labels)
    theta = np.zeros((rounds, players)) if theta0 is None else np.array(np.broadcast_to(theta0, (rounds, players)))
    beta = np.zeros(rounds) if beta0 is None else np.array(np.broadcast_to(beta0, (rounds,)), dtype=float)
    converged = np.zeros(rounds, dtype=bool)
    for _ in range(_NEWTON_MAX_ITER):
        eta = theta[:, cells.gi] - theta[:, cells.gj]
        if has_beta:
            eta = eta + beta[:, None] * cells.z
        p = expit(eta)
        resid, weight = a - n * p, n * p * (1.0 - p)
        hess = np.zeros((rounds, size, size))
        grad = np.zeros((rounds, size))
        grad[:, :players] = np.asarray((incidence.T @ resid.T).T)
        lap = np.asarray((laplace.T @ weight.T).T).reshape(rounds, players, players)
        shift = np.maximum(np.trace(lap, axis1=1, axis2=2) / players, 1e-12)
        hess[:, :players, :players] = lap + shift[:, None, None] * projector
        if has_beta:
            wz = weight * cells.z
            grad[:, players] = resid @ cells.z
            cross = np.asarray((incidence.T @ wz.T).T)
            hess[:, :players, players] = cross
            hess[:, players, :players] = cross
            hess[:, players, players] = np.maximum(wz @ cells.z, 1e-12)
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        largest = np.abs(step).max(1)
        step *= np.minimum(1.0, _NEWTON_MAX_STEP / np.maximum(largest, 1e-300))[:, None]
        theta += step[:, :players]
        if has_beta:
            beta += step[:, players]
        converged = largest < _NEWTON_TOL
        if converged.all():
            break
    converged &= np.isfinite(theta).all(1)
    return theta, (beta if has_beta else None), converged


def _incidence(gi: np.ndarray, gj: np.ndarray, players: int) -> sparse.csr_matrix:
    """G x n matrix with +1 at (g, i) and -1 at (g, j): maps group residuals to rating gradients."""
    rows = np.arange(len(gi))
    data = np.r_[np.ones(len(gi)), -np.ones(len(gj))]
    return sparse.csr_matrix((data, (np.r_[rows, rows], np.r_[gi, gj])), shape=(len(gi), players))


def _laplacian_map(gi: np.ndarray, gj: np.ndarray, players: int) -> sparse.csr_matrix:
    """G x n^2 matrix turning group weights into the flattened weighted Laplacian (the Hessian)."""
    rows = np.arange(len(gi))
    cols = np.r_[gi * players + gi, gj * players + gj, gi * players + gj, gj * players + gi]
    data = np.r_[np.ones(2 * len(gi)), -np.ones(2 * len(gi))]
    return sparse.csr_matrix((data, (np.tile(rows, 4), cols)), shape=(len(gi), players * players))


def _component_projector(labels: np.ndarray) -> np.ndarray:
    """Sum over components c of 1_c 1_c^T / |c|."""
    same = labels[:, None] == labels[None, :]
    return same / np.bincount(labels)[labels][:, None]


def _to_elo(
    theta: np.ndarray, labels: np.ndarray, names: tuple[str, ...], anchor: str | None, anchor_rating: float
) -> np.ndarray:
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


def _bootstrap_interval(
    cells: _Cells,
    theta: np.ndarray,
    rounds: int,
    seed: int | None,
    ci: float,
    names: tuple[str, ...],
    anchor: str | None,
    anchor_rating: float,
    beta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int] | tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """Percentile interval of refits on multinomial redraws of the outcome cells (chunked batches)."""
    full = _to_elo(theta, cells.labels, names, anchor, anchor_rating)[0]
    if rounds <= 0:
        if beta is None:
            return full, full.copy(), 0
        return full, full.copy(), 0, float(beta[0]), float(beta[0])
    rng = np.random.default_rng(seed)
    total, p = cells.total, cells.counts / cells.counts.sum()
    chunk = max(1, _CHUNK_ELEMENTS // max(len(cells.counts), cells.n_players**2))
    samples, betas, failed = [], [], 0
    for start in range(0, rounds, chunk):
        draws = rng.multinomial(total, p, size=min(chunk, rounds - start)).astype(np.float64)
        t, b, ok = _fit_cells(cells, *cells.groups_from(draws), theta0=theta, beta0=beta)
        sample = _to_elo(t, cells.labels, names, anchor, anchor_rating)
        sample[~ok] = np.nan
        failed += int((~ok).sum())
        samples.append(sample)
        if b is not None:
            betas.append(np.where(ok, b, np.nan))
    tail = 100 * (1 - ci) / 2
    sample = np.concatenate(samples)
    if failed == rounds:
        raise RankingError("every bootstrap round failed to converge: use prior > 0")
    low, high = np.nanpercentile(sample, [tail, 100 - tail], axis=0)
    if beta is None:
        return low, high, failed
    b_low, b_high = np.nanpercentile(np.concatenate(betas), [tail, 100 - tail])
    return low, high, failed, b_low, b_high


def _blank_isolated(values: np.ndarray, tally: Tally, both_bad: BothBad) -> np.ndarray:
    """NaN for contestants with no counted battle (e.g. only both_bad battles, excluded)."""
    values = np.array(values, dtype=np.float64)
    values[tally.games(both_bad).sum(1) == 0] = np.nan
    return values


def _require_finite_mle(tally: Tally, both_bad: BothBad) -> None:
    """Without a prior the MLE is finite iff each connected group is strongly connected by points."""
    scores = sparse.csr_matrix(tally.scores(both_bad) > 0)
    n_weak, weak = connected_components(scores, directed=True, connection="weak")
    n_strong, strong = connected_components(scores, directed=True, connection="strong")
    if n_strong != n_weak:
        sizes = np.bincount(strong)
        stuck = [tally.names[i] for i in range(len(tally.names)) if sizes[strong[i]] < np.bincount(weak)[weak[i]]]
        raise RankingError(
            "with prior=0 the Bradley-Terry ratings are infinite (a contestant or group never won or never "
            f"lost against the rest): {', '.join(stuck[:6])}; use prior > 0"
        )


# ----------------------------------------------------------------------------- length control


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
    prior: float = DEFAULT_PRIOR,
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
    theta, beta, _ = _fit_cells(cells, *cells.groups_from(cells.counts[None, :]))
    rating = _to_elo(theta, cells.labels, coded.names, anchor, anchor_rating)[0]
    low, high, _, b_low, b_high = _bootstrap_interval(
        cells, theta, rounds, seed, ci, coded.names, anchor, anchor_rating, beta=beta
    )
    rating, low, high = (_blank_isolated(x, tally, both_bad) for x in (rating, low, high))
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
    prior: float,
) -> _Cells:
    """Groups (lo, hi, bin) with outcome cells lo wins / hi wins / tie; the prior in extra groups."""
    n_bins = len(bin_value)
    group_code = (lo * n + hi) * n_bins + bin_index
    groups, inverse = np.unique(group_code, return_inverse=True)
    outcome_counts = np.bincount(inverse * 3 + outcome, minlength=len(groups) * 3).reshape(-1, 3).astype(float)
    pair, bin_of = np.divmod(groups, n_bins)
    gi, gj = np.divmod(pair, n)
    games = tally.games(both_bad)
    prior_pairs = np.nonzero(np.triu(games > 0, 1))
    return _build_cells(n, gi, gj, bin_value[bin_of], outcome_counts, np.array([1.0, 0.0, 0.5]), prior, games, prior_pairs)


# ----------------------------------------------------------------------------- position bias


@dataclass(frozen=True)
class PositionBias:
    """Share of decisive battles won by the left answer, with a 95% Wilson interval (0.5 = no bias)."""

    left_wins: int
    decisive: int
    rate: float
    ci_low: float
    ci_high: float

    @property
    def significant(self) -> bool:
        return self.decisive > 0 and not (self.ci_low <= 0.5 <= self.ci_high)


def position_bias(battles: Battles, z: float = Z95) -> PositionBias:
    """Left-side win share among decisive votes; a clear departure from 0.5 means voters favour a side."""
    winner = battles.coded.winner if len(battles) else np.zeros(0, np.int8)
    left_wins, decisive = int((winner == LEFT).sum()), int(((winner == LEFT) | (winner == RIGHT)).sum())
    low, high = wilson_interval(left_wins, decisive, z)
    rate = left_wins / decisive if decisive else math.nan
    return PositionBias(left_wins, decisive, rate, low, high)


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval: well-behaved near 0 and 1 and for small samples, unlike the Wald interval."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)
