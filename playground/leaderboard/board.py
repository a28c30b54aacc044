"""Battles -> the ranked table: ratings with CIs, online Elo, counts, and what a reader must know."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from storage.voters import voter_group_text

from playground.ranking import (DEFAULT_PRIOR, NO_BATTLES, RESCUE_TIES, TIE_MODELS, Battles, BothBad, BTRatings,
                                LengthControl, PositionBias, RankingError, battle_count_matrix, ci_rank,
                                contestant_totals, fit_bradley_terry, fit_davidson, fit_length_controlled,
                                online_elo, position_bias, predicted_win_matrix, tally_battles,
                                win_rate_matrix)
from playground.ranking.fitting import NEWTON_MAX_ITER
from playground.ranking.many import fit_bradley_terry_many, pair_tally



@dataclass(frozen=True)
class LeaderboardRow:
    """One contestant. `rating`/CI: Bradley-Terry (Elo scale, bootstrap percentile CI); `elo`:
    online Elo; `ties` include both_bad votes; `win_rate` = (wins + ties/2) / battles. The `_lc`
    fields are the length-controlled rating and its rank, when asked for."""

    rank: int | None
    contestant: str
    rating: float
    ci_low: float
    ci_high: float
    elo: float
    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    rating_lc: float | None = None
    ci_low_lc: float | None = None
    ci_high_lc: float | None = None
    rank_lc: int | None = None


@dataclass(frozen=True)
class Leaderboard:
    """Rows best first, the reader's warnings, diagnostics, and matrices in row order. The matrices
    cover every row up to `DENSE_MAX` contestants, past it the first `MATRIX_ROWS` rows (the names are
    `names[:len(win_rate)]`): a 10,000 x 10,000 heatmap is 800 MB and shows nothing."""

    rows: list[LeaderboardRow]
    warnings: list[str]
    position_bias: PositionBias
    names: tuple[str, ...]
    win_rate: np.ndarray  # observed score of row vs column, ties half; NaN where they never met
    battle_counts: np.ndarray
    predicted: np.ndarray  # P(row beats column) from the ratings
    length_control: LengthControl | None
    n_battles: int
    rounds: int
    seed: int | None
    both_bad: str
    prior: float | None
    tie_model: str = "half"
    nu: float | None = None
    nu_ci: tuple[float, float] | None = None
    shows: str = ""  # which battles the table ranks, in words (set by the caller that loaded them)
    grouping: str = ""  # what a contestant is: model, mode or model+mode (set by the caller)


def battles_shown(include_named: bool, add_named: str = "--include-named", voters: str = "people") -> str:
    """Which battles and whose votes a leaderboard ranks, in words for its table and files; `add_named`
    is how the reader adds the named ones (a CLI flag, a checkbox)."""
    battles = ("anonymous Arena battles and named Playground comparisons" if include_named
               else f"anonymous (blind) battles only; {add_named} adds named Playground comparisons")
    return f"{battles}; {voter_group_text(voters)}"


# Up to DENSE_MAX contestants the fits are dense (exact n x n Newton solves: fastest for an Arena of tens
# of models); past it the plain fit is `ranking.many` (memory and time linear in the pairs that met).
# Davidson's tie model and length control stay dense: past DENSE_ONLY_MAX they are refused. Past
# ROUNDS_CAP_ABOVE the bootstrap runs at most LARGE_BOARD_ROUNDS rounds (Chatbot Arena's own default: FastChat's
# elo_analysis.py --num-bootstrap; docs/benchmarks.md "Many contestants" compares them with a longer
# reference), and the board says so; each of those rounds takes LARGE_BOARD_STEPS Newton steps from the full
# fit instead of refitting to convergence. Measured on 10,000 contestants, 200,000 battles, 100 rounds: the
# bootstrap's CPU fell from 23.7 s to 8.7 s, and the interval ends moved by 0.9 % of the interval's width at
# the median (95th percentile 8.7 %), less than the 100 rounds' own noise against 300 (8.8 % at the median).
DENSE_MAX = 300
DENSE_ONLY_MAX = 2_000
ROUNDS_CAP_ABOVE = 2_000
LARGE_BOARD_ROUNDS = 100
LARGE_BOARD_STEPS = 2
MAX_CONTESTANTS = 1_000_000
MATRIX_ROWS = 60


def build_leaderboard(
    battles: Battles,
    *,
    rounds: int = 1000,
    seed: int | None = 0,
    both_bad: BothBad = "tie",
    length_control: bool = False,
    prior: float | None = DEFAULT_PRIOR,
    tie_model: str = "half",
    shows: str = "",
    blind: Battles | None = None,
    grouping: str = "",
) -> Leaderboard:
    """Rank by Bradley-Terry with Arena's CI-aware rank (1 + contestants whose CI is entirely above).

    Rows are sorted by rank, then rating. `tie_model="davidson"` rates with Davidson's tie model
    instead of counting a tie as half a win (the fitted tie parameter is reported). Position bias
    is measured on `blind` when given: the anonymous battles, whose sides are random (in a named
    comparison "left" is whatever the user picked as A).
    """
    if tie_model not in TIE_MODELS:
        raise RankingError(f"unknown tie model {tie_model!r}: choose one of {', '.join(TIE_MODELS)}")
    if len(battles) == 0:
        raise RankingError(NO_BATTLES)
    battles, self_battles = drop_self_battles(battles)
    if len(battles) == 0:
        raise RankingError(f"all {self_battles} battle(s) compare a contestant with itself under this grouping "
                           "(e.g. two prompting modes of one model, grouped by model): group by mode or "
                           "model+mode to rank them")
    contestants = len(battles.names)
    _check_size(contestants, tie_model, length_control)
    capped = []
    if contestants > ROUNDS_CAP_ABOVE and rounds > LARGE_BOARD_ROUNDS:
        capped = [f"{contestants:,} contestants: the intervals come from {LARGE_BOARD_ROUNDS} bootstrap rounds "
                  f"(Chatbot Arena's default), not the {rounds} asked, to rank them in seconds."]
        rounds = LARGE_BOARD_ROUNDS
    many = contestants > DENSE_MAX and tie_model == "half" and not length_control
    if many:
        pairs = pair_tally(battles)
        steps = LARGE_BOARD_STEPS if contestants > ROUNDS_CAP_ABOVE else NEWTON_MAX_ITER
        bt = fit_bradley_terry_many(battles, both_bad=both_bad, prior=prior, rounds=rounds, seed=seed, pairs=pairs,
                                    boot_steps=steps)
        totals = pairs.totals()
        games, scores = pairs.games_per(both_bad), pairs.scores_per(both_bad)
    else:
        fit = fit_davidson if tie_model == "davidson" else fit_bradley_terry
        bt = fit(battles, both_bad=both_bad, prior=prior, rounds=rounds, seed=seed)
        tally = tally_battles(battles)
        totals = contestant_totals(tally)
        games, scores = tally.games(both_bad).sum(1), tally.scores(both_bad).sum(1)
    elo = online_elo(battles, both_bad=both_bad)
    lc = fit_length_controlled(battles, both_bad=both_bad, prior=prior, rounds=rounds, seed=seed) if length_control else None
    ranks = _ranks(bt.rating, bt.ci_low, bt.ci_high)
    order = sorted(range(len(bt.names)), key=lambda k: (ranks[k] is None, ranks[k] or 0,
                                                        -_or_minus_inf(bt.rating[k]), bt.names[k]))
    ranks_lc = _ranks(lc.rating, lc.ci_low, lc.ci_high) if lc else None
    rows = [_row(k, bt, elo, totals, ranks, lc, ranks_lc) for k in order]
    idx = np.array(order, dtype=np.intp)
    if many:
        idx = idx[:MATRIX_ROWS]
        win_rate, counts = pairs.matrices(idx, both_bad)
    else:
        win_rate, counts = win_rate_matrix(tally, both_bad)[np.ix_(idx, idx)], battle_count_matrix(tally)[np.ix_(idx, idx)]
    bias = position_bias(battles if blind is None else blind)
    return Leaderboard(
        rows=rows,
        warnings=capped + _self_battle_warning(self_battles) + _warnings(bt, games, scores, prior, bias, lc),
        position_bias=bias,
        names=tuple(bt.names[k] for k in order),
        win_rate=win_rate,
        battle_counts=counts,
        predicted=predicted_win_matrix(bt.rating[idx]),
        length_control=lc,
        n_battles=len(battles),
        rounds=rounds,
        seed=seed,
        both_bad=both_bad,
        prior=prior,
        tie_model=tie_model,
        nu=bt.nu,
        nu_ci=bt.nu_ci,
        shows=shows,
        grouping=grouping,
    )


def _check_size(contestants: int, tie_model: str, length_control: bool) -> None:
    """Refuse, with what to do instead, the boards too large for the fit asked."""
    narrow = "Narrow the battles (--category, --since/--until, --by mode) or check the model names of the import."
    if contestants > MAX_CONTESTANTS:
        raise RankingError(f"{contestants:,} contestants: at most {MAX_CONTESTANTS:,} are ranked. {narrow}")
    if contestants > DENSE_ONLY_MAX and (tie_model == "davidson" or length_control):
        what = "Davidson's tie model" if tie_model == "davidson" else "length control"
        raise RankingError(
            f"{contestants:,} contestants: {what} uses dense {contestants:,} x {contestants:,} matrices, so it "
            f"ranks at most {DENSE_ONLY_MAX:,}; the plain ranking (tie = half a win, no length control) takes up "
            f"to {MAX_CONTESTANTS:,}. {narrow}")


def drop_self_battles(battles: Battles) -> tuple[Battles, int]:
    """Battles whose two sides are the same contestant carry no information about the ranking
    (they appear when, say, two modes of one model are grouped by model); returns the rest and
    how many were dropped."""
    keep = battles.left != battles.right
    dropped = int((~keep).sum())
    if dropped == 0:
        return battles, 0
    lengths = (battles.left_len[keep], battles.right_len[keep]) if battles.has_lengths else (None, None)
    return Battles(battles.left[keep], battles.right[keep], battles.winner[keep], battles.tstamp[keep],
                   *lengths), dropped


def _self_battle_warning(dropped: int) -> list[str]:
    if not dropped:
        return []
    return [f"{dropped} battle(s) compared a contestant with itself under this grouping and were left out "
            "(group by mode or model+mode to rank prompting modes of one model)"]


def _or_minus_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _ranks(rating: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[int | None]:
    """CI-aware ranks among rated contestants; None for a contestant without counted battles."""
    valid = ~np.isnan(rating)
    ranks: list[int | None] = [None] * len(rating)
    for k, rank in zip(np.flatnonzero(valid), ci_rank(low[valid], high[valid]), strict=True):
        ranks[k] = int(rank)
    return ranks


def _row(k, bt, elo, totals, ranks, lc, ranks_lc) -> LeaderboardRow:
    name = bt.names[k]
    extra = {}
    if lc is not None:
        extra = {"rating_lc": float(lc.rating[k]), "ci_low_lc": float(lc.ci_low[k]),
                 "ci_high_lc": float(lc.ci_high[k]), "rank_lc": ranks_lc[k]}
    return LeaderboardRow(
        rank=ranks[k],
        contestant=name,
        rating=float(bt.rating[k]),
        ci_low=float(bt.ci_low[k]),
        ci_high=float(bt.ci_high[k]),
        elo=float(elo[name]),
        battles=int(totals.battles[k]),
        wins=int(totals.wins[k]),
        losses=int(totals.losses[k]),
        ties=int(totals.ties[k]),
        win_rate=float(totals.win_rate[k]),
        **extra,
    )


GROUPS_LISTED = 20  # a warning names at most this many groups (or regularised contestants)
FEW_BATTLES = 10  # below this, say that a contestant's interval rests on a handful of votes


def _warnings(bt: BTRatings, games: np.ndarray, scores: np.ndarray, prior: float | None, bias: PositionBias,
              lc: LengthControl | None) -> list[str]:
    """What a reader must know before trusting the table (`games`/`scores`: counted battles and points per
    contestant)."""
    notes = []
    index = {name: k for k, name in enumerate(bt.names)}
    for k, name in enumerate(bt.names):
        if games[k] == 0:
            notes.append(f"{name} has no counted battle (only both_bad votes, excluded): not rated.")
        elif prior is not None and prior > 0 and (scores[k] == 0 or scores[k] == games[k]):
            verb, side = ("never won", "below") if scores[k] == 0 else ("never lost", "above")
            notes.append(
                f"{name} {verb} in {int(games[k])} battles: its rating is finite only because of the prior "
                f"({prior:g} virtual tied battle per pair that met); read it as '{side} its opponents', "
                "not as a measurement."
            )
    if bt.regularised:
        detail = []
        for name in bt.regularised[:GROUPS_LISTED]:
            k = index[name]
            verb = "never won" if scores[k] == 0 else "never lost" if scores[k] == games[k] else "is one-sided"
            detail.append(f"{name} ({verb} in {int(games[k])} battles)")
        if len(bt.regularised) > GROUPS_LISTED:
            detail.append(f"... ({len(bt.regularised) - GROUPS_LISTED:,} more)")
        notes.append(
            f"No finite rating exists for {', '.join(detail)}: the plain maximum-likelihood rating would be "
            f"infinite, so {RESCUE_TIES:g} virtual tied battle per contestant was shared among its one-sided pairs "
            "(and nothing added anywhere else). Read the rating as 'below (or above) its opponents', not as a "
            "measurement."
        )
    few = [f"{bt.names[k]} ({int(games[k])})" for k in np.flatnonzero((games > 0) & (games < FEW_BATTLES))]
    if few:
        notes.append(f"Few battles: {', '.join(few[:8])}{' ...' if len(few) > 8 else ''}. With fewer than "
                     f"{FEW_BATTLES} battles a rating rests on a handful of votes: its interval is wide or, with a "
                     "single kind of outcome, says nothing. Vote more to narrow it.")
    rated_groups = [g for g in bt.groups if any(games[index[n]] > 0 for n in g)]
    if len(rated_groups) > 1:
        listed = " | ".join(", ".join(g) for g in rated_groups[:GROUPS_LISTED])
        listed += f" | ... ({len(rated_groups) - GROUPS_LISTED:,} more)" if len(rated_groups) > GROUPS_LISTED else ""
        notes.append(
            f"The contestants form {len(rated_groups)} groups that never met each other: {listed}. Ratings are "
            "anchored to a mean of 1000 within each group and are not comparable across groups."
        )
    if bias.significant:
        notes.append(
            f"Position bias: the left answer won {bias.rate:.1%} of {bias.decisive} decisive votes "
            f"(95% CI {bias.ci_low:.1%}-{bias.ci_high:.1%}); keep left/right randomised."
        )
    if bt.rescued_rounds:
        notes.append(f"{bt.rescued_rounds} of {bt.rounds} bootstrap rounds had a contestant that never won, never "
                     "lost or never played in the resample (no finite rating); they got the same minimal "
                     "regularisation.")
    if bt.failed_rounds == bt.rounds and bt.rounds:
        notes.append(f"None of the {bt.rounds} bootstrap rounds could be fitted: no confidence intervals.")
    elif bt.failed_rounds:
        notes.append(f"{bt.failed_rounds} of {bt.rounds} bootstrap rounds could not be fitted and were left out "
                     "of the CIs.")
    if lc is not None and math.isnan(lc.coef):
        notes.append("Length control: the two answers of a battle never differ in length, so there is no length "
                     "effect to estimate; the '_lc' columns equal the plain ratings.")
    elif lc is not None:
        notes.append(
            f"Length control: +{lc.coef:.1f} rating points per standard deviation of relative length difference "
            f"(95% CI {lc.coef_ci_low:.1f} to {lc.coef_ci_high:.1f}); '_lc' columns are strengths at equal length."
        )
    return notes


