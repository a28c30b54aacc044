"""Lab throughput: the bundled model on GSM8K items, zero-shot and few-shot CoT, app vs raw.

App: `playground.lab.run_lab` (prompt building, generation, answer extraction, one SQLite write
per item; the gold log-likelihood metric off so both sides generate only). Baseline in the same
run: the exact prompts the lab sent, through raw llama-cpp-python `create_completion` with the
same greedy settings. The model is loaded on both sides before the clock starts. Also measured:
the lab as people run it, with the gold log-likelihood metric on (one extra scoring pass per
item), and the accuracy table.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import REPO, bundled_gguf

from playground.config import Settings
from playground.context import AppContext
from playground.lab import LabConfig, format_summary, load_items, prepare_lab, run_lab, summarize
from storage import open_database

GSM8K = next((p for p in (REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl",          # beside the repo
                           REPO.parent.parent / "shared" / "data" / "gsm8k" / "test.jsonl")   # beside a worktree folder
              if p.is_file()), REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl")


TARGET_RATIO = 0.9   # the target: lab items (few-shot: a shared exemplar prefix) at >= 0.9x raw llama-cpp-python


def main(items: int = 10, max_tokens: int = 128, shots: int = 4, threads: int | None = None) -> dict:
    from llama_cpp import Llama

    if not GSM8K.is_file():
        raise SystemExit(f"{GSM8K} not found (the GSM8K test split beside the repo)")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = Path(tmp) / "gsm8k.jsonl"
        tasks.write_text("\n".join(GSM8K.read_text(encoding="utf-8").splitlines()[:items]) + "\n", encoding="utf-8")
        settings = Settings(db_path=Path(tmp) / "lab.db", **({"threads": threads} if threads else {}))
        ctx = AppContext.create(settings)
        figures: dict = {"items": items, "max_tokens": max_tokens, "shots": shots, "threads": settings.threads}
        raw = Llama(model_path=str(bundled_gguf()), n_ctx=settings.n_ctx, n_threads=settings.threads,
                    n_threads_batch=settings.threads, verbose=False)
        spec = ctx.catalog.get("smollm2-135m-instruct")
        with ctx.cache.use(spec, "llama_cpp", "cpu"):
            pass   # loaded once here, outside the timings; run_lab borrows it from the cache
        # One lab item first, timed apart (warmup_s), so the ratios compare steady-state items. NOTE: on the
        # loaded dev machine (Dec 2) zero-shot items ran at 0.01-0.05x raw in three runs, also after this
        # warm-up, while few-shot CoT ran at 0.94-1.14x (CPU 0.78-1.00x); the zero-shot gap is not explained.
        one = Path(tmp) / "warmup.jsonl"
        one.write_text(GSM8K.read_text(encoding="utf-8").splitlines()[items] + "\n", encoding="utf-8")
        start = time.perf_counter()
        run_lab(ctx, prepare_lab(ctx, LabConfig(task_path=one, models=("smollm2-135m-instruct",),
                                                modes=("zero_shot",), max_tokens=8, logprob=False)), settings.db_path)
        figures["warmup_s"] = time.perf_counter() - start
        for mode in ("zero_shot", "few_shot_cot"):
            job = prepare_lab(ctx, LabConfig(task_path=tasks, models=("smollm2-135m-instruct",), modes=(mode,),
                                             shots=shots, max_tokens=max_tokens, logprob=False))
            start, cpu = time.perf_counter(), time.process_time()
            outcome = run_lab(ctx, job, settings.db_path)
            app_s, app_cpu = time.perf_counter() - start, time.process_time() - cpu
            scored = prepare_lab(ctx, LabConfig(task_path=tasks, models=("smollm2-135m-instruct",), modes=(mode,),
                                                shots=shots, max_tokens=max_tokens, logprob=True))
            start = time.perf_counter()
            run_lab(ctx, scored, settings.db_path)
            figures[f"{mode}_app_logprob_items_per_s"] = items / (time.perf_counter() - start)
            with open_database(settings.db_path) as db:
                prompts = [r["prompt"] for r in load_items(db, outcome.run_ids)]
                rows = summarize(db, outcome.run_ids)
            start, cpu = time.perf_counter(), time.process_time()
            for prompt in prompts:
                tokens = raw.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
                raw.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, top_k=0, top_p=1.0,
                                      min_p=0.0, repeat_penalty=1.0)
            raw_s, raw_cpu = time.perf_counter() - start, time.process_time() - cpu
            figures[f"{mode}_app_items_per_s"] = items / app_s
            figures[f"{mode}_raw_items_per_s"] = items / raw_s
            figures[f"{mode}_ratio"] = raw_s / app_s
            figures[f"{mode}_cpu_ratio"] = raw_cpu / app_cpu      # less sensitive to a shared machine
            figures[f"{mode}_accuracy"] = rows[0].accuracy if rows else float("nan")
            figures["model_loads"] = ctx.cache.loads
            print(format_summary(rows))
        raw.close()
        ctx.cache.clear()
    return figures


def report(f: dict) -> str:
    lines = [f"GSM8K, first {f['items']} items, bundled SmolLM2-135M, greedy, {f['max_tokens']} new tokens max, "
             f"{f.get('threads', '?')} thread(s)"]
    for mode in ("zero_shot", "few_shot_cot"):
        lines.append(f"  {mode}: app {f[mode + '_app_items_per_s']:.2f} items/s, raw llama-cpp-python "
                     f"{f[mode + '_raw_items_per_s']:.2f} items/s -> ratio {f[mode + '_ratio']:.2f} wall, "
                     f"{f[mode + '_cpu_ratio']:.2f} CPU time (target >= {TARGET_RATIO}); "
                     f"with the gold log-likelihood metric {f[mode + '_app_logprob_items_per_s']:.2f} items/s; "
                     f"accuracy {100 * f[mode + '_accuracy']:.0f}%")
    lines.append(f"  model loads in the app: {f['model_loads']} (runs share the cached model); first lab run "
                 f"(1 item, timed apart): {f['warmup_s']:.1f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--shots", type=int, default=4)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    a = parser.parse_args()
    print(report(main(a.items, a.max_tokens, a.shots, a.threads)))
