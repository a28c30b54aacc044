"""Many contestants: the pair-wise fit (`ranking.many`) gives the dense fit's ratings and intervals on the
same data, and 10,000 contestants rank through the real CLI from a real SQLite file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from playground.leaderboard import board as board_module
from playground.leaderboard.board import build_leaderboard
from playground.ranking import Battles, ci_rank, fit_bradley_terry
from playground.ranking.many import fit_bradley_terry_many, pair_tally, percentiles
from playground.ranking.synthetic import Setup, SparseSetup, simulate, simulate_sparse
from tests.test_ranking_sparse import random_sparse_battles

REPO_ROOT = Path(__file__).resolve().parent.parent
RATING_TOL = 1e-6  # both converge to the same MLE (Newton steps below 1e-10 log-odds)
INTERVAL_TOL = 0.05  # Elo points: the bootstrap rounds stop at 1e-4 log-odds (0.007 points) in the pair-wise fit


def assert_same_fit(battles: Battles, **options) -> None:
    dense, many = fit_bradley_terry(battles, **options), fit_bradley_terry_many(battles, **options)
    assert many.names == dense.names and many.groups == dense.groups and many.regularised == dense.regularised
    assert (many.failed_rounds, many.rescued_rounds) == (dense.failed_rounds, dense.rescued_rounds)
    assert np.array_equal(np.isnan(many.rating), np.isnan(dense.rating))
    np.testing.assert_allclose(many.rating, dense.rating, atol=RATING_TOL, equal_nan=True)
    np.testing.assert_allclose(many.ci_low, dense.ci_low, atol=INTERVAL_TOL, equal_nan=True)
    np.testing.assert_allclose(many.ci_high, dense.ci_high, atol=INTERVAL_TOL, equal_nan=True)


@pytest.mark.parametrize("both_bad", ["tie", "exclude"])
def test_the_pair_wise_fit_equals_the_dense_fit_on_the_prior_study_set_up(both_bad: str) -> None:
    assert_same_fit(simulate(Setup(tie_rate=0.1), 0), rounds=200, both_bad=both_bad)


def test_the_pair_wise_fit_equals_the_dense_fit_with_a_sparse_contestant() -> None:
    assert_same_fit(simulate_sparse(SparseSetup(), 0), rounds=300)


def test_the_pair_wise_fit_equals_the_dense_fit_with_a_uniform_prior() -> None:
    assert_same_fit(simulate_sparse(SparseSetup(), 1), rounds=100, prior=1.0)


def test_the_pair_wise_fit_equals_the_dense_fit_on_random_sparse_boards() -> None:
    """Few battles, one-sided pairs, separate groups: the rescue rule and its per-round version agree."""
    rng = np.random.default_rng(11)
    for _ in range(60):
        battles = random_sparse_battles(rng)
        assert_same_fit(battles, rounds=40, both_bad="tie")


def test_the_intervals_do_not_depend_on_how_many_threads_fit_the_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rounds' draws are made in order before the chunks are fitted: 1 thread or 2, same intervals."""
    from playground.ranking import many

    battles = simulate_sparse(SparseSetup(), 2)
    monkeypatch.setattr(many, "CHUNK_ELEMENTS", 2_000)      # many small chunks, so two threads share them
    fits = []
    for threads in (1, 2):
        monkeypatch.setattr(many.FreeCores, "usable", lambda self, n=threads: n)
        fits.append(fit_bradley_terry_many(battles, rounds=60, seed=4))
    assert np.array_equal(fits[0].ci_low, fits[1].ci_low, equal_nan=True)
    assert np.array_equal(fits[0].ci_high, fits[1].ci_high, equal_nan=True)
    assert np.isfinite(fits[0].ci_low).any()


def test_the_leaderboard_rows_and_warnings_are_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    battles = simulate_sparse(SparseSetup(), 2)
    dense = build_leaderboard(battles, rounds=200)
    monkeypatch.setattr(board_module, "DENSE_MAX", 0)
    many = build_leaderboard(battles, rounds=200)
    assert [r.contestant for r in many.rows] == [r.contestant for r in dense.rows]
    assert [r.rank for r in many.rows] == [r.rank for r in dense.rows]
    for a, b in zip(many.rows, dense.rows, strict=True):
        assert (a.battles, a.wins, a.losses, a.ties, a.elo, a.win_rate) == (b.battles, b.wins, b.losses, b.ties,
                                                                            b.elo, b.win_rate)
        assert a.rating == pytest.approx(b.rating, abs=RATING_TOL)
        assert (a.ci_low, a.ci_high) == (pytest.approx(b.ci_low, abs=INTERVAL_TOL),
                                         pytest.approx(b.ci_high, abs=INTERVAL_TOL))
    assert many.warnings == dense.warnings
    np.testing.assert_array_equal(many.battle_counts, dense.battle_counts)
    np.testing.assert_allclose(many.win_rate, dense.win_rate, equal_nan=True)


def test_pair_counts_add_up_to_the_battles() -> None:
    battles = simulate(Setup(tie_rate=0.2), 3)
    pairs = pair_tally(battles)
    assert (pairs.pi < pairs.pj).all() and len(np.unique(pairs.pi * pairs.n + pairs.pj)) == len(pairs.pi)
    assert pairs.games("tie").sum() == len(battles)
    totals = pairs.totals()
    assert totals.battles.sum() == 2 * len(battles)


def test_ci_rank_by_search_equals_the_pairwise_count() -> None:
    rng = np.random.default_rng(5)
    low = rng.normal(0, 50, 300)
    high = low + rng.uniform(0, 80, 300)
    low[::37], high[::41] = np.nan, np.nan
    expected = 1 + (low[None, :] > high[:, None]).sum(1)
    np.testing.assert_array_equal(ci_rank(low, high), expected)


def test_percentiles_equal_numpys_nan_aware_percentiles() -> None:
    rng = np.random.default_rng(6)
    sample = rng.normal(size=(57, 40))
    sample[rng.random(sample.shape) < 0.1] = np.nan
    sample[:, 3] = np.nan
    low, high = percentiles(sample, 2.5, 97.5)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanpercentile(sample, [2.5, 97.5], axis=0)
    np.testing.assert_allclose(low, want[0], equal_nan=True)
    np.testing.assert_allclose(high, want[1], equal_nan=True)


CONTESTANTS = 10_000


def write_battles(path: Path, contestants: int, battles: int, seed: int = 0) -> None:
    """Arena JSONL: every contestant plays (a ring of battles), the rest drawn with skewed popularity."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0, 1, contestants)
    ring = np.arange(contestants)
    weight = rng.pareto(1.5, contestants) + 1
    extra = battles - contestants
    left = np.r_[ring, rng.choice(contestants, extra, p=weight / weight.sum())]
    right = np.r_[(ring + 1) % contestants, rng.choice(contestants, extra, p=weight / weight.sum())]
    same = left == right
    right[same] = (right[same] + 1) % contestants
    p = 1 / (1 + np.exp(strength[right] - strength[left]))
    u = rng.random(battles)
    winner = np.where(u < 0.1, "tie", np.where(rng.random(battles) < p, "model_a", "model_b"))
    with path.open("w") as out:
        for k in range(battles):
            out.write(json.dumps({"model_a": f"m{left[k]:05d}", "model_b": f"m{right[k]:05d}", "winner": winner[k],
                                  "anony": True, "tstamp": 1_682_000_000 + k}) + "\n")


def test_10k_contestants_rank_through_the_cli_from_a_real_database(tmp_path: Path) -> None:
    source, db = tmp_path / "battles.jsonl", tmp_path / "arena.db"
    write_battles(source, CONTESTANTS, 60_000)
    done = subprocess.run([sys.executable, "app.py", "import", "battles", str(source), "--db", str(db)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    done = subprocess.run([sys.executable, "app.py", "leaderboard", "--json", "--rounds", "40", "--db", str(db)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    rows = json.loads(done.stdout)
    assert len(rows) == CONTESTANTS and len({r["contestant"] for r in rows}) == CONTESTANTS
    for row in rows:
        assert row["rating"] is not None and row["ci_low"] is not None and row["ci_high"] is not None, row
        assert row["ci_low"] <= row["ci_high"]
    assert rows[0]["rank"] == 1 and max(r["rank"] for r in rows) > 1000  # the intervals separate the field
