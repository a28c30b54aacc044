"""The prior study: does the rating method recover known strengths, with honest 95% intervals?

Set-up (`playground.ranking.synthetic.Setup`): 10,000 battles among 40 contestants whose true
ratings are spread over 600 points, skewed pairing (the weakest has ~95 battles, the strongest
~1,300), outcomes from Bradley-Terry. For each seed every method is fitted with a 1,000-round
bootstrap; per contestant we average the error (bias) over the seeds and count how often the 95%
interval covers the truth. Methods:

- default: the plain MLE, regularised only where it does not exist (`prior=None`);
- old default: 0.5 virtual tied battles on every pair that met (`prior=0.5`), the baseline;
- Arena reference: Chatbot Arena's per-battle logistic regression (compute_mle_elo style, from
  bench_ranking), point estimates only, to show the default is the same estimator.

Then ties: tie-as-half-win vs Davidson's tie model on data with known tie behaviour (Davidson
ties with nu = 0.3 and 1.0, and ties at a fixed 30% rate whatever the gap).
Run: python bench/bench_priors.py [--seeds 100] [--tie-seeds 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import REPO  # noqa: E402

import numpy as np  # noqa: E402

from bench_ranking import arena_style_mle  # noqa: E402
from playground.ranking import fit_bradley_terry, fit_davidson  # noqa: E402
from playground.ranking.synthetic import Setup, simulate  # noqa: E402

TARGET_BIAS = 15.0
TARGET_COVERAGE = 0.93
FIGURE = REPO / "docs" / "benchmarks-priors.png"


def study(setup: Setup, seeds: int, fit, rounds: int = 1000) -> dict[str, np.ndarray | float]:
    """Errors and coverage per contestant over `seeds` data sets."""
    true = setup.true_ratings()
    errors, inside, seconds, rescued, failed = [], [], 0.0, 0, 0
    for seed in range(seeds):
        battles = simulate(setup, seed)
        start = time.perf_counter()
        result = fit(battles, rounds, seed)
        seconds += time.perf_counter() - start
        errors.append(result.rating - true)
        inside.append((result.ci_low <= true) & (true <= result.ci_high))
        rescued += getattr(result, "rescued_rounds", 0)
        failed += getattr(result, "failed_rounds", 0)
    errors, inside = np.array(errors), np.array(inside)
    return {"bias": errors.mean(0), "rmse": np.sqrt((errors**2).mean(0)), "coverage": inside.mean(0),
            "s_per_fit": seconds / seeds, "rescued": rescued, "failed": failed}


def summary(name: str, r: dict) -> dict[str, float]:
    bias, cov = r["bias"], r["coverage"]
    return {f"{name}_weakest_bias": float(bias[0]), f"{name}_max_abs_bias": float(np.abs(bias).max()),
            f"{name}_mean_abs_bias": float(np.abs(bias).mean()), f"{name}_coverage_mean": float(cov.mean()),
            f"{name}_coverage_weakest": float(cov[0]), f"{name}_coverage_min": float(cov.min()),
            f"{name}_s_per_fit": float(r["s_per_fit"])}


def arena_agreement(setup: Setup, seeds: int) -> tuple[float, float]:
    """Largest |default - Arena reference| (Elo points) and the reference's weakest-contestant bias."""
    worst, weakest = 0.0, []
    for seed in range(seeds):
        battles = simulate(setup, seed)
        ours = fit_bradley_terry(battles, rounds=0).rating
        theirs = arena_style_mle(battles)
        worst = max(worst, float(np.abs(ours - theirs).max()))
        weakest.append(theirs[0] - setup.true_ratings()[0])
    return worst, float(np.mean(weakest))


def tie_study(seeds: int) -> list[tuple[str, dict, dict, float]]:
    """Half-win vs Davidson on three kinds of ties; (scenario, half, davidson, mean fitted nu)."""
    rows = []
    for label, setup in (("Davidson ties, nu = 0.3", Setup(tie_nu=0.3)), ("Davidson ties, nu = 1.0", Setup(tie_nu=1.0)),
                         ("30% ties whatever the gap", Setup(tie_rate=0.3))):
        half = study(setup, seeds, lambda b, r, s: fit_bradley_terry(b, rounds=r, seed=s))
        nus = []

        def davidson(b, r, s):
            fit = fit_davidson(b, rounds=r, seed=s)
            nus.append(fit.nu)
            return fit

        dav = study(setup, seeds, davidson)
        rows.append((label, half, dav, float(np.mean(nus))))
    return rows


def draw(setup: Setup, default: dict, old: dict) -> None:
    """Bias and coverage per contestant against its true rating, for the two priors."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    true = setup.true_ratings()
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for r, label, style in ((default, "default: plain MLE", "o-"), (old, "old: 0.5 virtual ties per pair", "s--")):
        ax1.plot(true, r["bias"], style, markersize=3, label=label)
        ax2.plot(true, r["coverage"], style, markersize=3, label=label)
    ax1.axhspan(-TARGET_BIAS, TARGET_BIAS, color="tab:green", alpha=0.1, label=f"target ±{TARGET_BIAS:g}")
    ax1.axhline(0, color="black", lw=0.5)
    ax1.set(xlabel="true rating (weakest = fewest battles)", ylabel="mean error (Elo points)", title="Bias per contestant")
    ax2.axhline(0.95, color="black", lw=0.5)
    ax2.axhline(TARGET_COVERAGE, color="tab:green", lw=1, ls=":", label=f"target {TARGET_COVERAGE}")
    ax2.set(xlabel="true rating", ylabel="share of seeds", title="95% interval covers the truth", ylim=(0, 1.02))
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="lower right")
    fig.savefig(FIGURE, dpi=110)


def main(seeds: int = 100, tie_seeds: int = 10, figure: bool = True) -> dict[str, float]:
    setup = Setup()
    default = study(setup, seeds, lambda b, r, s: fit_bradley_terry(b, rounds=r, seed=s))
    old = study(setup, seeds, lambda b, r, s: fit_bradley_terry(b, prior=0.5, rounds=r, seed=s))
    agreement, arena_weakest = arena_agreement(setup, min(seeds, 10))
    results = {"seeds": seeds, **summary("default", default), **summary("old_prior", old),
               "default_rescued_rounds": default["rescued"], "default_failed_rounds": default["failed"],
               "max_abs_diff_default_vs_arena_reference": agreement, "arena_reference_weakest_bias": arena_weakest}
    ok = results["default_max_abs_bias"] <= TARGET_BIAS and results["default_coverage_mean"] >= TARGET_COVERAGE
    print(f"{setup.n_battles:,} battles, {setup.n_contestants} contestants, skewed pairing, {seeds} seeds, "
          "1,000 bootstrap rounds each")
    for name, label in (("default", "default (plain MLE)"), ("old_prior", "old default (0.5 ties/pair)")):
        r = results
        print(f"  {label:28s} weakest bias {r[name + '_weakest_bias']:+6.1f}, max |bias| {r[name + '_max_abs_bias']:5.1f}, "
              f"mean |bias| {r[name + '_mean_abs_bias']:4.1f} points; coverage mean {r[name + '_coverage_mean']:.3f}, "
              f"weakest {r[name + '_coverage_weakest']:.2f}, min {r[name + '_coverage_min']:.2f}; "
              f"{r[name + '_s_per_fit']:.2f} s a fit")
    print(f"  target: every contestant's |bias| <= {TARGET_BIAS:g} and coverage >= {TARGET_COVERAGE}: "
          f"{'MET' if ok else 'NOT MET'}")
    print(f"  bootstrap rounds without a finite MLE: {default['rescued']} rescued (minimal regularisation), "
          f"{default['failed']} failed, of {seeds * 1000}")
    print(f"  default vs Arena's per-battle logistic regression (no prior): max |diff| {agreement:.3f} points; "
          f"its weakest bias {arena_weakest:+.1f}")
    print(f"Ties ({tie_seeds} seeds each): mean |bias| / coverage mean, tie-as-half-win vs Davidson")
    for label, half, dav, nu in tie_study(tie_seeds):
        print(f"  {label:26s} half-win {np.abs(half['bias']).mean():5.1f} pts / {half['coverage'].mean():.2f}   "
              f"Davidson {np.abs(dav['bias']).mean():5.1f} pts / {dav['coverage'].mean():.2f}   fitted nu {nu:.3f}")
        key = label.split(",")[0].split()[0].lower() + label.split("=")[-1].strip().replace("% ties whatever the gap", "")
        results[f"ties_{key}_half_mean_abs_bias"] = float(np.abs(half["bias"]).mean())
        results[f"ties_{key}_davidson_mean_abs_bias"] = float(np.abs(dav["bias"]).mean())
        results[f"ties_{key}_half_coverage"] = float(half["coverage"].mean())
        results[f"ties_{key}_davidson_coverage"] = float(dav["coverage"].mean())
        results[f"ties_{key}_fitted_nu"] = nu
    if figure:
        draw(setup, default, old)
        print(f"figure: {FIGURE.relative_to(REPO)}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--tie-seeds", type=int, default=10)
    options = parser.parse_args()
    main(options.seeds, options.tie_seeds)
