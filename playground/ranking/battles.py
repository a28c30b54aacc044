"""Battles as arrays, their integer coding, and the pair counts every fit starts from.

Everything works on integer-coded contestants and aggregated counts: a million battles reduce to
a contestants x contestants table once, and the fits and the bootstrap run on that table.
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

from playground.errors import PlaygroundError
from playground.verdicts import WINNERS

LEFT, RIGHT, TIE, BOTH_BAD = range(4)
INIT_RATING = 1000.0
ELO_SCALE = 400.0
ELO_BASE = 10.0
ELO_K = 4.0
ELO_PER_NAT = ELO_SCALE / math.log(ELO_BASE)  # rating points per unit of natural log-odds
NO_BATTLES = "no battles to rank: vote in the Arena or import battles"

BothBad = Literal["tie", "exclude"]


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
            for key, value in zip(keys, values, strict=False):
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

    @cached_property
    def win_rate(self) -> np.ndarray:
        """(wins + ties / 2) / battles: the observed score, ties half, NaN without battles (computed once:
        a board reads it row by row)."""
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
    """Chatbot Arena's rank: 1 + the number of contestants whose lower bound is above my upper bound.

    Counted by binary search over the sorted lower bounds (n log n: 10,000 contestants are 10^8 pairs);
    a NaN bound is above nothing and below nothing, as in the pairwise comparison."""
    ci_low, ci_high = np.asarray(ci_low, float), np.asarray(ci_high, float)
    lows = np.sort(ci_low[~np.isnan(ci_low)])
    above = len(lows) - np.searchsorted(lows, ci_high, side="right")
    return 1 + np.where(np.isnan(ci_high), 0, above)


