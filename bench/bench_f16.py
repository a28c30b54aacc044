"""The default model: the bundled SmolLM2-135M as shipped (Q4_1) vs its F16 copy, through the app.

Measured in one run: the F16 build from scratch (into a temporary cache, as on a first start
or once per fresh test checkout), the cache check at every later start, load time, tokens/s
(greedy, the app's engine on llama.cpp) and the answers both give to the README's and the Chat
tab's example questions. The Q4_1 file is the baseline: ratios are F16 / Q4_1.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import bundled_gguf, machine_info, median

from playground.compare import PaneSpec, run_pane
from playground.config import Settings
from playground.context import AppContext
from playground.models.f16 import ensure_f16, f16_build_for, is_ready, sha256_file
from playground.sampling import SamplingParams
from playground.ui.chat import EXAMPLES

QUESTIONS = tuple(dict.fromkeys(("What is the capital of France?", *EXAMPLES)))
Q4_ID, F16_ID = "smollm2-135m-instruct", "smollm2-135m-instruct-f16"


def _answer(ctx: AppContext, model_id: str, question: str, max_tokens: int) -> tuple[str, float, int]:
    pane = PaneSpec(model_id=model_id, sampling=SamplingParams(temperature=0.0, max_new_tokens=max_tokens, seed=0))
    result = None
    for result in run_pane(ctx, pane, question):
        pass
    return result.answer_text, result.tokens_per_s or 0.0, result.n_output_tokens


def main(reps: int = 3, max_tokens: int = 96) -> dict:
    source = bundled_gguf()
    figures: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        build = f16_build_for(source, Path(tmp) / "cache")
        start, cpu = time.perf_counter(), time.process_time()
        target = ensure_f16(build)
        figures["build_s"] = time.perf_counter() - start
        figures["build_cpu_s"] = time.process_time() - cpu
        figures["f16_mb"] = target.stat().st_size / 1e6
        figures["q4_1_mb"] = source.stat().st_size / 1e6
        start = time.perf_counter()
        ready = is_ready(build)
        figures["cached_check_ms"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        sha256_file(source)
        figures["source_sha256_s"] = time.perf_counter() - start
        assert ready

        ctx = AppContext.create(Settings(db_path=Path(tmp) / "b.db", cache_dir=Path(tmp) / "cache", threads=2))
        for model_id, key in ((Q4_ID, "q4_1"), (F16_ID, "f16")):
            spec = ctx.ensure_local(ctx.catalog.get(model_id))
            start = time.perf_counter()
            with ctx.cache.use(spec, "llama_cpp", "cpu"):
                figures[f"{key}_load_s"] = time.perf_counter() - start
        speeds: dict[str, list[float]] = {"q4_1": [], "f16": []}
        answers: dict[str, dict[str, str]] = {"q4_1": {}, "f16": {}}
        for _ in range(reps):          # alternate the two models so load on the machine hits both alike
            for model_id, key in ((Q4_ID, "q4_1"), (F16_ID, "f16")):
                for question in QUESTIONS:
                    text, tps, n = _answer(ctx, model_id, question, max_tokens)
                    if n >= 16:
                        speeds[key].append(tps)
                    answers[key][question] = text
        ctx.cache.clear()
    figures["q4_1_tokens_per_s"] = median(speeds["q4_1"])
    figures["f16_tokens_per_s"] = median(speeds["f16"])
    figures["ratio_f16_vs_q4_1_tokens_per_s"] = figures["f16_tokens_per_s"] / figures["q4_1_tokens_per_s"]
    print(f"machine: {machine_info()}")
    print(f"F16 build from {source.name}: {figures['build_s']:.1f} s wall, {figures['build_cpu_s']:.1f} s CPU, "
          f"{figures['f16_mb']:.0f} MB (Q4_1 file {figures['q4_1_mb']:.0f} MB); cached check "
          f"{figures['cached_check_ms']:.1f} ms; hashing the source {figures['source_sha256_s']:.2f} s")
    print(f"greedy, {max_tokens} new tokens max, 2 threads, {reps} reps, medians: Q4_1 "
          f"{figures['q4_1_tokens_per_s']:.1f} tok/s, F16 {figures['f16_tokens_per_s']:.1f} tok/s "
          f"(ratio {figures['ratio_f16_vs_q4_1_tokens_per_s']:.2f}); load Q4_1 {figures['q4_1_load_s']:.2f} s, "
          f"F16 {figures['f16_load_s']:.2f} s")
    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for key in ("q4_1", "f16"):
            shown = " ".join(answers[key][question].split())
            print(f"  {key:5}: {shown[:240]}{'…' if len(shown) > 240 else ''}")
    return figures


if __name__ == "__main__":
    main()
