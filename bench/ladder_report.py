"""The ladder's table for docs/benchmarks.md, from the ladder database (bench/ladder.py).

    python bench/ladder_report.py --db /work/ladder/ladder.db > /tmp/ladder.md
    python app.py lab report --db /work/ladder/ladder.db --run-name gsm8k-ladder --out docs/ladder   # the plots

One row per (model, mode, shots): n items, accuracy by the app's extractor with its 95% Wilson
interval, lm-evaluation-harness's strict-match and flexible-extract (also with Wilson intervals),
maj@k for self-consistency, and the mean gold log-probability with +/-1.96 SE.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ORDER = ("smollm2-135m-instruct", "smollm2-135m-instruct-f16", "gemma3-270m-base", "qwen2.5-coder-0.5b-instruct",
         "qwen2.5-coder-1.5b-instruct")
MODES = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "self_consistency")


def pct_ci(k: float | None, n: int) -> str:
    from playground.stats import wilson_interval

    if k is None or n == 0:
        return "–"
    hits = round(k * n)
    low, high = wilson_interval(hits, n)
    return f"{100 * k:.1f} [{100 * low:.0f}, {100 * high:.0f}]"


def latest_runs(db, name: str) -> list[int]:
    rows = db.execute("SELECT config_key, MAX(id) FROM lab_runs WHERE name = ? GROUP BY config_key", [name])
    return [r[1] for r in rows.fetchall()]


def table(rows) -> str:
    head = ("| model | mode | shots | n | accuracy % [95% CI] | strict-match % | flexible-extract % | maj@k % | "
            "gold log-prob/token |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    key = lambda r: (ORDER.index(r.model_id) if r.model_id in ORDER else 99,   # noqa: E731
                     MODES.index(r.mode) if r.mode in MODES else 99, r.shots or 0)
    for r in sorted(rows, key=key):
        n = r.n - r.n_errors
        lp = "–" if r.mean_logprob is None else (
            f"{r.mean_logprob:.3f} ± {1.96 * r.logprob_se:.3f}" if r.logprob_se else f"{r.mean_logprob:.3f}")
        maj = f"maj@{r.maj_k}: {pct_ci(r.maj_accuracy, n)}" if r.maj_k else "–"
        lines.append(f"| {r.model_id} | {r.mode} | {'' if r.shots is None else r.shots} | {n} | "
                     f"{pct_ci(r.accuracy, n)} | {pct_ci(r.strict_accuracy, n)} | {pct_ci(r.flexible_accuracy, n)} | "
                     f"{maj} | {lp} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--name", default="gsm8k-ladder")
    args = parser.parse_args(argv)
    from playground.lab import summarize
    from storage import open_database

    db = open_database(args.db)
    try:
        rows = summarize(db, latest_runs(db, args.name))
    finally:
        db.close()
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
