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

Where the time goes: each pane's own wall time (its last token), median over the reps, and how many
batch decoders the model ran the round on (beside busy processes its generations spread over
one-thread decoders, see backends/cache.py CoreShare.spread).

Target: the round beside two busy processes takes <= 2x its quiet time (the last line's verdict).
"""
from __future__ import annotations

import argparse
import sys
import time

from bench_contention import busy_processes, load_average
from common import median, raw_batched_greedy

from playground.compare import COMPARE_MODES_ORDER, playground_pane, run_panes
from playground.config import Settings
from playground.context import AppContext
from playground.devices import cpu_cores

QUESTION = "A cafeteria had 23 apples. They used 20 and bought 6 more. How many apples do they have?"


def decoders_used(model) -> int:
    """Batch decoders of the model that hold a prompt after the round (each ran a generation)."""
    return sum(any(d.sequences_primed.values()) for d in [model._batch, *model._spread] if d is not None)


def app_round(ctx: AppContext, model, panes) -> tuple[float, list, float]:
    """(wall seconds, the panes' results, CPU seconds of this process: the share of the cores it got)."""
    model.forget_prompts()
    start, cpu = time.perf_counter(), time.process_time()
    last: list = []
    for states in run_panes(ctx, panes, QUESTION, min_interval_s=0.2):
        last = states
    return time.perf_counter() - start, last, time.process_time() - cpu


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


def main(reps: int = 3, busy: int = 2, variants: bool = False, raw: bool = True,
         only: tuple[str, ...] = ()) -> dict:
    ctx = AppContext.create(Settings())
    model_id = ctx.settings.default_model
    spec = ctx.ensure_local(ctx.catalog.get(model_id))
    panes = [playground_pane(ctx, model_id, m) for m in COMPARE_MODES_ORDER]
    f: dict = {"model": model_id, "panes": ",".join(COMPARE_MODES_ORDER), "reps": reps, "busy_processes": busy}
    try:
        with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
            app_round(ctx, model, panes)      # load, warm up
            share = model.compute_lock
            states = [("quiet", 0, cpu_cores(), None), ("busy", busy, 1, None)]
            if variants:   # the same rounds with the decoders fixed: one (as before spreading), or spread quiet too
                states += [("busy_one_decoder", busy, 0, 1), ("quiet_spread", 0, 0, share.cores)]
            for label, n_busy, raw_threads, spread in [st for st in states if not only or st[0] in only]:
                if spread is not None:
                    share.spread = lambda n=spread: n
                with busy_processes(n_busy, deadline_s=3600):
                    time.sleep(1.0)
                    before = load_average()
                    walls, raws, tokens, per_pane, used, cpus = [], [], 0, [], [], []
                    for _ in range(reps):
                        wall, results, cpu = app_round(ctx, model, panes)
                        walls.append(wall)
                        cpus.append(cpu)
                        per_pane.append([r.total_s for r in results])
                        used.append(decoders_used(model))
                        print(f"{label}: round {wall:.1f} s, panes {[round(r.total_s, 1) for r in results]}, "
                              f"decoders {used[-1]}, CPU {cpu:.1f} s, load {load_average()}", file=sys.stderr, flush=True)
                        jobs = generations(model, results)
                        tokens = sum(n for _, n in jobs)
                        model.forget_prompts()
                        if raw_threads and raw:
                            raws.append(raw_batched_greedy(model, jobs, raw_threads, stop_at_eog=False)[0])
                    f[f"{label}_load"] = f"{before} / {load_average()}"
                    f[f"{label}_app_s"] = median(walls)
                    f[f"{label}_cpu_s"] = median(cpus)
                    f[f"{label}_panes_s"] = [median([run[i] for run in per_pane]) for i in range(len(panes))]
                    f[f"{label}_decoders"] = max(used)
                    f[f"{label}_raw_s"] = median(raws)
                    f[f"{label}_raw_threads"] = raw_threads
                    f[f"{label}_generations"] = len(jobs)
                    f[f"{label}_tokens"] = tokens
                    f[f"{label}_app_vs_raw"] = f[f"{label}_raw_s"] / f[f"{label}_app_s"]
                if spread is not None:
                    del share.spread
    finally:
        ctx.cache.clear()
    f["busy_vs_quiet"] = f.get("busy_app_s", float("nan")) / f.get("quiet_app_s", float("nan"))
    return f


def report(f: dict) -> str:
    lines = [f"README step 3 on {f['model']}: six panes ({f['panes']}), the apples question, median of {f['reps']} "
             f"cold round(s), wall seconds; raw = the raw batched loop doing the same generations and token counts",
             "", "| machine | load avg before / after | generations, tokens | app round (CPU s) | raw batched loop "
             "(threads) | raw / app |", "| --- | --- | --- | --- | --- | --- |"]
    names = {"quiet": "quiet (no busy process)", "busy": f"{f['busy_processes']} busy processes",
             "busy_one_decoder": f"{f['busy_processes']} busy processes, one decoder (no spreading)",
             "quiet_spread": "quiet, spread over one-thread decoders"}
    labels = [label for label in names if label + "_app_s" in f]
    for label in labels:
        name = names[label]
        if label + "_raw_s" not in f or f[label + "_raw_s"] != f[label + "_raw_s"]:
            lines.append(f"| {name} | {f[label + '_load']} | {f[label + '_generations']}, {f[label + '_tokens']} | "
                         f"{f[label + '_app_s']:.1f} ({f[label + '_cpu_s']:.1f}) | - | - |")
            continue
        lines.append(f"| {name} | {f[label + '_load']} | {f[label + '_generations']}, {f[label + '_tokens']} | "
                     f"{f[label + '_app_s']:.1f} ({f[label + '_cpu_s']:.1f}) | {f[label + '_raw_s']:.1f} ({f[label + '_raw_threads']}) | "
                     f"{f[label + '_app_vs_raw']:.2f}x |")
    lines += ["", "| pane | " + " | ".join(f["panes"].split(",")) + " |", "| --- |" + " --- |" * len(f["panes"].split(","))]
    for label in labels:
        lines.append(f"| {label} ({f[label + '_decoders']} decoder(s)) | " +
                     " | ".join(f"{x:.1f}" for x in f[label + "_panes_s"]) + " |")
    lines += ["", verdict(f)]
    return "\n".join(lines)


def verdict(f: dict) -> str:
    if "busy_app_s" not in f or "quiet_app_s" not in f:
        return "VERDICT: not measured (the quiet and the busy round are both needed)"
    met = f["busy_vs_quiet"] <= 2.0
    return (f"VERDICT: {'MET' if met else 'MISSED'}: the round beside {f['busy_processes']} busy processes took "
            f"{f['busy_app_s']:.1f} s, {f['busy_vs_quiet']:.2f}x its quiet {f['quiet_app_s']:.1f} s (target <= 2x; "
            f"median of {f['reps']}; load {f['quiet_load'].split(' / ')[0]} before the quiet round)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="cold rounds per machine state; the median is shown")
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--variants", action="store_true",
                        help="also the busy round on one decoder and the quiet round spread (no raw loop)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw batched loop (minutes on a loaded machine)")
    parser.add_argument("--only", default="", help="run only these states (comma-separated labels)")
    a = parser.parse_args()
    print(report(main(a.reps, a.busy, a.variants, not a.no_raw, tuple(x for x in a.only.split(",") if x))))
