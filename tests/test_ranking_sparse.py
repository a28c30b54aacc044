"""Bootstrap intervals on sparse data: one contestant with few battles must not move anyone else's.

Each bootstrap resample is checked for a finite MLE from its own win graph (strong connectivity),
the way the full data is; these tests check that rule against an independent reachability check
over many random sparse graphs, and the intervals against known strengths.
"""
from __future__ import annotations

import numpy as np

from playground.leaderboard.board import build_leaderboard
from playground.ranking import Battles, ci_rank, fit_bradley_terry, fit_davidson, tally_battles
from playground.ranking.bradley_terry import pair_cells, prior_per_pair
from playground.ranking.fitting import rescue_shares
from playground.ranking.synthetic import SparseSetup, simulate_sparse


def strongly_connected_per_group(players: int, gi, gj, for_i, for_j) -> bool:
    """Reference: within each set of contestants that met (the groups given), everyone reaches everyone
    along 'scored a point against' edges (transitive closure by repeated squaring, no scipy)."""
    reach = np.eye(players, dtype=bool)
    touch = np.eye(players, dtype=bool)
    for i, j, a, b in zip(gi, gj, for_i, for_j, strict=True):
        touch[i, j] = touch[j, i] = True
        reach[i, j] |= a > 1e-12
        reach[j, i] |= b > 1e-12
    for _ in range(players.bit_length() + 1):
        reach = reach | ((reach.astype(int) @ reach.astype(int)) > 0)
        touch = touch | ((touch.astype(int) @ touch.astype(int)) > 0)
    return bool((reach | ~touch).all())


def random_sparse_battles(rng: np.random.Generator) -> Battles:
    """A few contestants, few battles, skewed strengths: one-sided pairs are common."""
    players = int(rng.integers(3, 9))
    strength = rng.normal(0, 1.5, players)
    m = int(rng.integers(players, 8 * players))
    left = rng.integers(0, players, m)
    right = (left + rng.integers(1, players, m)) % players
    p = 1 / (1 + np.exp(strength[right] - strength[left]))
    u = rng.random(m)
    winner = np.where(u < 0.08, 2, np.where(rng.random(m) < p, 0, 1))
    names = [f"p{k}" for k in range(players)]
    return Battles.from_codes(names, left, right, winner, np.arange(m, dtype=float))


def test_rescue_shares_flags_exactly_the_rounds_without_a_strongly_connected_win_graph():
    """200 random (rounds x pairs) point tables against the reference reachability check."""
    rng = np.random.default_rng(7)
    checked = flagged = 0
    for _ in range(200):
        players = int(rng.integers(2, 8))
        gi, gj = np.triu_indices(players, 1)
        keep = rng.random(len(gi)) < rng.uniform(0.3, 1.0)
        gi, gj = gi[keep], gj[keep]
        rounds = 5
        n = rng.integers(0, 4, (rounds, len(gi))).astype(float)
        a = np.floor(rng.random((rounds, len(gi))) * (n + 1))
        share = rescue_shares(gi, gj, players, a, n - a)
        for r in range(rounds):
            expected = strongly_connected_per_group(players, gi, gj, a[r], n[r] - a[r])
            assert share[r].any() == (not expected), (players, gi, gj, a[r], n[r])
            assert (share[r] > 0).sum() == 0 or (share[r][share[r] > 0] <= 1).all()
            checked += 1
            flagged += int(share[r].any())
    assert 0.2 * checked < flagged < 0.9 * checked  # both kinds of round were exercised


def test_rescued_rounds_are_exactly_the_resamples_without_a_finite_mle_over_random_sparse_graphs():
    """100 random sparse boards: the warning's count equals the resamples that needed help, none
    fails, every interval is finite and holds its rating; the strict fit drops those same rounds."""
    rng = np.random.default_rng(11)
    rounds, seen_rescue = 60, 0
    for case in range(100):
        battles = random_sparse_battles(rng)
        tally = tally_battles(battles)
        virtual, _ = prior_per_pair(tally, "tie", None)
        cells = pair_cells(tally, "tie", virtual)
        draws = np.random.default_rng(case).multinomial(cells.total, cells.counts / cells.total, size=rounds)
        a, n = cells.groups_from(draws.astype(float))
        need = sum(not strongly_connected_per_group(cells.n_players, cells.gi, cells.gj, a[r], n[r] - a[r])
                   for r in range(rounds))
        fit = fit_bradley_terry(battles, rounds=rounds, seed=case)
        assert fit.rescued_rounds == need, case
        assert fit.failed_rounds == 0, case
        rated = np.isfinite(fit.rating)
        assert np.isfinite(fit.ci_low[rated]).all() and np.isfinite(fit.ci_high[rated]).all()
        assert (fit.ci_low[rated] <= fit.rating[rated] + 1e-6).all() and (fit.rating[rated] <= fit.ci_high[rated] + 1e-6).all()
        seen_rescue += need
    assert seen_rescue > 200  # the rule was exercised, not vacuous


def rank_and_offsets(fit, names):
    """CI ranks, and each interval's ends relative to the contestant's own rating, by name."""
    ranks = ci_rank(fit.ci_low, fit.ci_high)
    index = {name: k for k, name in enumerate(fit.names)}
    return ({name: int(ranks[index[name]]) for name in names},
            {name: (fit.ci_low[index[name]] - fit.rating[index[name]], fit.ci_high[index[name]] - fit.rating[index[name]])
             for name in names})


def test_a_sparse_contestant_does_not_move_anyone_elses_interval():
    """8 models, ~1,100 battles, 'rare' with 15 battles (2 wins, 13 losses), known strengths, 6 seeds.

    Every regular's interval (relative to its rating: with rare in the mean, every rating shifts
    by the same constant) stays within 20 points of its interval with rare removed, the regulars'
    ranks are the same as without rare, and rare's own interval is finite and below the field.
    The old code (a 40-nat runaway threshold) gave every regular rank 1 and upper bounds ~750
    points too high on these data."""
    setup = SparseSetup()
    regulars = setup.names()[:-1]
    for seed in range(6):
        with_rare = fit_bradley_terry(simulate_sparse(setup, seed), rounds=1000, seed=seed)
        without = fit_bradley_terry(simulate_sparse(setup, seed, with_rare=False), rounds=1000, seed=seed)
        ranks, offsets = rank_and_offsets(with_rare, regulars)
        ranks_alone, offsets_alone = rank_and_offsets(without, regulars)
        # Ranks are a step function of the bounds: a bound that moves by Monte Carlo noise across
        # another's may move a rank by one, never the whole field to rank 1 as before.
        assert all(abs(ranks[name] - ranks_alone[name]) <= 1 for name in regulars), (seed, ranks, ranks_alone)
        assert list(ranks.values()).count(1) <= list(ranks_alone.values()).count(1) + 1, (seed, ranks)
        assert len(set(ranks.values())) >= 3, ranks  # the board still separates the field
        for name in regulars:
            assert np.allclose(offsets[name], offsets_alone[name], atol=20), (seed, name, offsets[name], offsets_alone[name])
        rare = with_rare.names.index("rare")
        assert with_rare.failed_rounds == 0 and with_rare.rescued_rounds > 50
        assert 0 < with_rare.ci_low[rare] < with_rare.rating[rare] < with_rare.ci_high[rare] < 1000
        rank_rare = ci_rank(with_rare.ci_low, with_rare.ci_high)[rare]
        assert rank_rare >= 5  # below the strongest regulars


def test_davidson_bootstrap_follows_the_same_rule():
    setup = SparseSetup()
    regulars = setup.names()[:-1]
    fit = fit_davidson(simulate_sparse(setup, 0), rounds=400, seed=0)
    alone = fit_davidson(simulate_sparse(setup, 0, with_rare=False), rounds=400, seed=0)
    _, offsets = rank_and_offsets(fit, regulars)
    _, offsets_alone = rank_and_offsets(alone, regulars)
    assert fit.rescued_rounds > 20 and fit.failed_rounds == 0
    for name in regulars:
        assert np.allclose(offsets[name], offsets_alone[name], atol=20), (name, offsets[name], offsets_alone[name])


def test_the_leaderboard_warning_counts_the_rounds_that_needed_help():
    battles = simulate_sparse(SparseSetup(), 3)
    board = build_leaderboard(battles, rounds=500, seed=3)
    fit = fit_bradley_terry(battles, rounds=500, seed=3)
    assert fit.rescued_rounds > 0
    assert any(note.startswith(f"{fit.rescued_rounds} of 500 bootstrap rounds") for note in board.warnings), board.warnings
