"""Judgements per second: the bundled model as judge, app vs a raw llama-cpp-python loop.

App: `playground.judge.runner.judge_battles` (judge prompt, chat template, generation, verdict
parsing, one SQLite write per order) on stored battles, both orders. Baseline in the same run:
the exact judge prompts the app sent (read back from `judge_verdicts`), through raw
llama-cpp-python `create_completion` with the same greedy settings and token budget. The model
is loaded on both sides before the clock starts, and each side makes one short warm-up generation
first (the app's batched decoder allocates its own llama.cpp context on first use, ~0.5 s of CPU:
a load cost, not a per-judgement one); the app runs first, then the raw loop, then the app again
on a fresh database, and the mean of the two app runs is used. CPU time (`time.process_time`, all
threads of this process: the app decodes in a worker thread) is reported next to wall time, as it
is much less sensitive to other load on the machine. `prefix_reused_tokens` counts the prompt
tokens each judge prompt shares with the one before it, which raw llama-cpp-python re-uses from its
KV cache while the app's backend prefills every prompt whole (docs/benchmarks.md).
Run: python bench/bench_judge.py [--battles 6] [--max-tokens 64]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import bundled_gguf, machine_info

from playground.config import Settings
from playground.context import AppContext
from playground.judge.runner import judge_battles
from playground.sampling import SamplingParams
from storage import GenerationRecord, create_battle, insert_generation, open_database, record_vote

MODEL = "smollm2-135m-instruct"
QUESTIONS = ("What is 12 times 7?", "Name three primary colours.", "Is the sun a star?",
             "Translate 'good morning' into French.", "What is the capital of Italy?",
             "How many legs does a spider have?", "Give a synonym of 'happy'.", "What is 100 divided by 4?")


def make_battles(db_path: Path, n: int) -> None:
    with open_database(db_path) as db:
        for i in range(n):
            q = QUESTIONS[i % len(QUESTIONS)] + f" (case {i})"
            conv = [{"role": "user", "content": q}]
            left = insert_generation(db, GenerationRecord(model_id="a", conversation=conv, finish_reason="stop",
                                                          output=f"The answer to '{q}' is straightforward: see above."))
            right = insert_generation(db, GenerationRecord(model_id="b", conversation=conv, finish_reason="stop",
                                                           output="I am not sure, but I think it depends."))
            battle = create_battle(db, left_generation_id=left, right_generation_id=right, anonymous=True,
                                   session_id="bench")
            record_vote(db, battle_id=battle, winner="left", session_id="bench")


def main(battles: int = 6, max_tokens: int = 64) -> dict:
    from llama_cpp import Llama

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(db_path=Path(tmp) / "judge.db", models_dir=Path(tmp) / "models")
        ctx = AppContext.create(settings)
        raw = Llama(model_path=str(bundled_gguf()), n_ctx=settings.n_ctx, n_threads=settings.threads,
                    n_threads_batch=settings.threads, verbose=False)
        with ctx.cache.use(ctx.catalog.get(MODEL), "llama_cpp", "cpu") as model:
            for _ in model.stream("Hello", SamplingParams(temperature=0.0, max_new_tokens=1)):
                pass   # loaded and warmed here, outside the timings; the runner borrows it from the cache
        raw.create_completion(raw.tokenize(b"Hello"), max_tokens=1, temperature=0.0)
        app_s, app_cpu = [], []
        prompts: list[str] = []
        for rep in range(2):
            db_path = Path(tmp) / f"judge{rep}.db"
            make_battles(db_path, battles)
            start, cpu = time.perf_counter(), time.process_time()
            report = judge_battles(ctx, db_path, MODEL, "general", max_tokens=max_tokens)
            app_s.append(time.perf_counter() - start)
            app_cpu.append(time.process_time() - cpu)
            assert report.judged == 2 * battles, report
            if rep == 0:
                with open_database(db_path) as db:
                    rows = list(db.execute("SELECT judge_prompt, raw_output FROM judge_verdicts ORDER BY id"))
                prompts = [r[0] for r in rows]
                app_tokens = sum(len(raw.tokenize(r[1].encode("utf-8"), add_bos=False)) for r in rows)
                raw_tokens = 0
                token_lists = [raw.tokenize(p.encode("utf-8"), add_bos=False, special=True) for p in prompts]
                prompt_tokens = sum(len(t) for t in token_lists)
                reused = sum(len(os.path.commonprefix([a, b])) for a, b in zip(token_lists, token_lists[1:], strict=False))
                start, cpu = time.perf_counter(), time.process_time()
                for prompt in prompts:
                    tokens = raw.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
                    out = raw.create_completion(tokens, max_tokens=max_tokens, temperature=0.0, top_k=0, top_p=1.0,
                                                min_p=0.0, repeat_penalty=1.0, seed=0)
                    raw_tokens += out["usage"]["completion_tokens"]
                raw_s = time.perf_counter() - start
                raw_cpu = time.process_time() - cpu
        raw.close()
        ctx.cache.clear()
    app = sorted(app_s)[len(app_s) // 2] if len(app_s) % 2 else sum(app_s) / len(app_s)
    n = 2 * battles
    return {"battles": battles, "judgements": n, "max_tokens": max_tokens, "app_judgements_per_s": n / app,
            "raw_judgements_per_s": n / raw_s, "ratio": raw_s / app, "app_runs_s": app_s, "raw_s": raw_s,
            "app_cpu_s": app_cpu, "raw_cpu_s": raw_cpu, "ratio_cpu": raw_cpu / (sum(app_cpu) / len(app_cpu)),
            "prompt_tokens": prompt_tokens, "prefix_reused_tokens": reused,
            "app_output_tokens": app_tokens, "raw_output_tokens": raw_tokens,
            "load average": machine_info()["load average"]}


def report(f: dict) -> str:
    return (f"{f['judgements']} judgements ({f['battles']} battles x 2 orders), bundled SmolLM2-135M, greedy, "
            f"{f['max_tokens']} new tokens max: app {f['app_judgements_per_s']:.2f} judgements/s, raw "
            f"llama-cpp-python {f['raw_judgements_per_s']:.2f} judgements/s -> ratio {f['ratio']:.2f} "
            f"(app runs {', '.join(f'{s:.1f}' for s in f['app_runs_s'])} s; raw {f['raw_s']:.1f} s; output tokens "
            f"app {f['app_output_tokens']} (first run), raw {f['raw_output_tokens']}; "
            f"load average {f['load average']}); CPU time: app {', '.join(f'{s:.1f}' for s in f['app_cpu_s'])} s, "
            f"raw {f['raw_cpu_s']:.1f} s -> CPU ratio {f['ratio_cpu']:.2f}; raw llama-cpp-python re-used "
            f"{f['prefix_reused_tokens']} of {f['prompt_tokens']} prompt tokens from its KV cache (shared prefixes); "
            f"target ratio >= 0.9")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=64)
    a = parser.parse_args()
    print(report(main(a.battles, a.max_tokens)))
