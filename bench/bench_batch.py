"""Side by side on one model: the app's panes vs the raw batched loop, and first tokens vs solo.

Part 1 (throughput). Four panes on the bundled model (zero-shot, few-shot, few-shot CoT,
instruction) through `compare_cmd.compare`, exactly as `python app.py compare` and the Playground
run them. Baselines in the same run, on the exact prompts the panes sent:
- the raw batched loop of llama-cpp-python's low-level API (one context, n_seq_max=4, every prompt
  prefilled, then one llama_decode per step carrying one token of each sequence);
- the same four prompts one after another through the app (one pane at a time), and today's
  unbatched path (one context per pane).
Reported: tokens/s of each, the app's ratio to the raw loop (target >= 0.85) and the batched
app's wall time in units of one pane's.

Part 2 (first tokens). Six panes in "compare modes" (one per mode, self-consistency with 5
samples). Baselines: each pane alone (its solo time to first token) and the sum of those (all
prefills one after another). Reported: the first pane's first token minus its solo time
(target <= 0.5 s) and the last pane's first token against the sum (target: below it).

Every run starts cold (the model forgets cached prompts), alternating app and baseline.
"""
from __future__ import annotations

import argparse
import time

from common import median, raw_batched_greedy, sequential_and_one  # also puts the repo on sys.path

from playground.commands.compare_cmd import compare
from playground.compare import COMPARE_MODES_ORDER, PaneSpec, playground_pane, run_pane
from playground.config import Settings
from playground.context import AppContext
from playground.sampling import SamplingParams

MODEL = "smollm2-135m-instruct"
FOUR = ("zero_shot", "few_shot", "few_shot_cot", "instruction")   # no second step: one generation each
QUESTION = "A baker makes {n} rolls and sells 17. How many rolls are left?"


def loaded(ctx: AppContext):
    spec = ctx.catalog.get(MODEL)
    with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        return model


def four_panes(ctx: AppContext, max_tokens: int) -> list[PaneSpec]:
    sampling = SamplingParams(max_new_tokens=max_tokens)
    return [playground_pane(ctx, MODEL, m, sampling=sampling) for m in FOUR]


def throughput(ctx: AppContext, reps: int, max_tokens: int) -> dict:
    model = loaded(ctx)
    app, raw, seq, unbatched, one = [], [], [], [], []
    same = True
    for rep in range(reps):
        q = QUESTION.format(n=40 + rep)
        panes = four_panes(ctx, max_tokens)
        model.forget_prompts()
        wall, results = compare(ctx, panes, q)
        tokens = sum(r.n_output_tokens for r in results)
        app.append((wall, tokens))
        jobs = [(model.tokenize(r.exact_prompt), max_tokens) for r in results]
        took, outs = raw_batched_greedy(model, jobs, model.compute_lock.cores if model.compute_lock else 2)
        raw.append((took, sum(len(o) for o in outs)))
        same &= [len(o) for o in outs] == [r.n_output_tokens for r in results]
        sequential, alone = sequential_and_one(ctx, model, panes, q)
        seq.append(sequential)
        one.append(alone)
        model.batching = False
        try:
            model.forget_prompts()
            unbatched.append(compare(ctx, panes, q)[0])
        finally:
            model.batching = True
    f = {"reps": reps, "max_tokens": max_tokens, "panes": len(FOUR),
         "app_wall_s": median([a[0] for a in app]), "app_tokens": app[-1][1],
         "raw_batched_wall_s": median([r[0] for r in raw]), "raw_tokens": raw[-1][1],
         "app_tokens_per_s": median([a[1] / a[0] for a in app]),
         "raw_batched_tokens_per_s": median([r[1] / r[0] for r in raw]),
         "sequential_wall_s": median(seq), "unbatched_wall_s": median(unbatched), "one_pane_wall_s": median(one),
         "same_token_counts_as_raw": same}
    f["app_vs_raw_batched"] = f["app_tokens_per_s"] / f["raw_batched_tokens_per_s"]
    f["app_wall_in_one_panes"] = f["app_wall_s"] / f["one_pane_wall_s"]
    f["unbatched_wall_in_one_panes"] = f["unbatched_wall_s"] / f["one_pane_wall_s"]
    f["app_vs_sequential_wall"] = f["app_wall_s"] / f["sequential_wall_s"]
    return f


def first_tokens(ctx: AppContext, reps: int, max_tokens: int) -> dict:
    model = loaded(ctx)
    sampling = SamplingParams(max_new_tokens=max_tokens)
    firsts, solos, walls = [], [], []
    for rep in range(reps):
        q = QUESTION.format(n=60 + rep)
        panes = [playground_pane(ctx, MODEL, m, sampling=sampling) for m in COMPARE_MODES_ORDER]
        model.forget_prompts()
        start = time.perf_counter()
        seen: dict[int, float] = {}
        from playground.compare import run_panes

        for states in run_panes(ctx, panes, q, min_interval_s=0.0):
            now = time.perf_counter() - start
            for i, r in enumerate(states):
                if i not in seen and r.answer_text:
                    seen[i] = now
        walls.append(time.perf_counter() - start)
        firsts.append([seen.get(i, float("nan")) for i in range(len(panes))])
        solo = []
        for pane in panes:
            model.forget_prompts()
            start = time.perf_counter()
            t = float("nan")
            for r in run_pane(ctx, pane, q):
                if r.answer_text:
                    t = time.perf_counter() - start
                    break
            solo.append(t)
        solos.append(solo)
    first = [median([f[i] for f in firsts]) for i in range(len(COMPARE_MODES_ORDER))]
    solo = [median([s[i] for s in solos]) for i in range(len(COMPARE_MODES_ORDER))]
    earliest = min(range(len(first)), key=lambda i: first[i])
    f = {"panes6_modes": ",".join(COMPARE_MODES_ORDER),
         "panes6_first_token_s": [round(x, 3) for x in first], "panes6_solo_ttft_s": [round(x, 3) for x in solo],
         "panes6_wall_s": median(walls), "panes6_sum_of_solo_ttft_s": sum(solo),
         "panes6_first_pane_minus_its_solo_s": first[earliest] - solo[earliest],
         "panes6_last_first_token_s": max(first)}
    f["panes6_last_first_token_vs_sum_of_solo"] = f["panes6_last_first_token_s"] / f["panes6_sum_of_solo_ttft_s"]
    return f


def main(reps: int = 3, max_tokens: int = 96, threads: int | None = None) -> dict:
    """threads: CPU threads (default all cores). On an oversubscribed machine use 1: two llama.cpp
    threads then spend most of their time waiting for each other at every barrier."""
    ctx = AppContext.create(Settings() if threads is None else Settings(threads=threads))
    try:
        compare(ctx, four_panes(ctx, 4), QUESTION.format(n=1))     # load and warm up
        f = throughput(ctx, reps, max_tokens)
        f.update(first_tokens(ctx, reps, max_tokens))
        f["threads"] = ctx.settings.threads or "adaptive"
    finally:
        ctx.cache.clear()
    return f


def report(f: dict) -> str:
    return "\n".join([
        f"{f['panes']} panes on one model (zero-shot, few-shot, few-shot CoT, instruction), "
        f"{f['max_tokens']} new tokens max, greedy, {f['threads']} thread(s), median of {f['reps']} cold runs",
        f"  app (batched): {f['app_wall_s']:.2f} s, {f['app_tokens_per_s']:.0f} tok/s; raw batched loop: "
        f"{f['raw_batched_wall_s']:.2f} s, {f['raw_batched_tokens_per_s']:.0f} tok/s -> ratio "
        f"{f['app_vs_raw_batched']:.2f} (target >= 0.85); same token counts: {f['same_token_counts_as_raw']}",
        f"  wall time in units of one pane alone ({f['one_pane_wall_s']:.2f} s): batched {f['app_wall_in_one_panes']:.2f}x, "
        f"unbatched (one context per pane) {f['unbatched_wall_in_one_panes']:.2f}x; "
        f"batched / one after another ({f['sequential_wall_s']:.2f} s): {f['app_vs_sequential_wall']:.2f}",
        f"6 panes, compare modes ({f['panes6_modes']}):",
        f"  first token per pane (s): {f['panes6_first_token_s']}; solo: {f['panes6_solo_ttft_s']}",
        f"  earliest pane: {f['panes6_first_pane_minus_its_solo_s']:+.2f} s vs its solo time (target <= +0.5 s); "
        f"last pane's first token {f['panes6_last_first_token_s']:.2f} s vs all prefills one after another "
        f"{f['panes6_sum_of_solo_ttft_s']:.2f} s -> {f['panes6_last_first_token_vs_sum_of_solo']:.2f} (target <= 1)",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    a = parser.parse_args()
    print(report(main(a.reps, a.max_tokens, a.threads)))
