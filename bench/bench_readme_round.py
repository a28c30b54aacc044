"""The README's step 3, timed: "Compare modes", then "Send to all" with the apples question.

Six panes (zero-shot, few-shot, zero-shot CoT, few-shot CoT, instruction, self-consistency with
5 samples) on the default model, built as the Playground builds them (`playground_pane`, the
deterministic preset) and run as the Playground runs them (`compare.run_panes`, read every
0.2 s), on a quiet machine and beside two busy processes the bench starts (plain Python loops
with a deadline). Default settings: threads follow the free cores.

Baseline in the same run: the raw batched loop of llama-cpp-python's low-level API doing the same
work: one context, one sequence per generation the round ran (self-consistency's 5 samples, CoT's
second step), each prompt exactly as the app sent it, each decoded for as many tokens as the
app's answer has (argmax, no early stop), all sequences stepping together. It is an upper bound on
batching (CoT's second step does not wait for its first), on 2 threads quiet and 1 thread busy
(2 threads beside busy processes collapse: see bench_contention).

Target: the round beside two busy processes takes <= 2x its quiet time.
"""
from __future__ import annotations

import argparse
import time

from bench_contention import busy_processes, load_average
from common import median, raw_batched_greedy

from playground.compare import COMPARE_MODES_ORDER, playground_pane, run_panes
from playground.config import Settings
from playground.context import AppContext
from playground.devices import cpu_cores

QUESTION = "A cafeteria had 23 apples. They used 20 and bought 6 more. How many apples do they have?"


def app_round(ctx: AppContext, model, panes) -> tuple[float, list]:
    model.forget_prompts()
    start = time.perf_counter()
    last: list = []
    for states in run_panes(ctx, panes, QUESTION, min_interval_s=0.2):
        last = states
    return time.perf_counter() - start, last


def generations(model, results) -> list[tuple[list[int], int]]:
    """(prompt tokens, output tokens) of every generation the round ran."""
    jobs = []
    for r in results:
        for call in r.calls:
            prompt = model.tokenize(call["prompt"])
            if call["step"] == "samples":
                jobs += [(prompt, max(1, s.n_output_tokens or len(model.tokenize(s.text)))) for s in r.samples]
            elif call["step"] == "answer_extraction":
                jobs.append((prompt, max(1, len(model.tokenize(r.followup_output)))))
            else:
                jobs.append((prompt, max(1, len(model.tokenize(r.output)))))
    return jobs


def main(reps: int = 1, busy: int = 2) -> dict:
    ctx = AppContext.create(Settings())
    model_id = ctx.settings.default_model
    spec = ctx.ensure_local(ctx.catalog.get(model_id))
    panes = [playground_pane(ctx, model_id, m) for m in COMPARE_MODES_ORDER]
    f: dict = {"model": model_id, "panes": ",".join(COMPARE_MODES_ORDER), "reps": reps, "busy_processes": busy}
    try:
        with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
            app_round(ctx, model, panes)      # load, warm up
            for label, n_busy, raw_threads in (("quiet", 0, cpu_cores()), ("busy", busy, 1)):
                with busy_processes(n_busy, deadline_s=3600):
                    time.sleep(1.0)
                    before = load_average()
                    walls, raws, tokens = [], [], 0
                    for _ in range(reps):
                        wall, results = app_round(ctx, model, panes)
                        walls.append(wall)
                        jobs = generations(model, results)
                        tokens = sum(n for _, n in jobs)
                        model.forget_prompts()
                        raws.append(raw_batched_greedy(model, jobs, raw_threads, stop_at_eog=False)[0])
                    f[f"{label}_load"] = f"{before} / {load_average()}"
                    f[f"{label}_app_s"] = median(walls)
                    f[f"{label}_raw_s"] = median(raws)
                    f[f"{label}_raw_threads"] = raw_threads
                    f[f"{label}_generations"] = len(jobs)
                    f[f"{label}_tokens"] = tokens
                    f[f"{label}_app_vs_raw"] = f[f"{label}_raw_s"] / f[f"{label}_app_s"]
    finally:
        ctx.cache.clear()
    f["busy_vs_quiet"] = f["busy_app_s"] / f["quiet_app_s"]
    return f


def report(f: dict) -> str:
    lines = [f"README step 3 on {f['model']}: six panes ({f['panes']}), the apples question, median of {f['reps']} "
             f"cold round(s), wall seconds; raw = the raw batched loop doing the same generations and token counts",
             "", "| machine | load avg before / after | generations, tokens | app round | raw batched loop "
             "(threads) | raw / app |", "| --- | --- | --- | --- | --- | --- |"]
    for label in ("quiet", "busy"):
        name = "quiet (no busy process)" if label == "quiet" else f"{f['busy_processes']} busy processes"
        lines.append(f"| {name} | {f[label + '_load']} | {f[label + '_generations']}, {f[label + '_tokens']} | "
                     f"{f[label + '_app_s']:.1f} | {f[label + '_raw_s']:.1f} ({f[label + '_raw_threads']}) | "
                     f"{f[label + '_app_vs_raw']:.2f}x |")
    lines += ["", f"busy / quiet: {f['busy_vs_quiet']:.2f}x (target <= 2)"]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--busy", type=int, default=2)
    a = parser.parse_args()
    print(report(main(a.reps, a.busy)))
