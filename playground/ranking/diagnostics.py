"""Left/right position bias with a Wilson interval (playground/stats.py)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from playground.ranking.battles import LEFT, RIGHT, Battles
from playground.stats import Z95, wilson_interval


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

