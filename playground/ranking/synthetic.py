"""Battles drawn from known strengths: the set-up of the prior study (tests and bench/bench_priors.py).

Arena-like: 40 contestants whose true ratings are spread evenly over 600 points, and skewed
pairing (weaker contestants are drawn less often, as old models are in Chatbot Arena), so that
with 10,000 battles the weakest contestant has about 95 battles (fewest over 20 seeds: 81) and the strongest about 1,300.
Outcomes follow Bradley-Terry, optionally with ties from Davidson's model (`tie_nu`) or ties at a
fixed rate whatever the gap (`tie_rate`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from playground.ranking.battles import Battles


@dataclass(frozen=True)
class Setup:
    """What to simulate: sizes, the spread of true ratings, how skewed the pairing is."""

    n_battles: int = 10_000
    n_contestants: int = 40
    spread: float = 600.0
    skew: float = 14.0  # sampling weight of the strongest over the weakest contestant
    tie_rate: float = 0.0
    tie_nu: float = 0.0

    def true_ratings(self) -> np.ndarray:
        """Evenly spread, mean 1000, weakest first."""
        return 1000.0 + np.linspace(-self.spread / 2, self.spread / 2, self.n_contestants)

    def names(self) -> list[str]:
        return [f"c{k:02d}" for k in range(self.n_contestants)]


def simulate(setup: Setup, seed: int) -> Battles:
    """One data set; contestant k (named c{k:02d}) has the k-th true rating, weakest first."""
    rng = np.random.default_rng(seed)
    n, m = setup.n_contestants, setup.n_battles
    true = setup.true_ratings()
    weight = setup.skew ** np.linspace(0.0, 1.0, n)
    weight /= weight.sum()
    left = rng.choice(n, m, p=weight)
    right = rng.choice(n, m, p=weight)
    clash = left == right
    while clash.any():  # redraw the opponent until the two differ
        right[clash] = rng.choice(n, int(clash.sum()), p=weight)
        clash = left == right
    d = (true[left] - true[right]) * np.log(10) / 400
    if setup.tie_nu > 0:
        logits = np.stack([d / 2, -d / 2, np.full(m, np.log(setup.tie_nu))], 1)
        prob = np.exp(logits - logits.max(1, keepdims=True))
        prob /= prob.sum(1, keepdims=True)
        u = rng.random(m)
        winner = np.where(u < prob[:, 0], 0, np.where(u < prob[:, 0] + prob[:, 1], 1, 2))
    else:
        winner = np.where(rng.random(m) < 1 / (1 + np.exp(-d)), 0, 1)
        if setup.tie_rate > 0:
            winner = np.where(rng.random(m) < setup.tie_rate, 2, winner)
    return Battles.from_codes(setup.names(), left, right, winner, np.arange(m, dtype=float))


@dataclass(frozen=True)
class SparseSetup:
    """A small anonymous board with one sparse contestant: the case where one resample's missing wins
    used to blow every interval up.

    `n_regular` contestants with true ratings spread evenly over `spread` points play
    `n_battles` uniformly paired battles; one more contestant, "rare" (true rating `rare_rating`),
    plays `rare_battles` battles against uniformly drawn regulars and wins exactly `rare_wins` of them
    (which ones is random). Everything else follows Bradley-Terry.
    """

    n_battles: int = 1_085
    n_regular: int = 7
    spread: float = 300.0
    rare_rating: float = 700.0
    rare_battles: int = 15
    rare_wins: int = 2

    def true_ratings(self) -> np.ndarray:
        """The regulars' ratings (weakest first, mean 1000) then rare's."""
        regular = 1000.0 + np.linspace(-self.spread / 2, self.spread / 2, self.n_regular)
        return np.r_[regular, self.rare_rating]

    def names(self) -> list[str]:
        return [f"m{k}" for k in range(self.n_regular)] + ["rare"]


def simulate_sparse(setup: SparseSetup, seed: int, with_rare: bool = True) -> Battles:
    """One data set; `with_rare=False` gives the same regular battles without rare's (same seed)."""
    rng = np.random.default_rng(seed)
    n, m = setup.n_regular, setup.n_battles
    true = setup.true_ratings()
    left = rng.integers(0, n, m)
    right = (left + rng.integers(1, n, m)) % n  # uniform over the other regulars
    d = (true[left] - true[right]) * np.log(10) / 400
    winner = np.where(rng.random(m) < 1 / (1 + np.exp(-d)), 0, 1)
    opponents = rng.integers(0, n, setup.rare_battles)
    rare_won = np.zeros(setup.rare_battles, dtype=bool)
    rare_won[rng.choice(setup.rare_battles, setup.rare_wins, replace=False)] = True
    rare_left = rng.random(setup.rare_battles) < 0.5
    if with_rare:
        rare = np.full(setup.rare_battles, n)
        left = np.r_[left, np.where(rare_left, rare, opponents)]
        right = np.r_[right, np.where(rare_left, opponents, rare)]
        winner = np.r_[winner, np.where(rare_won == rare_left, 0, 1)]
    order = rng.permutation(len(left))
    names = setup.names() if with_rare else setup.names()[:n]
    return Battles.from_codes(names, left[order], right[order], winner[order], np.arange(len(left), dtype=float))
