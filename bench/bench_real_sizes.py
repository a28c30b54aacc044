"""Speed at real sizes: each model of the ladder through the app against raw llama-cpp-python, and
a four-pane batched round against the same panes one after another, in the same run.

Part 1, per model (135M Q4_1, 135M F16, Gemma 3 270M base when installed, Qwen2.5-Coder 0.5B and
1.5B): decode tokens/s and time to first token, raw `Llama.create_completion(stream=True)` on its own
Llama object vs the app's `engine.run_plan` (bench_app's two loops), alternating; both sides get
the same tokens (the app's exact prompt: chat template, or a plain question frame for a base
model, with BOS). A model missing from the catalog is reported and skipped. Part 2, on the two Qwen models: four panes
(zero-shot, few-shot, few-shot CoT, instruction) through `compare`, as the Playground runs them,
against the four one after another and against one pane alone (bench_batch's figures).

    nice -n 10 python bench/bench_real_sizes.py --threads 1 --reps 2 --max-tokens 48

On a shared, loaded machine use --threads 1: two llama.cpp threads spin-wait for each other when
other processes hold the cores. The load average is printed with the figures.
"""
from __future__ import annotations

import argparse
import json

from common import machine_info, median, sequential_and_one  # also puts the repo on sys.path

from bench_app import app_run, raw_run
from playground.commands.compare_cmd import compare
from playground.compare import playground_pane
from playground.config import Settings
from playground.devices import cpu_cores
from playground.engine import exact_prompt
from playground.context import AppContext
from playground.prompting.plan import PromptPlan
from playground.sampling import SamplingParams

MODELS = ("smollm2-135m-instruct", "smollm2-135m-instruct-f16", "gemma3-270m-base", "qwen2.5-coder-0.5b-instruct",
          "qwen2.5-coder-1.5b-instruct")
BATCHED = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
FOUR = ("zero_shot", "few_shot", "few_shot_cot", "instruction")
QUESTION = "Explain in a few sentences why the sky is blue."
ROLLS = "A baker makes 40 rolls and sells 17. How many rolls are left?"


def app_vs_raw(ctx: AppContext, model_id: str, reps: int, max_tokens: int) -> dict:
    from llama_cpp import Llama

    spec = ctx.ensure_local(ctx.catalog.get(model_id))
    plan = (PromptPlan(mode="zero_shot", messages=({"role": "user", "content": QUESTION},), text=None, stop=())
            if spec.is_chat else PromptPlan(mode="zero_shot", messages=None, text=f"Q: {QUESTION}\nA:", stop=()))
    raw = Llama(model_path=str(spec.path), n_ctx=2048, n_threads=ctx.settings.threads or cpu_cores(),
                n_threads_batch=ctx.settings.threads or cpu_cores(), verbose=False)
    try:
        with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
            tokens = model.tokenize(exact_prompt(model, plan))
            app_run(model, plan, 4), raw_run(raw, tokens, 4)            # warm up both
            app, base = [], []
            for _ in range(reps):
                base.append(raw_run(raw, tokens, max_tokens))
                app.append(app_run(model, plan, max_tokens))
    finally:
        raw.close()
        ctx.cache.clear()
    f = {"model": model_id, "raw_tokens_per_s": median([b[1] for b in base]),
         "app_tokens_per_s": median([a[1] for a in app]), "raw_ttft_s": median([b[0] for b in base]),
         "app_ttft_s": median([a[0] for a in app])}
    f["ratio"] = f["app_tokens_per_s"] / f["raw_tokens_per_s"] if f["raw_tokens_per_s"] else None
    return f


def four_panes_vs_solo(ctx: AppContext, model_id: str, reps: int, max_tokens: int) -> dict:
    sampling = SamplingParams(max_new_tokens=max_tokens)
    spec = ctx.ensure_local(ctx.catalog.get(model_id))
    with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        panes = [playground_pane(ctx, model_id, m, sampling=sampling) for m in FOUR]
        batched, sequential, one = [], [], []
        for _ in range(reps):
            model.forget_prompts()
            batched.append(compare(ctx, panes, ROLLS)[0])
            seq, alone = sequential_and_one(ctx, model, panes, ROLLS)
            sequential.append(seq)
            one.append(alone)
    ctx.cache.clear()
    f = {"model": model_id, "four_batched_s": median(batched), "four_sequential_s": median(sequential),
         "one_pane_s": median(one)}
    f["batched_vs_sequential"] = f["four_batched_s"] / f["four_sequential_s"]
    f["batched_in_one_panes"] = f["four_batched_s"] / f["one_pane_s"]
    return f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--skip-batched", action="store_true")
    args = parser.parse_args(argv)
    settings = Settings(n_ctx=2048, **({"threads": args.threads} if args.threads else {}))
    ctx = AppContext.create(settings)
    out = {"machine": machine_info(), "threads": settings.threads, "app_vs_raw": [], "four_panes": []}
    for model_id in args.models.split(","):
        if model_id not in ctx.catalog.models:
            print(f"{model_id}: not in the catalog here (not installed): skipped", flush=True)
            continue
        f = app_vs_raw(ctx, model_id, args.reps, args.max_tokens)
        out["app_vs_raw"].append(f)
        print(f"{model_id}: raw {f['raw_tokens_per_s']:.1f} tok/s, app {f['app_tokens_per_s']:.1f} tok/s "
              f"(x{f['ratio']:.2f}); first token raw {f['raw_ttft_s']:.2f} s, app {f['app_ttft_s']:.2f} s "
              f"[load {machine_info()['load average']}]", flush=True)
    if not args.skip_batched:
        for model_id in BATCHED:
            if model_id not in args.models.split(","):
                continue
            f = four_panes_vs_solo(ctx, model_id, args.reps, args.max_tokens)
            out["four_panes"].append(f)
            print(f"{model_id}: 4 panes batched {f['four_batched_s']:.1f} s, one after another "
                  f"{f['four_sequential_s']:.1f} s (x{f['batched_vs_sequential']:.2f}), one pane {f['one_pane_s']:.1f} s "
                  f"-> batched = {f['batched_in_one_panes']:.2f} panes [load {machine_info()['load average']}]",
                  flush=True)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
