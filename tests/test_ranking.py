"""ranking: Bradley-Terry recovers known strengths, matches a per-battle fit; Elo by hand; edge cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import minimize

from playground.errors import PlaygroundError
from playground.ranking import (
    Battles,
    RankingError,
    battle_count_matrix,
    ci_rank,
    comparison_groups,
    fit_bradley_terry,
    fit_length_controlled,
    online_elo,
    position_bias,
    predicted_win_matrix,
    tally_battles,
    fit_davidson,
    tie_probability_at_equal_strength,
    win_rate_matrix,
)
from playground.stats import wilson_interval
from playground.ranking.synthetic import Setup
from playground.ranking.synthetic import simulate as simulate_setup

TRUE = np.array([1100.0, 1060.0, 1020.0, 980.0, 940.0, 900.0])  # spread 200, mean 1000
NAMES = [f"model-{k}" for k in range(len(TRUE))]


def simulate(n_battles: int, seed: int, true: np.ndarray = TRUE, tie_rate: float = 0.0, length_effect: float = 0.0) -> Battles:
    """Battles drawn from a Bradley-Terry model with the given Elo-scale strengths."""
    rng = np.random.default_rng(seed)
    n = len(true)
    left = rng.integers(0, n, n_battles)
    right = (left + rng.integers(1, n, n_battles)) % n
    left_len, right_len = rng.integers(20, 800, n_battles), rng.integers(20, 800, n_battles)
    z = (left_len - right_len) / (left_len + right_len)
    z = z / z.std()
    p_left = 1 / (1 + 10 ** (-(true[left] - true[right] + length_effect * z) / 400))
    winner = np.where(rng.random(n_battles) < p_left, 0, 1)
    winner = np.where(rng.random(n_battles) < tie_rate, 2, winner)
    names = [f"model-{k}" for k in range(n)]
    return Battles.from_codes(names, left, right, winner, np.arange(n_battles, dtype=float), left_len, right_len)


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    i, j = np.triu_indices(len(a), 1)
    return float(np.mean(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])))


# ----------------------------------------------------------------------------- recovery


def test_bradley_terry_recovers_known_strengths_within_ci():
    fit = fit_bradley_terry(simulate(4000, seed=7), rounds=1000, seed=0)
    assert fit.names == tuple(NAMES)
    assert list(np.argsort(-fit.rating)) == list(range(6))  # the true order
    inside = (fit.ci_low <= TRUE) & (TRUE <= fit.ci_high)
    assert inside.sum() >= 5, (fit.rating, fit.ci_low, fit.ci_high)
    assert np.abs(fit.rating - TRUE).max() < 35
    assert np.all(fit.ci_high - fit.ci_low > 10) and np.all(fit.ci_high - fit.ci_low < 120)
    assert fit.rating.mean() == pytest.approx(1000.0)


def test_bootstrap_intervals_cover_the_truth_about_95_percent_of_the_time():
    covered = total = 0
    for seed in range(25):
        fit = fit_bradley_terry(simulate(1500, seed=100 + seed), rounds=300, seed=seed)
        covered += int(((fit.ci_low <= TRUE) & (TRUE <= fit.ci_high)).sum())
        total += len(TRUE)
    assert 0.85 <= covered / total <= 1.0, covered / total


def test_online_elo_orders_known_strengths():
    elo = online_elo(simulate(6000, seed=3))
    assert kendall_tau(np.array([elo[n] for n in NAMES]), TRUE) >= 0.7


# ----------------------------------------------------------------------------- exactness


def test_online_elo_matches_hand_computed_sequence():
    """K=4, scale 400, base 10, start 1000; E_a = 1 / (1 + 10 ** ((R_b - R_a) / 400))."""
    battles = Battles.from_rows(
        [
            # given out of order: replay must follow tstamp (stable)
            ("B", "C", "tie", 2.0),
            ("A", "B", "left", 1.0),
            ("C", "A", "left", 3.0),
            ("A", "B", "both_bad", 4.0),
        ]
    )
    # 1. A 1000 beats B 1000: E_A = 0.5 -> A = 1000 + 4 * 0.5 = 1002, B = 998
    # 2. B 998 ties C 1000: E_B = 1 / (1 + 10 ** (2 / 400)) = 0.4971218004
    #    B = 998 + 4 * (0.5 - 0.4971218004) = 998.0115127983, C = 999.9884872017
    # 3. C 999.9884872017 beats A 1002: E_C = 1 / (1 + 10 ** (2.0115127983 / 400)) = 0.4971052327
    #    C = 999.9884872017 + 4 * (1 - 0.4971052327) = 1002.0000662708, A = 999.9884209309
    # 4. A 999.9884209309 vs B 998.0115127983, both bad = tie: E_A = 0.5028449688
    #    A = 999.9884209309 + 4 * (0.5 - 0.5028449688) = 999.9770410557, B = 998.0228926735
    elo = online_elo(battles)
    assert elo["A"] == pytest.approx(999.9770410557, abs=1e-8)
    assert elo["B"] == pytest.approx(998.0228926735, abs=1e-8)
    assert elo["C"] == pytest.approx(1002.0000662708, abs=1e-8)
    excluded = online_elo(battles, both_bad="exclude")  # stops after step 3
    assert excluded == pytest.approx({"A": 999.9884209309, "B": 998.0115127983, "C": 1002.0000662708}, abs=1e-8)


def per_battle_logistic_fit(battles: Battles, prior: float = 0.0) -> np.ndarray:
    """Reference: unaggregated BT, one row per battle (+1 left, -1 right), a tie = two half-weight rows
    (win and loss), optional `prior` virtual tie per pair that met; fitted by BFGS, mean-anchored at 1000."""
    coded = battles.coded
    n = len(coded.names)
    data = []  # (left, right, label: 1 = left won, weight)
    for a, b, w in zip(coded.left, coded.right, coded.winner, strict=True):
        if w in (0, 1):
            data.append((a, b, 1.0 - w, 1.0))
        else:
            data += [(a, b, 1.0, 0.5), (a, b, 0.0, 0.5)]
    if prior:
        pairs = {tuple(sorted((int(a), int(b)))) for a, b in zip(coded.left, coded.right, strict=True)}
        for a, b in sorted(pairs):
            data += [(a, b, 1.0, prior / 2), (a, b, 0.0, prior / 2)]
    table = np.array(data, dtype=float)
    rows, y, wt = table[:, :2].astype(int), table[:, 2], table[:, 3]
    design = np.zeros((len(rows), n))
    design[np.arange(len(rows)), rows[:, 0]] = 1.0
    design[np.arange(len(rows)), rows[:, 1]] = -1.0

    def loss(theta):
        eta = design @ theta
        p = 1 / (1 + np.exp(-eta))
        return -(wt * (y * eta - np.logaddexp(0, eta))).sum(), -design.T @ (wt * (y - p))

    theta = minimize(loss, np.zeros(n), jac=True, method="BFGS", options={"gtol": 1e-10}).x
    return 1000 + 400 / math.log(10) * (theta - theta.mean())


@pytest.mark.parametrize("prior", [0.0, 0.5])
def test_bradley_terry_matches_per_battle_logistic_regression(prior):
    battles = simulate(400, seed=11, true=np.array([1150.0, 1050.0, 1000.0, 950.0, 850.0]), tie_rate=0.15)
    fit = fit_bradley_terry(battles, rounds=0, prior=prior)
    reference = per_battle_logistic_fit(battles, prior=prior)
    assert np.abs(fit.rating - reference).max() < 1.0
    assert np.abs(fit.rating - reference).max() < 1e-4  # in fact the same optimum


def test_rating_scale_is_elo_400_points_per_factor_10():
    # 10 wins to 1 loss (plus no prior): the MLE gap is exactly 400 * log10(10) = 400 points
    rows = [("A", "B", "left", float(k)) for k in range(10)] + [("A", "B", "right", 10.0)]
    fit = fit_bradley_terry(Battles.from_rows(rows), rounds=0, prior=0)
    assert fit.rating[0] - fit.rating[1] == pytest.approx(400.0, abs=1e-6)
    assert fit.rating.mean() == pytest.approx(1000.0)


def test_anchor_puts_the_named_contestant_at_the_anchor_rating():
    fit = fit_bradley_terry(simulate(800, seed=2), rounds=50, anchor="model-3", anchor_rating=1200)
    plain = fit_bradley_terry(simulate(800, seed=2), rounds=0)
    assert fit.rating[3] == pytest.approx(1200.0)
    assert np.allclose(fit.rating - fit.rating[3], plain.rating - plain.rating[3])
    assert fit.ci_low[3] == pytest.approx(1200.0) and fit.ci_high[3] == pytest.approx(1200.0)


# ----------------------------------------------------------------------------- ties, both_bad


def test_ties_are_half_a_win_and_both_bad_follows_the_option():
    base = [("A", "B", "left", 1.0), ("B", "C", "right", 2.0), ("A", "C", "left", 3.0), ("B", "A", "left", 4.0),
            ("C", "A", "tie", 5.0), ("C", "B", "left", 6.0)]
    with_bad = base + [("A", "B", "both_bad", 7.0), ("A", "C", "both_bad", 8.0)]
    as_ties = base + [("A", "B", "tie", 7.0), ("A", "C", "tie", 8.0)]
    tie_fit = fit_bradley_terry(Battles.from_rows(with_bad), rounds=0)
    assert np.allclose(tie_fit.rating, fit_bradley_terry(Battles.from_rows(as_ties), rounds=0).rating)
    excluded = fit_bradley_terry(Battles.from_rows(with_bad), rounds=0, both_bad="exclude")
    assert np.allclose(excluded.rating, fit_bradley_terry(Battles.from_rows(base), rounds=0).rating)
    assert not np.allclose(excluded.rating, tie_fit.rating)
    tally = tally_battles(Battles.from_rows(with_bad))
    a, b = tally.names.index("A"), tally.names.index("B")
    assert tally.scores("tie")[a, b] == 1 + 0.5  # one decisive win + half of the both_bad
    assert tally.scores("exclude")[a, b] == 1
    with pytest.raises(RankingError):
        fit_bradley_terry(Battles.from_rows(with_bad), both_bad="sometimes")


def test_only_both_bad_and_exclude_is_a_clear_error():
    with pytest.raises(RankingError, match="both_bad"):
        fit_bradley_terry(Battles.from_rows([("A", "B", "both_bad", 1.0)]), both_bad="exclude")


def test_contestant_without_a_win_gets_a_finite_rating_below_the_others():
    rng = np.random.default_rng(0)
    rows = [(a, b, str(rng.choice(["left", "right", "tie"])), float(k))
            for k, (a, b) in enumerate([("A", "B"), ("B", "C"), ("A", "C")] * 20)]
    rows += [("D", x, "right", 100.0 + k) for k, x in enumerate("ABC" * 5)]  # D never wins
    rows += [(x, "D", "left", 200.0 + k) for k, x in enumerate("ABC" * 3)]
    fit = fit_bradley_terry(Battles.from_rows(rows), rounds=200)
    d = fit.names.index("D")
    assert np.all(np.isfinite(fit.rating)) and np.all(np.isfinite(fit.ci_low))
    assert fit.rating[d] < np.delete(fit.rating, d).min() - 150
    assert fit.failed_rounds == 0
    assert fit.regularised == ("D",)  # named, for the warning
    with pytest.raises(RankingError, match="prior"):
        fit_bradley_terry(Battles.from_rows(rows), rounds=0, prior=0)


def test_regularisation_touches_only_the_pairs_without_a_finite_mle():
    """Where the MLE exists, the default is the plain MLE: identical to prior=0, unlike a uniform prior."""
    battles = simulate(600, seed=3)
    plain = fit_bradley_terry(battles, rounds=0)
    assert plain.regularised == ()
    np.testing.assert_allclose(plain.rating, fit_bradley_terry(battles, rounds=0, prior=0).rating, atol=1e-6)
    np.testing.assert_allclose(plain.rating, per_battle_logistic_fit(battles, prior=0.0), atol=0.05)
    assert np.abs(plain.rating - fit_bradley_terry(battles, rounds=0, prior=0.5).rating).max() > 0.5
    # A group that never lost to the rest (no single contestant is unbeaten): its members are named
    rows = [("A", "B", "left", 1.0), ("B", "A", "left", 2.0), ("C", "D", "left", 3.0), ("D", "C", "left", 4.0),
            ("A", "C", "left", 5.0), ("B", "D", "left", 6.0)]
    fit = fit_bradley_terry(Battles.from_rows(rows), rounds=50)
    assert fit.regularised == ("A", "B") or fit.regularised == ("C", "D")
    assert np.all(np.isfinite(fit.rating)) and fit.rating[:2].mean() > fit.rating[2:].mean()


# ----------------------------------------------------------------------------- the prior study (fast)


def mean_errors(prior, seeds):
    """Each contestant's error averaged over fixed seeds of the prior study's set-up (10k battles, 40
    contestants, skewed pairing), point fits only (~6 ms each)."""
    setup = Setup()
    true = setup.true_ratings()
    return np.mean([fit_bradley_terry(simulate_setup(setup, seed), prior=prior, rounds=0).rating - true
                    for seed in seeds], 0)


def pooled_coverage(prior, seeds, rounds=300):
    """Share of (contestant, seed) 95% bootstrap intervals that hold the true rating, and failed rounds."""
    setup = Setup()
    true = setup.true_ratings()
    inside, failed = [], 0
    for seed in seeds:
        fit = fit_bradley_terry(simulate_setup(setup, seed), prior=prior, rounds=rounds, seed=seed)
        inside.append((fit.ci_low <= true) & (true <= fit.ci_high))
        failed += fit.failed_rounds
    return float(np.mean(inside)), failed


def test_default_fit_mean_error_is_within_15_points_for_every_contestant():
    """What this decides, and how precisely: one seed's error for the weakest contestant (~95 battles)
    has a standard deviation of ~64 points, so its mean over these 400 fixed seeds is known to +-6
    points (95%). The bench (bench/bench_priors.py, 2,000 seeds) puts it at -8.4 +- 2.8; here it must
    be within the 15-point target for every contestant. The old default (0.5 virtual ties per pair)
    is off by ~+70 for the weakest and fails the same check even on 50 seeds."""
    errors = mean_errors(None, range(400))
    assert np.abs(errors).max() <= 15, errors.round(1)
    assert errors[0] < 0  # the plain MLE pushes the weakest outwards (small-sample bias), never inwards here
    old = mean_errors(0.5, range(50))
    assert old[0] > 40 and np.abs(old).max() > 15, old.round(1)


def test_default_intervals_cover_the_truth():
    """Pooled coverage over 10 seeds x 40 contestants (400 intervals, 300 bootstrap rounds each): a
    share known to about +-0.025, so this checks 'near 0.95, not the old prior's 0.80' (>= 0.90),
    not the 0.93 target itself, which the bench measures per contestant over 200 seeds (0.939 mean)."""
    coverage, failed = pooled_coverage(None, range(10))
    assert coverage >= 0.90 and failed == 0, coverage
    old_coverage, _ = pooled_coverage(0.5, range(5))
    assert old_coverage < 0.85, old_coverage


def test_bootstrap_round_without_a_finite_mle_is_counted_not_fatal():
    """Seed 1: the weakest contestant won 3 of 90; about 6% of resamples give it no win at all.

    The old code raised numpy.linalg.LinAlgError here (prior=0); now such rounds are dropped and
    counted (prior=0) or get the default's minimal regularisation (prior=None)."""
    battles = simulate_setup(Setup(), 1)
    strict = fit_bradley_terry(battles, prior=0, rounds=300, seed=1)
    assert 0 < strict.failed_rounds < 60 and np.isfinite(strict.ci_low).all()
    default = fit_bradley_terry(battles, rounds=300, seed=1)
    assert default.failed_rounds == 0 and default.rescued_rounds > 0
    assert default.ci_low[0] < strict.ci_low[0]  # the rescued rounds keep the low tail of the weakest


def test_every_round_failing_gives_nan_intervals_not_an_exception():
    rows = [("A", "B", "left", 1.0), ("B", "A", "left", 2.0)]  # half the resamples have a one-sided pair
    fit = fit_bradley_terry(Battles.from_rows(rows), prior=0, rounds=200, seed=0)
    assert 0 < fit.failed_rounds < 200 and np.isfinite(fit.rating).all()


# ----------------------------------------------------------------------------- ties modelled


@pytest.mark.parametrize("nu", [0.2, 1.0])
def test_davidson_recovers_the_tie_parameter_and_the_strengths(nu):
    setup = Setup(n_battles=4000, n_contestants=8, skew=1.0, tie_nu=nu)
    battles = simulate_setup(setup, 0)
    fit = fit_davidson(battles, rounds=300, seed=0)
    half = fit_bradley_terry(battles, rounds=300, seed=0)
    true = setup.true_ratings()
    assert fit.tie_model == "davidson" and fit.nu_ci[0] <= nu <= fit.nu_ci[1]
    assert tie_probability_at_equal_strength(fit.nu) == pytest.approx(nu / (2 + nu), rel=0.15)
    assert np.abs(fit.rating - true).max() < 40
    assert np.mean((fit.ci_low <= true) & (true <= fit.ci_high)) >= 0.75
    # tie-as-half-win squeezes the spread more the more ties there are
    assert np.ptp(half.rating) < np.ptp(fit.rating)
    assert list(np.argsort(fit.rating)) == list(np.argsort(half.rating)) or kendall_tau(fit.rating, half.rating) > 0.9


def test_davidson_without_ties_is_the_plain_fit_and_nu_zero():
    battles = simulate(2000, seed=2)
    fit = fit_davidson(battles, rounds=50, seed=0)
    assert fit.nu == 0.0
    np.testing.assert_allclose(fit.rating, fit_bradley_terry(battles, rounds=0).rating, atol=0.01)


def test_disconnected_groups_are_detected():
    rows = [("A", "B", "left", 1.0), ("B", "A", "tie", 2.0), ("C", "D", "right", 3.0), ("D", "E", "left", 4.0)]
    battles = Battles.from_rows(rows)
    assert comparison_groups(tally_battles(battles)) == [("C", "D", "E"), ("A", "B")]
    fit = fit_bradley_terry(battles, rounds=100)
    assert fit.groups == (("C", "D", "E"), ("A", "B"))
    assert fit.rating[:2].mean() == pytest.approx(1000.0)  # anchored within each group
    assert fit.rating[2:].mean() == pytest.approx(1000.0)
    assert np.all(np.isfinite(fit.ci_low))


def test_single_battle():
    fit = fit_bradley_terry(Battles.from_rows([{"left": "x", "right": "y", "winner": "right", "tstamp": 5}]), rounds=100)
    assert fit.names == ("x", "y")
    assert fit.rating[1] > fit.rating[0] and np.all(np.isfinite(fit.rating))
    assert fit.ci_low[1] <= fit.rating[1] <= fit.ci_high[1]
    assert online_elo(Battles.from_rows([("x", "y", "right", 5.0)])) == {"x": 998.0, "y": 1002.0}


def test_no_battles_is_a_clear_error():
    empty = Battles.from_rows([])
    for call in (fit_bradley_terry, online_elo):
        with pytest.raises(RankingError, match="no battles to rank: vote in the Arena or import battles"):
            call(empty)
    assert issubclass(RankingError, ValueError) and issubclass(RankingError, PlaygroundError)


def test_bad_input_is_rejected_with_a_message():
    with pytest.raises(RankingError, match="unknown winner 'a'"):
        _ = Battles.from_rows([("A", "B", "a", 1.0)]).coded
    with pytest.raises(RankingError, match="differ in length"):
        Battles(np.array(["A"]), np.array(["B", "C"]), np.array(["left"]), np.array([1.0]))
    with pytest.raises(RankingError, match="non-empty strings"):
        Battles.from_rows([("A", None, "left", 1.0)])


def test_string_arrays_and_codes_give_the_same_fit():
    coded = simulate(500, seed=5)
    plain = Battles(coded.left.astype(str), coded.right.astype(str), coded.winner.astype(str), coded.tstamp)
    assert plain.names == coded.names
    assert np.allclose(fit_bradley_terry(plain, rounds=20).ci_low, fit_bradley_terry(coded, rounds=20).ci_low)


# ----------------------------------------------------------------------------- diagnostics


def test_position_bias_wilson_interval():
    rows = [("A", "B", "left", float(k)) for k in range(60)] + [("A", "B", "right", 100.0 + k) for k in range(40)]
    rows += [("A", "B", "tie", 200.0)] * 7  # ties are not decisive
    bias = position_bias(Battles.from_rows(rows))
    assert (bias.left_wins, bias.decisive, bias.rate) == (60, 100, 0.6)
    z, n, p = 1.959963984540054, 100, 0.6
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (bias.ci_low, bias.ci_high) == pytest.approx((centre - half, centre + half))
    assert bias.ci_low == pytest.approx(0.5020, abs=1e-4) and bias.significant
    assert all(math.isnan(x) for x in wilson_interval(0, 0))  # nothing decisive: no interval


def test_matrices():
    rows = [("A", "B", "left", 1.0), ("A", "B", "left", 2.0), ("B", "A", "tie", 3.0), ("B", "C", "both_bad", 4.0)]
    tally = tally_battles(Battles.from_rows(rows))
    rate = win_rate_matrix(tally)
    assert rate[0, 1] == pytest.approx(2.5 / 3) and rate[1, 0] == pytest.approx(0.5 / 3)
    assert math.isnan(rate[0, 2]) and math.isnan(rate[0, 0])
    assert rate[1, 2] == 0.5 and math.isnan(win_rate_matrix(tally, "exclude")[1, 2])
    assert battle_count_matrix(tally).tolist() == [[0, 3, 0], [3, 0, 1], [0, 1, 0]]
    pred = predicted_win_matrix(np.array([1400.0, 1000.0]))
    assert pred[0, 1] == pytest.approx(10 / 11) and pred[1, 0] == pytest.approx(1 / 11)


def test_ci_rank_counts_contestants_entirely_above():
    low, high = np.array([1100, 1050, 1000, 900.0]), np.array([1200, 1150, 1090, 1040.0])
    assert ci_rank(low, high).tolist() == [1, 1, 2, 3]


# ----------------------------------------------------------------------------- length control


def test_length_control_recovers_a_length_effect_and_removes_it_from_ratings():
    battles = simulate(20000, seed=21, length_effect=60.0)
    lc = fit_length_controlled(battles, rounds=200, seed=1)
    assert lc.coef_ci_low < 60.0 < lc.coef_ci_high and abs(lc.coef - 60.0) < 8
    assert np.abs(lc.rating - TRUE).max() < 20
    null = fit_length_controlled(simulate(20000, seed=22), rounds=200, seed=1)
    assert abs(null.coef) < 8
    with pytest.raises(RankingError, match="lengths"):
        fit_length_controlled(Battles.from_rows([("A", "B", "left", 1.0)]))
