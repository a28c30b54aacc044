"""Ranking speed on 1,000,000 synthetic battles among 20 contestants, against same-run baselines.

- Bradley-Terry fit + 1,000-round bootstrap on aggregated counts (target <= 2 s), against one
  per-battle logistic-regression fit in the style of Chatbot Arena's compute_mle_elo (rows
  duplicated so a tie is one win and one loss, +-ln(10) design, no intercept, L-BFGS over rows).
  The baseline is timed once; its 100- and 1,000-round bootstrap cost is extrapolated.
- Online Elo (target <= 1 s) against the per-row loop in the style of Arena's compute_elo
  (string labels, a dict of ratings, base ** (...)).
- Leaderboard from a SQLite database holding the 1M battles: load_battles + build_leaderboard.
Run: python bench/bench_ranking.py [--battles 1000000] [--contestants 20] [--no-db]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from playground.leaderboard import build_leaderboard, load_battles  # noqa: E402
from playground.ranking import WINNERS, Battles, fit_bradley_terry, online_elo  # noqa: E402

TARGET_BT_BOOTSTRAP_S = 2.0
TARGET_ELO_S = 1.0


def synthetic_battles(n_battles: int, n_contestants: int, seed: int = 0) -> tuple[Battles, np.ndarray]:
    """Bradley-Terry outcomes from ratings spread over 400 points; 10% ties, 3% both bad."""
    rng = np.random.default_rng(seed)
    true = np.linspace(800, 1200, n_contestants)
    left = rng.integers(0, n_contestants, n_battles)
    right = (left + rng.integers(1, n_contestants, n_battles)) % n_contestants
    p_left = 1 / (1 + 10 ** ((true[right] - true[left]) / 400))
    u = rng.random(n_battles)
    winner = np.where(u < 0.10, 2, np.where(u < 0.13, 3, np.where(rng.random(n_battles) < p_left, 0, 1)))
    tstamp = 1.7e9 + np.sort(rng.random(n_battles)) * 3e7
    names = [f"model-{k:02d}" for k in range(n_contestants)]
    lengths = rng.integers(20, 300, (2, n_battles))
    return Battles.from_codes(names, left, right, winner, tstamp, lengths[0], lengths[1]), true


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    """Median wall time of `repeat` calls and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def arena_style_mle(battles: Battles) -> np.ndarray:
    """Baseline: compute_mle_elo's per-battle logistic regression, with scipy L-BFGS instead of sklearn."""
    coded = battles.coded
    n = len(coded.names)
    keep = np.ones(len(battles), bool)
    left, right, winner = coded.left[keep], coded.right[keep], coded.winner[keep]
    # duplicate every battle: first copy says "left won" for wins and ties, second copy for wins only
    left2, right2 = np.concatenate([left, left]), np.concatenate([right, right])
    y = np.concatenate([(winner == 0) | (winner >= 2), winner == 0]).astype(float)
    scale = math.log(10)

    def loss(theta):
        eta = scale * (theta[left2] - theta[right2])
        resid = y - 1 / (1 + np.exp(-eta))
        grad = scale * (np.bincount(left2, resid, n) - np.bincount(right2, resid, n))
        return -(y * eta - np.logaddexp(0, eta)).sum(), -grad

    theta = minimize(loss, np.zeros(n), jac=True, method="L-BFGS-B", options={"gtol": 1e-6, "maxiter": 1000}).x
    return 400 * theta + 1000 - (400 * theta).mean()


def arena_style_elo(left: list[str], right: list[str], winner: list[str]) -> dict[str, float]:
    """Baseline: compute_elo's loop (string keys, dict ratings, base ** (...)) over Python rows."""
    rating: dict[str, float] = defaultdict(lambda: 1000.0)
    for a, b, w in zip(left, right, winner):
        ra, rb = rating[a], rating[b]
        ea = 1 / (1 + 10 ** ((rb - ra) / 400))
        eb = 1 / (1 + 10 ** ((ra - rb) / 400))
        sa = 1.0 if w == "left" else 0.0 if w == "right" else 0.5
        rating[a] += 4 * (sa - ea)
        rating[b] += 4 * (1 - sa - eb)
    return dict(rating)


def fill_database(path: Path, battles: Battles) -> float:
    """Write the battles (2 generations, 1 battle, 1 vote each) with executemany in one transaction."""
    from storage import open_database

    start = time.perf_counter()
    db = open_database(path)
    conn = db.conn
    coded, n = battles.coded, len(battles)
    names, lens = coded.names, (battles.left_len.astype(int).tolist(), battles.right_len.astype(int).tolist())
    created, conversation = "2024-01-01T00:00:00+00:00", '[{"role": "user", "content": "q"}]'
    tstamp = battles.tstamp.tolist()
    left, right = coded.left.tolist(), coded.right.tolist()
    winners = [WINNERS[w] for w in coded.winner.tolist()]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO generations (id, created_at, tstamp, model_id, mode, conversation, output, source) "
        "VALUES (?, ?, ?, ?, 'zero_shot', ?, ?, 'local')",
        ((2 * k + 1 + side, created, tstamp[k], names[(left, right)[side][k]], conversation, "x" * lens[side][k])
         for k in range(n) for side in (0, 1)),
    )
    conn.executemany(
        "INSERT INTO battles (id, created_at, tstamp, session_id, left_generation_id, right_generation_id, "
        "left_model, right_model, left_mode, right_mode, anonymous, source) "
        "VALUES (?, ?, ?, 's', ?, ?, ?, ?, 'zero_shot', 'zero_shot', 1, 'playground')",
        ((k + 1, created, tstamp[k], 2 * k + 1, 2 * k + 2, names[left[k]], names[right[k]]) for k in range(n)),
    )
    conn.executemany(
        "INSERT INTO votes (battle_id, winner, session_id, created_at, tstamp) VALUES (?, ?, 's', ?, ?)",
        ((k + 1, winners[k], created, tstamp[k]) for k in range(n)),
    )
    conn.execute("COMMIT")
    db.close()
    return time.perf_counter() - start


def bench_database(battles: Battles) -> dict[str, float]:
    from storage import open_database

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        fill_s = fill_database(path, battles)
        db = open_database(path)
        load_s, loaded = timed(lambda: load_battles(db), repeat=1)
        load_plain_s, _ = timed(lambda: load_battles(db, with_lengths=False), repeat=1)
        fit_s, board = timed(lambda: build_leaderboard(loaded, rounds=1000, seed=0), repeat=1)
        db.close()
    assert len(loaded) == len(battles) and len(board.rows) == len(battles.names)
    return {"db_fill_s": fill_s, "db_load_s": load_s, "db_load_no_lengths_s": load_plain_s,
            "db_build_leaderboard_s": fit_s, "db_load_plus_leaderboard_s": load_s + fit_s}


def main(n_battles: int = 1_000_000, n_contestants: int = 20, with_db: bool = True) -> dict[str, float]:
    battles, true = synthetic_battles(n_battles, n_contestants)
    fit_boot_s, fit = timed(lambda: fit_bradley_terry(battles, rounds=1000, seed=0))
    fit_once_s, _ = timed(lambda: fit_bradley_terry(battles, rounds=0))
    base_fit_s, base_rating = timed(lambda: arena_style_mle(battles), repeat=1)
    elo_s, _ = timed(lambda: online_elo(battles))
    rows = (battles.left.tolist(), battles.right.tolist(), battles.winner.tolist())
    base_elo_s, _ = timed(lambda: arena_style_elo(*rows), repeat=1)
    plain = Battles(battles.left.astype(str), battles.right.astype(str), battles.winner, battles.tstamp)
    encode_s, _ = timed(lambda: Battles(plain.left, plain.right, plain.winner, plain.tstamp).coded, repeat=1)
    agreement = float(np.abs(fit_bradley_terry(battles, rounds=0, prior=0).rating - base_rating).max())
    results = {
        "battles": n_battles, "contestants": n_contestants,
        "bt_fit_plus_1000_bootstrap_s": fit_boot_s, "bt_single_fit_s": fit_once_s,
        "baseline_single_fit_s": base_fit_s,
        "baseline_100_rounds_extrapolated_s": 101 * base_fit_s,
        "baseline_1000_rounds_extrapolated_s": 1001 * base_fit_s,
        "online_elo_s": elo_s, "baseline_elo_s": base_elo_s, "encode_string_labels_s": encode_s,
        "max_abs_diff_vs_baseline_elo_points": agreement,
        "max_abs_error_vs_true_ratings": float(np.abs(fit.rating - (true - true.mean() + 1000)).max()),
    }
    print(f"{n_battles:,} battles, {n_contestants} contestants (2 cores here)")
    print(f"Bradley-Terry fit + 1000-round bootstrap: {fit_boot_s:.3f} s (target <= {TARGET_BT_BOOTSTRAP_S} s)"
          f" {'OK' if fit_boot_s <= TARGET_BT_BOOTSTRAP_S else 'OVER TARGET'}")
    print(f"  single fit on counts: {fit_once_s * 1000:.1f} ms; baseline single per-battle fit "
          f"(Arena compute_mle_elo style, L-BFGS over {2 * n_battles:,} rows): {base_fit_s:.2f} s "
          f"-> single fit {base_fit_s / fit_once_s:.0f}x faster")
    print(f"  ratio: our fit + 1000 bootstrap rounds vs ONE baseline fit: {base_fit_s / fit_boot_s:.1f}x faster")
    print(f"  EXTRAPOLATION (not measured): baseline fit + 100 bootstrap rounds ~ {101 * base_fit_s:.0f} s, "
          f"+ 1000 rounds ~ {1001 * base_fit_s:.0f} s -> {1001 * base_fit_s / fit_boot_s:.0f}x for 1000 rounds")
    print(f"  agreement with the baseline (prior 0): max |diff| = {agreement:.4f} Elo points; "
          f"max |error| vs true ratings = {results['max_abs_error_vs_true_ratings']:.1f}")
    print(f"Online Elo: {elo_s:.3f} s (target <= {TARGET_ELO_S} s) {'OK' if elo_s <= TARGET_ELO_S else 'OVER TARGET'}; "
          f"baseline Arena-style loop {base_elo_s:.3f} s -> {base_elo_s / elo_s:.1f}x")
    print(f"  (encoding string labels once, for Battles built from raw string arrays: {encode_s:.3f} s)")
    if with_db:
        results.update(bench_database(battles))
        print(f"Database with {n_battles:,} voted battles (filled in {results['db_fill_s']:.1f} s, not timed): "
              f"load {results['db_load_s']:.2f} s (without lengths {results['db_load_no_lengths_s']:.2f} s) + "
              f"leaderboard (BT + 1000 bootstrap + Elo + matrices) {results['db_build_leaderboard_s']:.2f} s "
              f"= {results['db_load_plus_leaderboard_s']:.2f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--contestants", type=int, default=20)
    parser.add_argument("--no-db", action="store_true", help="skip the database part (it writes ~0.5 GB to /tmp)")
    options = parser.parse_args()
    main(options.battles, options.contestants, with_db=not options.no_db)
