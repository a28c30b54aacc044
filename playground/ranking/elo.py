"""Chatbot Arena's online Elo: an order-dependent replay of the battles in vote order."""
from __future__ import annotations

import math

import numpy as np

from playground.ranking.battles import (BOTH_BAD, ELO_BASE, ELO_K, ELO_SCALE, INIT_RATING, Battles, BothBad,
                                        _check_both_bad, _require_battles)


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
    return dict(zip(coded.names, ratings, strict=True))


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
    for a, b, s in zip(left, right, score, strict=True):
        ra, rb = rating[a], rating[b]
        delta = k * (s - 1.0 / (1.0 + exp((rb - ra) * c)))
        rating[a] = ra + delta
        rating[b] = rb - delta
    return rating

