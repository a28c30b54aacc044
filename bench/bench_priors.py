"""The prior study: does the rating method recover known strengths, with honest 95% intervals?

Set-up (`playground.ranking.synthetic.Setup`): 10,000 battles among 40 contestants whose true
ratings are spread over 600 points, skewed pairing (the weakest has ~95 battles, fewest ~80; the
strongest ~1,300), outcomes from Bradley-Terry. Two measurements, because they cost very different
amounts:

- bias: each contestant's error averaged over `bias_seeds` data sets (point fits only, ~6 ms
  each), with its own 95% interval (mean +- 1.96 standard errors). One seed's error has a standard
  deviation of ~64 points for the weakest contestant, so 20 seeds leave +-28 points of doubt about
  its mean; 2,000 seeds leave +-3.
- coverage: how often the 95% bootstrap interval holds the truth, over `seeds` data sets with
  `rounds` bootstrap rounds each (a Wilson interval for the weakest and the strongest).

Methods: default = the plain MLE, regularised only where it does not exist (`prior=None`, Chatbot
Arena's estimator); old default = 0.5 virtual tied battles on every pair that met (`prior=0.5`),
the baseline; Arena reference = Chatbot Arena's per-battle logistic regression (compute_mle_elo
style, from bench_ranking), point estimates only, to show the default is the same estimator.
Then ties: tie-as-half-win vs Davidson's tie model on data with known tie behaviour (Davidson
ties with nu = 0.3 and 1.0, and ties at a fixed 30% rate whatever the gap).
Run: python bench/bench_priors.py [--bias-seeds 2000] [--seeds 200] [--rounds 500] [--tie-seeds 10]
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
from playground.stats import Z95, wilson_interval  # noqa: E402
from playground.ranking.synthetic import Setup, simulate  # noqa: E402

TARGET_BIAS = 15.0
TARGET_COVERAGE = 0.93
FIGURE = REPO / "docs" / "benchmarks-priors.png"


def bias_study(setup: Setup, seeds: int, prior: float | None) -> dict[str, np.ndarray | float]:
    """Mean error per contestant over `seeds` point fits, with the half-width of its 95% interval."""
    true = setup.true_ratings()
    start = time.process_time()
    errors = np.array([fit_bradley_terry(simulate(setup, seed), prior=prior, rounds=0).rating - true
                       for seed in range(seeds)])
    return {"bias": errors.mean(0), "half": Z95 * errors.std(0, ddof=1) / np.sqrt(seeds),
            "sd": errors.std(0, ddof=1), "cpu_s": time.process_time() - start}


def study(setup: Setup, seeds: int, fit, rounds: int = 1000) -> dict[str, np.ndarray | float]:
    """Errors and coverage per contestant over `seeds` data sets, each fitted with `rounds` bootstrap rounds."""
    true = setup.true_ratings()
    errors, inside, seconds, rescued, failed = [], [], 0.0, 0, 0
    for seed in range(seeds):
        battles = simulate(setup, seed)
        start = time.process_time()
        result = fit(battles, rounds, seed)
        seconds += time.process_time() - start
        errors.append(result.rating - true)
        inside.append((result.ci_low <= true) & (true <= result.ci_high))
        rescued += getattr(result, "rescued_rounds", 0)
        failed += getattr(result, "failed_rounds", 0)
    errors, inside = np.array(errors), np.array(inside)
    return {"bias": errors.mean(0), "rmse": np.sqrt((errors**2).mean(0)), "coverage": inside.mean(0),
            "covered": inside.sum(0), "seeds": seeds, "cpu_s_per_fit": seconds / seeds, "rescued": rescued,
            "failed": failed}


def summary(name: str, bias: dict, cov: dict) -> dict[str, float]:
    """The figures docs/benchmarks.md shows for one method."""
    b, half, c = bias["bias"], bias["half"], cov["coverage"]
    worst = int(np.argmax(np.abs(b)))
    out = {f"{name}_weakest_bias": float(b[0]), f"{name}_weakest_bias_ci_half": float(half[0]),
           f"{name}_strongest_bias": float(b[-1]), f"{name}_strongest_bias_ci_half": float(half[-1]),
           f"{name}_max_abs_bias": float(abs(b[worst])), f"{name}_max_abs_bias_contestant": worst,
           f"{name}_max_abs_bias_ci_far_end": float(np.max(np.abs(b) + half)),
           f"{name}_mean_abs_bias": float(np.abs(b).mean()), f"{name}_coverage_mean": float(c.mean()),
           f"{name}_coverage_weakest": float(c[0]), f"{name}_coverage_strongest": float(c[-1]),
           f"{name}_coverage_min": float(c.min()), f"{name}_cpu_s_per_fit": float(cov["cpu_s_per_fit"])}
    for end, k in (("weakest", 0), ("strongest", -1)):
        low, high = wilson_interval(int(cov["covered"][k]), int(cov["seeds"]))
        out[f"{name}_coverage_{end}_ci"] = f"{low:.3f}-{high:.3f}"
    return out


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

        def davidson(b, r, s, nus=nus):   # bound now: study() calls it within this iteration
            fit = fit_davidson(b, rounds=r, seed=s)
            nus.append(fit.nu)
            return fit

        dav = study(setup, seeds, davidson)
        rows.append((label, half, dav, float(np.mean(nus))))
    return rows


def draw(setup: Setup, default: dict, old: dict) -> None:
    """Mean error (with its 95% interval) and coverage per contestant against its true rating."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    true = setup.true_ratings()
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.subplots(1, 2)
    for (bias, cov), label, style in ((default, "default: plain MLE", "o-"),
                                      (old, "old: 0.5 virtual ties per pair", "s--")):
        line, = ax1.plot(true, bias["bias"], style, markersize=3, label=label)
        ax1.fill_between(true, bias["bias"] - bias["half"], bias["bias"] + bias["half"], color=line.get_color(),
                         alpha=0.2, linewidth=0)
        ax2.plot(true, cov["coverage"], style, markersize=3, label=label)
    ax1.axhspan(-TARGET_BIAS, TARGET_BIAS, color="tab:green", alpha=0.1, label=f"target ±{TARGET_BIAS:g}")
    ax1.axhline(0, color="black", lw=0.5)
    ax1.set(xlabel="true rating (weakest = fewest battles)", ylabel="mean error (Elo points)",
            title="Mean error per contestant (band: its 95% interval)")
    ax2.axhline(0.95, color="black", lw=0.5)
    ax2.axhline(TARGET_COVERAGE, color="tab:green", lw=1, ls=":", label=f"target {TARGET_COVERAGE}")
    ax2.set(xlabel="true rating", ylabel="share of seeds", title="95% interval covers the truth", ylim=(0, 1.02))
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="lower right")
    fig.savefig(FIGURE, dpi=110)


def main(bias_seeds: int = 2000, seeds: int = 200, rounds: int = 500, tie_seeds: int = 10,
         figure: bool = True) -> dict[str, float]:
    setup = Setup()
    fits = {"default": None, "old_prior": 0.5}
    biases = {name: bias_study(setup, bias_seeds, prior) for name, prior in fits.items()}
    covers = {name: study(setup, seeds, lambda b, r, s, p=prior: fit_bradley_terry(b, prior=p, rounds=r, seed=s),
                          rounds)
              for name, prior in fits.items()}
    agreement, arena_weakest = arena_agreement(setup, min(seeds, 10))
    results: dict[str, float] = {"bias_seeds": bias_seeds, "seeds": seeds, "rounds": rounds}
    for name in fits:
        results.update(summary(name, biases[name], covers[name]))
    results.update({"default_rescued_rounds": covers["default"]["rescued"],
                    "default_failed_rounds": covers["default"]["failed"],
                    "max_abs_diff_default_vs_arena_reference": agreement, "arena_reference_weakest_bias": arena_weakest})
    sure = results["default_max_abs_bias_ci_far_end"] <= TARGET_BIAS
    ok = results["default_max_abs_bias"] <= TARGET_BIAS and results["default_coverage_mean"] >= TARGET_COVERAGE
    print(f"{setup.n_battles:,} battles, {setup.n_contestants} contestants, skewed pairing; mean error over "
          f"{bias_seeds} seeds (point fits), coverage over {seeds} seeds with {rounds} bootstrap rounds each")
    for name, label in (("default", "default (plain MLE)"), ("old_prior", "old default (0.5 ties/pair)")):
        r = results
        print(f"  {label}:")
        print(f"    mean error: weakest {r[name + '_weakest_bias']:+.1f} ± {r[name + '_weakest_bias_ci_half']:.1f}, "
              f"strongest {r[name + '_strongest_bias']:+.1f} ± {r[name + '_strongest_bias_ci_half']:.1f} "
              f"(95% intervals); largest |mean error| {r[name + '_max_abs_bias']:.1f} (contestant "
              f"{r[name + '_max_abs_bias_contestant']}), mean |error| {r[name + '_mean_abs_bias']:.1f} points")
        print(f"    coverage: mean {r[name + '_coverage_mean']:.3f}, weakest {r[name + '_coverage_weakest']:.3f} "
              f"({r[name + '_coverage_weakest_ci']}), strongest {r[name + '_coverage_strongest']:.3f} "
              f"({r[name + '_coverage_strongest_ci']}), min {r[name + '_coverage_min']:.3f}; "
              f"{r[name + '_cpu_s_per_fit']:.2f} s CPU a fit")
    print(f"  target: every contestant's |mean error| <= {TARGET_BIAS:g} and coverage >= {TARGET_COVERAGE}: "
          f"{'MET' if ok else 'NOT MET'}; every contestant's 95% interval of its mean error inside "
          f"±{TARGET_BIAS:g}: {'yes' if sure else 'no'} (far end {results['default_max_abs_bias_ci_far_end']:.1f})")
    print(f"  bootstrap rounds without a finite MLE: {covers['default']['rescued']} rescued (minimal "
          f"regularisation), {covers['default']['failed']} failed, of {seeds * rounds}")
    print(f"  default vs Arena's per-battle logistic regression (no prior): max |diff| {agreement:.3f} points; "
          f"its weakest bias {arena_weakest:+.1f} (10 seeds)")
    print(f"Ties ({tie_seeds} seeds each, 1,000 rounds): mean |bias| / coverage mean, tie-as-half-win vs Davidson")
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
        draw(setup, (biases["default"], covers["default"]), (biases["old_prior"], covers["old_prior"]))
        print(f"figure: {FIGURE.relative_to(REPO)}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bias-seeds", type=int, default=2000, help="data sets for the mean errors (point fits)")
    parser.add_argument("--seeds", type=int, default=200, help="data sets for the coverage (bootstrap fits)")
    parser.add_argument("--rounds", type=int, default=500, help="bootstrap rounds per coverage fit")
    parser.add_argument("--tie-seeds", type=int, default=10)
    options = parser.parse_args()
    main(options.bias_seeds, options.seeds, options.rounds, options.tie_seeds)
