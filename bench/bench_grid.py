"""Four prompting modes on one model: the pane grid (all at once) vs the same four one after another.

Reports the wall-time ratio grid/sequential (target: <= 1.0, the grid is no slower) and the time
until every pane shows its first token. Panes on one model share one loaded llama.cpp context, so
the grid interleaves them; on CPU one decode runs at a time per device (see compare.py).
"""
from __future__ import annotations

import argparse
import time

from common import machine_info, median  # noqa: F401  (puts the repo on sys.path)

from playground.compare import PaneSpec, run_pane, run_panes
from playground.config import Settings
from playground.context import AppContext
from playground.sampling import SamplingParams

MODES = ("zero_shot", "few_shot", "zero_shot_cot", "instruction")
QUESTION = "A baker makes {n} rolls and sells 17. How many rolls are left?"   # a new question each run:
# neither side may profit from prompts that an earlier run left in a KV cache


def panes(max_tokens: int) -> list[PaneSpec]:
    sampling = SamplingParams(max_new_tokens=max_tokens)
    return [PaneSpec(model_id="smollm2-135m-instruct", mode=m, shots=2, sampling=sampling) for m in MODES]


def grid_once(ctx: AppContext, max_tokens: int, n: int = 20) -> tuple[float, float]:
    """(wall seconds, seconds until every pane had its first token)."""
    start = time.perf_counter()
    first: dict[int, float] = {}
    for states in run_panes(ctx, panes(max_tokens), QUESTION.format(n=n), min_interval_s=0.0):
        for i, r in enumerate(states):
            if i not in first and r.answer_text:
                first[i] = time.perf_counter() - start
    return time.perf_counter() - start, max(first.values()) if first else float("nan")


def sequential_once(ctx: AppContext, max_tokens: int, n: int = 20) -> tuple[float, float]:
    start = time.perf_counter()
    first = []
    for pane in panes(max_tokens):
        seen = False
        for r in run_pane(ctx, pane, QUESTION.format(n=n)):
            if not seen and r.answer_text:
                first.append(time.perf_counter() - start)
                seen = True
    return time.perf_counter() - start, max(first) if first else float("nan")


def main(reps: int = 3, max_tokens: int = 48) -> dict:
    ctx = AppContext.create(Settings())
    grid_once(ctx, 4)                                  # load and warm up
    grid, seq = [], []
    for rep in range(reps):
        seq.append(sequential_once(ctx, max_tokens, 30 + 2 * rep))
        grid.append(grid_once(ctx, max_tokens, 31 + 2 * rep))
    ctx.cache.clear()
    f = {"reps": reps, "max_tokens": max_tokens, "panes": len(MODES),
         "grid_wall_s": median([g[0] for g in grid]), "sequential_wall_s": median([s[0] for s in seq]),
         "grid_all_first_token_s": median([g[1] for g in grid]),
         "sequential_all_first_token_s": median([s[1] for s in seq])}
    f["wall_ratio"] = f["grid_wall_s"] / f["sequential_wall_s"]
    f["first_token_ratio"] = f["grid_all_first_token_s"] / f["sequential_all_first_token_s"]
    return f


def report(f: dict) -> str:
    return (f"grid of {f['panes']} modes vs sequential ({f['reps']} runs, {f['max_tokens']} new tokens each)\n"
            f"  wall time: sequential {f['sequential_wall_s']:.2f} s, grid {f['grid_wall_s']:.2f} s "
            f"-> ratio {f['wall_ratio']:.2f} (target <= 1.0)\n"
            f"  until every pane shows a token: sequential {f['sequential_all_first_token_s']:.2f} s, "
            f"grid {f['grid_all_first_token_s']:.2f} s -> ratio {f['first_token_ratio']:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    a = parser.parse_args()
    print(report(main(a.reps, a.max_tokens)))
