"""Pure maths over pairwise battles: online Elo, Bradley-Terry with bootstrap CIs, tie model, diagnostics.

Conventions shared by every module here:

- Ratings are on the Elo scale: 400 points = a factor of 10 in odds, so
  P(i beats j) = 1 / (1 + 10 ** ((r_j - r_i) / 400)).
- A tie is half a win for each side (or modelled, `ties.fit_davidson`). `both_bad` is a tie by
  default (as Chatbot Arena counts "tie (bothbad)"); `both_bad="exclude"` drops those battles.
- Ratings are anchored so that the mean rating of every connected group of contestants is 1000
  (or so that a named `anchor` contestant sits at `anchor_rating`).
- No prior by default: the plain maximum-likelihood fit, regularised only for the pairs whose
  results make it infinite (see `bradley_terry`).

Modules: `battles` (input arrays, coding, pair counts, matrices), `elo` (online Elo),
`fitting` (batched Newton, bootstrap), `bradley_terry`, `length` (length control), `ties`
(Davidson), `diagnostics` (position bias), `synthetic` (battles with known strengths, for tests
and the prior study).
"""
from playground.ranking.battles import (BOTH_BAD, ELO_BASE, ELO_K, ELO_PER_NAT, ELO_SCALE, INIT_RATING, LEFT,
                                        NO_BATTLES, RIGHT, TIE, Battles, BothBad, CodedBattles,
                                        ContestantTotals, RankingError, Tally, battle_count_matrix, ci_rank,
                                        comparison_groups, contestant_totals, predicted_win_matrix, tally_battles,
                                        win_rate_matrix)
from playground.ranking.bradley_terry import (DEFAULT_PRIOR, RESCUE_TIES, BTRatings, fit_bradley_terry,
                                              regularised_pairs)
from playground.ranking.diagnostics import PositionBias, position_bias
from playground.ranking.elo import online_elo
from playground.ranking.length import LengthControl, fit_length_controlled
from playground.ranking.ties import fit_davidson, tie_probability_at_equal_strength

TIE_MODELS: tuple[str, ...] = ("half", "davidson")

__all__ = [
    "BOTH_BAD", "ELO_BASE", "ELO_K", "ELO_PER_NAT", "ELO_SCALE", "INIT_RATING", "LEFT", "NO_BATTLES", "RIGHT", "TIE",
    "Battles", "BothBad", "CodedBattles", "ContestantTotals", "RankingError", "Tally",
    "battle_count_matrix", "ci_rank", "comparison_groups", "contestant_totals", "predicted_win_matrix",
    "tally_battles", "win_rate_matrix", "DEFAULT_PRIOR", "RESCUE_TIES", "BTRatings", "fit_bradley_terry",
    "regularised_pairs", "PositionBias", "position_bias", "online_elo", "LengthControl",
    "fit_length_controlled", "fit_davidson", "tie_probability_at_equal_strength", "TIE_MODELS",
]
