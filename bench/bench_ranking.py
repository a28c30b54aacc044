"""Ranking speed on 1,000,000 synthetic battles among 20 contestants, against same-run baselines.

- Bradley-Terry fit + 1,000-round bootstrap on aggregated counts (target <= 2 s), against one
  per-battle logistic-regression fit in the style of Chatbot Arena's compute_mle_elo (rows
  duplicated so a tie is one win and one loss, +-ln(10) design, no intercept, L-BFGS over rows).
  The baseline is timed once; its 100- and 1,000-round bootstrap cost is extrapolated.
- Online Elo (target <= 1 s) against the per-row loop in the style of Arena's compute_elo
  (string labels, a dict of ratings, base ** (...)).
- Leaderboard from a SQLite database holding the 1M battles: load_battles + build_leaderboard.
- `--many`: 10,000 contestants in 200,000 battles (skewed popularity, every contestant plays) from a
  SQLite file, load + build_leaderboard with the default rounds (target < 10 s), against the dense
  path and the pair-wise path on a 500-contestant board in the same run; and the large board's
  100-round intervals against a `--check-rounds` reference with another seed (are 100 rounds enough?).
Run: python bench/bench_ranking.py [--battles 1000000] [--contestants 20] [--no-db]
     python bench/bench_ranking.py --many [--contestants 10000 --battles 200000 --check-rounds 400]
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Timing, timed  # noqa: E402,F401  (bench/ is on sys.path when run)

import numpy as np  # noqa: E402
from scipy.optimize import minimize  # noqa: E402

from playground.leaderboard import build_leaderboard, load_battles  # noqa: E402
from playground.ranking import Battles, fit_bradley_terry, online_elo  # noqa: E402
from playground.verdicts import WINNERS  # noqa: E402

TARGET_BT_BOOTSTRAP_S = 2.0
TARGET_ELO_S = 1.0
TARGET_MANY_S = 10.0


def many_battles(n_battles: int, n_contestants: int, seed: int = 0) -> Battles:
    """A sparse Arena: ratings N(1000, 150), popularity Pareto(1.5) (a few models in most battles, most in
    a handful), every contestant in at least two battles (a ring), 10% ties, 3% both bad."""
    rng = np.random.default_rng(seed)
    true = rng.normal(1000, 150, n_contestants)
    weight = rng.pareto(1.5, n_contestants) + 1
    weight /= weight.sum()
    ring = np.arange(n_contestants)
    extra = n_battles - n_contestants
    left = np.r_[ring, rng.choice(n_contestants, extra, p=weight)]
    right = np.r_[(ring + 1) % n_contestants, rng.choice(n_contestants, extra, p=weight)]
    same = left == right
    right[same] = (right[same] + 1) % n_contestants
    p_left = 1 / (1 + 10 ** ((true[right] - true[left]) / 400))
    u = rng.random(n_battles)
    winner = np.where(u < 0.10, 2, np.where(u < 0.13, 3, np.where(rng.random(n_battles) < p_left, 0, 1)))
    tstamp = 1.7e9 + np.sort(rng.random(n_battles)) * 3e7
    lengths = rng.integers(20, 300, (2, n_battles))
    names = [f"model-{k:05d}" for k in range(n_contestants)]
    return Battles.from_codes(names, left, right, winner, tstamp, lengths[0], lengths[1])


def bench_many(n_battles: int = 200_000, n_contestants: int = 10_000, check_rounds: int = 400) -> dict[str, float]:
    """The large board from a database, the two paths on a mid-size board, and whether 100 rounds suffice."""
    from playground.leaderboard import board as board_module
    from storage import open_database

    results: dict[str, float] = {}
    mid = many_battles(20_000, 500, seed=1)
    saved = board_module.DENSE_MAX
    try:
        board_module.DENSE_MAX = 10**9
        dense = timed(lambda: build_leaderboard(mid, rounds=100, seed=0), repeat=1)
    finally:
        board_module.DENSE_MAX = saved
    many = timed(lambda: build_leaderboard(mid, rounds=100, seed=0), repeat=1)
    diff = max(max(abs(a.rating - b.rating), abs(a.ci_low - b.ci_low), abs(a.ci_high - b.ci_high))
               for a, b in zip(dense.result.rows, many.result.rows, strict=True))
    results.update({"mid_dense_s": dense.wall, "mid_dense_cpu_s": dense.cpu, "mid_many_s": many.wall,
                    "mid_many_cpu_s": many.cpu, "mid_max_diff_points": diff})
    print(f"500 contestants, 20,000 battles, 100 rounds: dense path (the old code) {dense.wall:.2f} s "
          f"({dense.cpu:.2f} s CPU), pair-wise path {many.wall:.2f} s ({many.cpu:.2f} s CPU): "
          f"{dense.cpu / many.cpu:.1f}x CPU; largest difference in a rating or interval end {diff:.4f} points")
    battles = many_battles(n_battles, n_contestants)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "many.db"
        fill_database(path, battles)
        db = open_database(path)
        load = timed(lambda: load_battles(db, with_lengths=False), repeat=1)
        db.close()
    board = timed(lambda: build_leaderboard(load.result, seed=0), repeat=1)
    rows = board.result.rows
    rated = sum(r.rating == r.rating and r.ci_low == r.ci_low and r.ci_high == r.ci_high for r in rows)
    total, cpu = load.wall + board.wall, load.cpu + board.cpu
    results.update({"many_contestants": n_contestants, "many_battles": n_battles, "many_load_s": load.wall,
                    "many_load_cpu_s": load.cpu, "many_board_s": board.wall, "many_board_cpu_s": board.cpu,
                    "many_total_s": total, "many_total_cpu_s": cpu, "many_rounds": board.result.rounds,
                    "many_rated_with_interval": rated})
    print(f"{n_contestants:,} contestants, {n_battles:,} battles from SQLite: load {load.wall:.2f} s "
          f"({load.cpu:.2f} s CPU) + build_leaderboard ({board.result.rounds} rounds) {board.wall:.2f} s "
          f"({board.cpu:.2f} s CPU) = {total:.2f} s ({cpu:.2f} s CPU), target < {TARGET_MANY_S:.0f} s: "
          f"{'OK' if total < TARGET_MANY_S else 'OVER TARGET'}; {rated:,} of {len(rows):,} rated with an interval")
    if check_rounds:
        from playground.ranking.many import fit_bradley_terry_many

        fits = [fit_bradley_terry_many(load.result, rounds=r, seed=s) for r, s in ((100, 2), (check_rounds, 3))]
        width = fits[1].ci_high - fits[1].ci_low
        end = np.maximum(np.abs(fits[0].ci_low - fits[1].ci_low), np.abs(fits[0].ci_high - fits[1].ci_high))
        share = end / np.maximum(width, 1e-9)
        results.update({"check_rounds": check_rounds, "check_median_end_diff": float(np.median(end)),
                        "check_median_share_of_width": float(np.median(share)),
                        "check_p95_share_of_width": float(np.quantile(share, 0.95)),
                        "check_median_width": float(np.median(width))})
        print(f"  intervals from 100 rounds (seed 2) vs {check_rounds} rounds (seed 3): interval ends differ by "
              f"{np.median(end):.1f} points at the median ({np.median(share):.1%} of the interval's width; "
              f"95th percentile {np.quantile(share, 0.95):.1%}); median width {np.median(width):.0f} points")
    return results


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
    for a, b, w in zip(left, right, winner, strict=True):
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
        load_plain = timed(lambda: load_battles(db, with_lengths=False), repeat=1)
        load_lengths = timed(lambda: load_battles(db), repeat=1)
        board = timed(lambda: build_leaderboard(load_plain.result, rounds=1000, seed=0), repeat=1)
        db.close()
    assert len(load_plain.result) == len(battles) and len(board.result.rows) == len(battles.names)
    return {
        "db_fill_s": fill_s,
        "db_load_s": load_plain.wall, "db_load_cpu_s": load_plain.cpu,
        "db_load_with_lengths_s": load_lengths.wall, "db_load_with_lengths_cpu_s": load_lengths.cpu,
        "db_build_leaderboard_s": board.wall, "db_build_leaderboard_cpu_s": board.cpu,
        "db_load_plus_leaderboard_s": load_plain.wall + board.wall,
        "db_load_plus_leaderboard_cpu_s": load_plain.cpu + board.cpu,
    }


def bench_existence_check(battles: Battles, with_check: Timing) -> dict[str, float]:
    """What deciding each resample's MLE existence from its win graph costs: the bootstrap with the check
    replaced by 'never needed' (same draws), and the check alone on 1,000 rounds of these cells."""
    from playground.ranking import fitting
    from playground.ranking.bradley_terry import pair_cells, prior_per_pair
    from playground.ranking.battles import tally_battles

    real = fitting.rescue_shares
    fitting.rescue_shares = lambda gi, gj, players, for_i, for_j: np.zeros(for_i.shape)
    try:
        without = timed(lambda: fit_bradley_terry(battles, rounds=1000, seed=0))
    finally:
        fitting.rescue_shares = real
    tally = tally_battles(battles)
    cells = pair_cells(tally, "tie", prior_per_pair(tally, "tie", None)[0])
    draws = np.random.default_rng(0).multinomial(cells.total, cells.counts / cells.total, size=1000).astype(float)
    a, n = cells.groups_from(draws)
    alone = timed(lambda: real(cells.gi, cells.gj, cells.n_players, a, n - a))
    return {"bootstrap_without_existence_check_s": without.wall, "bootstrap_without_existence_check_cpu_s": without.cpu,
            "existence_check_1000_rounds_s": alone.wall, "existence_check_1000_rounds_cpu_s": alone.cpu,
            "ratio_with_vs_without_existence_check": with_check.wall / without.wall,
            "ratio_with_vs_without_existence_check_cpu": with_check.cpu / without.cpu}


def bench_sparse_case(rounds: int = 1000) -> dict[str, float]:
    """The sparse board (8 models, ~1,100 battles, 'rare' with 15 battles: 2 wins, 13 losses), with and
    without rare: the regulars' interval ends relative to their ratings should not move."""
    from playground.ranking import ci_rank
    from playground.ranking.synthetic import SparseSetup, simulate_sparse

    setup = SparseSetup()
    fits = {k: fit_bradley_terry(simulate_sparse(setup, 0, with_rare=k == "with"), rounds=rounds, seed=0)
            for k in ("with", "without")}
    print(f"Sparse board (playground/ranking/synthetic.py SparseSetup, seed 0; true ratings "
          f"{', '.join(f'{n} {r:.0f}' for n, r in zip(setup.names(), setup.true_ratings(), strict=True))}):")
    ranks = {k: ci_rank(f.ci_low, f.ci_high) for k, f in fits.items()}
    moved = 0.0
    for k, name in enumerate(fits["with"].names):
        w = fits["with"]
        line = f"  {name:5s} {w.rating[k]:7.1f} [{w.ci_low[k]:7.1f}, {w.ci_high[k]:7.1f}] rank {ranks['with'][k]}"
        if name in fits["without"].names:
            j, o = fits["without"].names.index(name), fits["without"]
            shift = max(abs((w.ci_low[k] - w.rating[k]) - (o.ci_low[j] - o.rating[j])),
                        abs((w.ci_high[k] - w.rating[k]) - (o.ci_high[j] - o.rating[j])))
            moved = max(moved, shift)
            line += (f" | without rare {o.rating[j]:7.1f} [{o.ci_low[j]:7.1f}, {o.ci_high[j]:7.1f}] rank "
                     f"{ranks['without'][j]}; interval ends moved {shift:.1f}")
        print(line)
    print(f"  rounds that needed help (no strongly connected win graph): {fits['with'].rescued_rounds} of {rounds}; "
          f"failed {fits['with'].failed_rounds}; largest move of a regular's interval end: {moved:.1f} points")
    return {"sparse_rescued_rounds": fits["with"].rescued_rounds, "sparse_largest_interval_move": moved}


def main(n_battles: int = 1_000_000, n_contestants: int = 20, with_db: bool = True) -> dict[str, float]:
    battles, true = synthetic_battles(n_battles, n_contestants)
    fit_boot = timed(lambda: fit_bradley_terry(battles, rounds=1000, seed=0))
    fit_once = timed(lambda: fit_bradley_terry(battles, rounds=0))
    base_fit = timed(lambda: arena_style_mle(battles), repeat=1)
    elo = timed(lambda: online_elo(battles))
    rows = (battles.left.tolist(), battles.right.tolist(), battles.winner.tolist())
    base_elo = timed(lambda: arena_style_elo(*rows), repeat=1)
    plain = (battles.left.astype(str), battles.right.astype(str), battles.winner, battles.tstamp)
    encode = timed(lambda: Battles(*plain).coded, repeat=1)
    agreement = float(np.abs(fit_bradley_terry(battles, rounds=0, prior=0).rating - base_fit.result).max())
    order_ok = bool(np.all(np.argsort(fit_boot.result.rating) == np.argsort(true)))
    results = {
        "battles": n_battles, "contestants": n_contestants,
        "bt_fit_plus_1000_bootstrap_s": fit_boot.wall, "bt_fit_plus_1000_bootstrap_cpu_s": fit_boot.cpu,
        "bt_single_fit_s": fit_once.wall, "baseline_single_fit_s": base_fit.wall,
        "ratio_baseline_single_fit_vs_single_fit": base_fit.wall / fit_once.wall,
        "ratio_baseline_single_fit_vs_fit_plus_1000_bootstrap": base_fit.wall / fit_boot.wall,
        "baseline_100_rounds_extrapolated_s": 101 * base_fit.wall,
        "baseline_1000_rounds_extrapolated_s": 1001 * base_fit.wall,
        "online_elo_s": elo.wall, "online_elo_cpu_s": elo.cpu, "baseline_elo_s": base_elo.wall,
        "ratio_baseline_elo_vs_elo": base_elo.wall / elo.wall,
        "encode_string_labels_s": encode.wall,
        "max_abs_diff_vs_baseline_elo_points": agreement, "true_order_recovered": order_ok,
    }
    print(f"{n_battles:,} battles, {n_contestants} contestants; wall time (CPU time), median of 3 unless noted")
    print(f"Bradley-Terry fit + 1000-round bootstrap: {fit_boot.wall:.3f} s ({fit_boot.cpu:.3f} s CPU), "
          f"target <= {TARGET_BT_BOOTSTRAP_S} s: {'OK' if fit_boot.wall <= TARGET_BT_BOOTSTRAP_S else 'OVER TARGET'}")
    print(f"  single fit on counts {fit_once.wall * 1000:.1f} ms vs baseline single per-battle fit "
          f"(compute_mle_elo style, L-BFGS over {2 * n_battles:,} rows, 1 run) {base_fit.wall:.2f} s: "
          f"{results['ratio_baseline_single_fit_vs_single_fit']:.0f}x")
    print(f"  our fit + 1000 bootstrap rounds vs ONE baseline fit: "
          f"{results['ratio_baseline_single_fit_vs_fit_plus_1000_bootstrap']:.1f}x faster")
    print(f"  EXTRAPOLATION (not measured): baseline fit + 100 rounds ~ {101 * base_fit.wall:.0f} s, "
          f"+ 1000 rounds ~ {1001 * base_fit.wall:.0f} s, i.e. ~{1001 * base_fit.wall / fit_boot.wall:.0f}x our 1000 rounds")
    print(f"  same ratings as the baseline (prior 0): max |diff| {agreement:.4f} Elo points; "
          f"true order recovered: {order_ok}")
    print(f"Online Elo: {elo.wall:.3f} s ({elo.cpu:.3f} s CPU), target <= {TARGET_ELO_S} s: "
          f"{'OK' if elo.wall <= TARGET_ELO_S else 'OVER TARGET'}; Arena-style loop {base_elo.wall:.3f} s: "
          f"{results['ratio_baseline_elo_vs_elo']:.1f}x")
    print(f"  (encoding raw string label arrays once, when Battles is not built from codes: {encode.wall:.3f} s)")
    check = bench_existence_check(battles, fit_boot)
    results.update(check)
    print(f"  per-resample existence check (strong connectivity of each round's win graph, one block-diagonal "
          f"connected_components call): alone {check['existence_check_1000_rounds_s'] * 1000:.1f} ms "
          f"({check['existence_check_1000_rounds_cpu_s'] * 1000:.1f} ms CPU) for 1000 rounds; bootstrap with it / "
          f"with it replaced by 'never needed': {check['ratio_with_vs_without_existence_check']:.2f}x wall, "
          f"{check['ratio_with_vs_without_existence_check_cpu']:.2f}x CPU")
    results.update(bench_sparse_case())
    if with_db:
        results.update(bench_database(battles))
        r = results
        print(f"Database with {n_battles:,} voted battles (filled in {r['db_fill_s']:.1f} s, not timed):")
        print(f"  load_battles {r['db_load_s']:.2f} s ({r['db_load_cpu_s']:.2f} s CPU) + build_leaderboard "
              f"(BT + 1000 rounds + Elo + matrices) {r['db_build_leaderboard_s']:.2f} s "
              f"({r['db_build_leaderboard_cpu_s']:.2f} s CPU) = {r['db_load_plus_leaderboard_s']:.2f} s "
              f"({r['db_load_plus_leaderboard_cpu_s']:.2f} s CPU)")
        print(f"  load_battles with answer lengths (generations join, for length control): "
              f"{r['db_load_with_lengths_s']:.2f} s ({r['db_load_with_lengths_cpu_s']:.2f} s CPU)")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--contestants", type=int, default=20)
    parser.add_argument("--no-db", action="store_true", help="skip the database part (it writes ~0.5 GB to /tmp)")
    parser.add_argument("--many", action="store_true", help="the many-contestants bench (defaults 10,000 / 200,000)")
    parser.add_argument("--check-rounds", type=int, default=400, help="--many: reference rounds for the interval check")
    options = parser.parse_args()
    if options.many:
        argv = sys.argv[1:]
        bench_many(options.battles if "--battles" in argv else 200_000,
                   options.contestants if "--contestants" in argv else 10_000, options.check_rounds)
    else:
        main(options.battles, options.contestants, with_db=not options.no_db)
