"""App-level streaming vs raw llama-cpp-python, same model, prompt and settings, alternating.

Baseline: `Llama.create_completion(stream=True)` on the same loaded weights (its own Llama
object). App: `engine.run_plan` through the model cache (chat template rendering, the compute
lock, stop-string handling, our token loop). Targets: tokens/s ratio >= 0.95, TTFT overhead
<= 30 ms.
"""
from __future__ import annotations

import argparse
import time

from common import REPO, bundled_gguf, machine_info, median  # noqa: F401  (puts the repo on sys.path)

from playground.config import Settings
from playground.context import AppContext
from playground.devices import cpu_cores
from playground.engine import run_plan
from playground.prompting.plan import PromptPlan
from playground.sampling import SamplingParams

QUESTION = "Explain in a few sentences why the sky is blue."


def raw_run(llm, prompt_tokens: list[int], max_tokens: int) -> tuple[float, float, int]:
    """(ttft, decode tokens/s, tokens) for one raw streamed completion."""
    start = time.perf_counter()
    ttft, n = None, 0
    for chunk in llm.create_completion(prompt_tokens, max_tokens=max_tokens, temperature=0.0, top_k=0,
                                       top_p=1.0, min_p=0.0, repeat_penalty=1.0, stream=True):
        n += 1
        if ttft is None and chunk["choices"][0]["text"]:
            ttft = time.perf_counter() - start
    total = time.perf_counter() - start
    return ttft or total, (n - 1) / (total - (ttft or 0)) if n > 1 else 0.0, n


def app_run(model, plan: PromptPlan, max_tokens: int) -> tuple[float, float, int]:
    start = time.perf_counter()
    result = None
    for result in run_plan(model, plan, SamplingParams(max_new_tokens=max_tokens)):
        pass
    ttft = result.ttft_s or (time.perf_counter() - start)
    return ttft, result.tokens_per_s or 0.0, result.n_output_tokens


def main(reps: int = 5, max_tokens: int = 128) -> dict:
    from llama_cpp import Llama

    settings = Settings(n_ctx=2048)
    ctx = AppContext.create(settings)
    spec = ctx.catalog.get("smollm2-135m-instruct")
    plan = PromptPlan(mode="zero_shot", messages=({"role": "user", "content": QUESTION},), text=None, stop=())
    raw = Llama(model_path=str(bundled_gguf()), n_ctx=2048, n_threads=settings.threads or cpu_cores(),
                n_threads_batch=settings.threads or cpu_cores(), verbose=False)
    with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        prompt_tokens = model.tokenize(model.render_chat(list(plan.messages)))
        app_run(model, plan, 8), raw_run(raw, prompt_tokens, 8)          # warm up both
        app, base = [], []
        for _ in range(reps):                                            # alternate to share noise
            base.append(raw_run(raw, prompt_tokens, max_tokens))
            app.append(app_run(model, plan, max_tokens))
    raw.close()
    ctx.cache.clear()
    figures = {
        "reps": reps, "max_tokens": max_tokens,
        "raw_tokens_per_s": median([b[1] for b in base]), "app_tokens_per_s": median([a[1] for a in app]),
        "raw_ttft_ms": median([b[0] for b in base]) * 1000, "app_ttft_ms": median([a[0] for a in app]) * 1000,
        "tokens": median([a[2] for a in app]),
    }
    figures["tokens_per_s_ratio"] = figures["app_tokens_per_s"] / figures["raw_tokens_per_s"]
    figures["ttft_overhead_ms"] = figures["app_ttft_ms"] - figures["raw_ttft_ms"]
    return figures


def report(f: dict) -> str:
    return (f"app vs raw llama-cpp-python ({f['reps']} alternating runs, {f['max_tokens']} new tokens, greedy)\n"
            f"  tokens/s: raw {f['raw_tokens_per_s']:.1f}, app {f['app_tokens_per_s']:.1f} "
            f"-> ratio {f['tokens_per_s_ratio']:.3f} (target >= 0.95)\n"
            f"  time to first token: raw {f['raw_ttft_ms']:.1f} ms, app {f['app_ttft_ms']:.1f} ms "
            f"-> overhead {f['ttft_overhead_ms']:+.1f} ms (target <= 30 ms)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    a = parser.parse_args()
    print(report(main(a.reps, a.max_tokens)))
