"""Where the six-stream batch's per-token cost goes (raw llama-cpp-python low-level API).

docs/benchmarks.md found a token about 18% dearer in the app's batched context (6 sequences,
one KV stream each) than in one context per pane. This measures the parts on the bundled model,
with the contexts built as `bench/batch_determinism.py` builds them:

- rows: k tokens of one sequence in one `llama_decode` (k = 1, 2, 4, 6) in a one-sequence
  context, with logits on every row (decode steps) and on none (prompt chunks): what a row costs
  when rows share a step, on 1 thread, in CPU time (robust on a shared machine), and on 2
  threads in wall time;
- streams: a 64-token prompt chunk and a one-token step of one sequence in the six-stream
  context vs the one-sequence context (CPU time, 1 thread);
- gaps: a step of three sequences with consecutive ids (0, 1, 2) vs ids with gaps (0, 2, 4): with
  one KV stream per sequence llama.cpp splits a batch into micro-batches of consecutive sequence
  ids with equal token counts (`split_equal`, seen with LLAMA_BATCH_DEBUG=1), so 0, 2, 4 run
  as three graph computations;
- mix: six "compare modes" panes through the app's batch vs each pane alone (1 thread), every
  `llama_decode` timed in CPU time and split into prompt tokens and decode rows: the batched run's
  time against what its tokens would cost at the solo run's rate for each kind.

`python bench/batch_rows.py` prints the table and the ratios.
"""
from __future__ import annotations

import ctypes
import time
from contextlib import contextmanager
from typing import Iterator

from batch_determinism import CHUNK, QUESTIONS, Runner, chat  # also puts the repo on sys.path


def _context(runner: Runner, width: int, threads: int):
    import llama_cpp
    from llama_cpp._internals import LlamaBatch, LlamaContext

    params = llama_cpp.llama_context_params()
    ctypes.pointer(params)[0] = runner.llm.context_params
    params.n_seq_max, params.n_ctx, params.kv_unified = width, 2048 * width, False
    params.n_threads = params.n_threads_batch = threads
    return LlamaContext(model=runner.llm._model, params=params, verbose=False), \
        LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)


def _best(fn, reps: int, wall: bool = False) -> float:
    """The fastest of reps runs, in seconds (CPU time unless wall)."""
    clock = time.perf_counter if wall else time.process_time
    best = float("inf")
    for _ in range(reps):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


@contextmanager
def _traced_decodes() -> Iterator[list[tuple[int, int, float, list[int]]]]:
    """Every llama_decode of the app's batch: (prompt tokens, decode rows, CPU s of its thread, sequence ids)."""
    from playground.backends import llama_batch

    calls: list[tuple[int, int, float, list[int]]] = []
    original = llama_batch.BatchDecoder._decode_or_fail

    def traced(self, items, gens):
        rows = sum(1 for item in items if item[3])
        start = time.thread_time()
        ok = original(self, items, gens)
        calls.append((len(items) - rows, rows, time.thread_time() - start, sorted({item[2] for item in items})))
        return ok

    llama_batch.BatchDecoder._decode_or_fail = traced
    try:
        yield calls
    finally:
        llama_batch.BatchDecoder._decode_or_fail = original


def mix(max_tokens: int = 32) -> dict:
    """Six compare-modes panes batched vs each alone, 1 thread, every decode call timed by kind."""
    from playground.compare import COMPARE_MODES_ORDER, playground_pane, run_pane, run_panes
    from playground.config import Settings
    from playground.context import AppContext
    from playground.sampling import SamplingParams

    ctx = AppContext.create(Settings(threads=1))
    try:
        spec = ctx.catalog.get("smollm2-135m-instruct")
        with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
            panes = [playground_pane(ctx, spec.id, m, sampling=SamplingParams(max_new_tokens=max_tokens))
                     for m in COMPARE_MODES_ORDER]
            question = "A baker makes 61 rolls and sells 17. How many rolls are left?"
            for _ in run_pane(ctx, panes[0], question):      # warm up
                pass
            with _traced_decodes() as calls:
                model.forget_prompts()
                for _ in run_panes(ctx, panes, question, min_interval_s=0.05):
                    pass
                batched = list(calls)
                calls.clear()
                for pane in panes:
                    model.forget_prompts()
                    for _ in run_pane(ctx, pane, question):
                        pass
                solo = list(calls)
    finally:
        ctx.cache.clear()

    def total(cs):
        return sum(c[0] for c in cs), sum(c[1] for c in cs), sum(c[2] for c in cs)

    chunks, steps_ = [c for c in solo if c[1] == 0], [c for c in solo if c[0] == 0]
    per_prompt, per_row = total(chunks)[2] / total(chunks)[0], total(steps_)[2] / total(steps_)[1]
    p, d, t = total(batched)
    ps, ds, ts = total(solo)
    several = [c for c in batched if c[1] > 1]
    return {"mix_solo_prompt_tokens": ps, "mix_solo_decode_rows": ds, "mix_solo_cpu_s": round(ts, 3),
            "mix_solo_ms_per_token": round(ts * 1000 / (ps + ds), 3),
            "mix_prompt_token_ms": round(per_prompt * 1000, 3), "mix_decode_row_ms": round(per_row * 1000, 3),
            "mix_batched_prompt_tokens": p, "mix_batched_decode_rows": d, "mix_batched_cpu_s": round(t, 3),
            "mix_batched_ms_per_token": round(t * 1000 / (p + d), 3),
            "mix_batched_at_solo_rates_s": round(p * per_prompt + d * per_row, 3),
            "mix_batched_vs_solo_rates": round(t / (p * per_prompt + d * per_row), 3),
            "mix_calls_with_several_rows": len(several),
            "mix_of_which_with_id_gaps": sum(1 for c in several if c[3] != list(range(c[3][0], c[3][-1] + 1)))}


def main(reps: int = 3, steps: int = 16, max_tokens: int = 32) -> dict:
    runner = Runner(threads=1)
    prompt = runner.tokens(chat(QUESTIONS[0]))
    chunk = runner.tokens(chat(QUESTIONS[2], shots=8))[:CHUNK]
    last = len(prompt) - 1
    figures: dict = {"reps": reps, "steps": steps}

    def prefill(ctx, batch, seqs) -> None:
        ctx.kv_cache_clear()
        for s in seqs:
            runner.fill(batch, [(t, p, s, False) for p, t in enumerate(prompt[:-1])])
            ctx.decode(batch)

    def rows(ctx, batch, k: int, logits: bool):
        def run() -> None:
            for _ in range(steps):
                ctx.kv_cache_seq_rm(0, last, -1)
                runner.fill(batch, [(prompt[-1], last + i, 0, logits) for i in range(k)])
                ctx.decode(batch)
        return run

    def step(ctx, batch, seqs):
        def run() -> None:
            for _ in range(steps):
                for s in seqs:
                    ctx.kv_cache_seq_rm(s, last, -1)
                runner.fill(batch, [(prompt[-1], last, s, True) for s in seqs])
                ctx.decode(batch)
        return run

    def prompt_chunk(ctx, batch):
        def run() -> None:
            for _ in range(steps // 4):
                ctx.kv_cache_seq_rm(0, last, -1)
                runner.fill(batch, [(t, last + p, 0, False) for p, t in enumerate(chunk)])
                ctx.decode(batch)
        return run

    lines = ["ms per row (min of %d runs of %d decodes)" % (reps, steps),
             "k rows of one sequence in one llama_decode | 1 thread CPU, logits | 1 thread CPU, no logits | "
             "2 threads wall, logits"]
    solo1 = _context(runner, 1, 1)
    solo2 = _context(runner, 1, 2)
    for ctx, batch in (solo1, solo2):
        prefill(ctx, batch, [0])
    for k in (1, 2, 4, 6):
        with_logits = _best(rows(*solo1, k, True), reps) / steps / k * 1000
        without = _best(rows(*solo1, k, False), reps) / steps / k * 1000
        wall2 = _best(rows(*solo2, k, True), reps, wall=True) / steps / k * 1000
        figures[f"row_ms_logits_k{k}"], figures[f"row_ms_no_logits_k{k}"] = round(with_logits, 3), round(without, 3)
        figures[f"row_ms_2threads_wall_k{k}"] = round(wall2, 3)
        lines.append(f"  k = {k}: {with_logits:6.2f} | {without:6.2f} | {wall2:6.2f}")
    six = _context(runner, 6, 1)
    prefill(*six, range(6))
    prefill(*solo1, [0])
    chunk_solo = _best(prompt_chunk(*solo1), reps) / (steps // 4) / CHUNK * 1000
    chunk_six = _best(prompt_chunk(*six), reps) / (steps // 4) / CHUNK * 1000
    prefill(*six, range(6))
    step_solo = _best(step(*solo1, [0]), reps) / steps * 1000
    step_six = _best(step(*six, [0]), reps) / steps * 1000
    together = _best(step(*six, [0, 1, 2]), reps) / steps * 1000
    gapped = _best(step(*six, [0, 2, 4]), reps) / steps * 1000
    figures.update(chunk_row_ms_one_seq_ctx=round(chunk_solo, 3), chunk_row_ms_six_stream_ctx=round(chunk_six, 3),
                   step_ms_one_seq_ctx=round(step_solo, 3), step_ms_six_stream_ctx=round(step_six, 3),
                   step_ms_seqs_012=round(together, 3), step_ms_seqs_024=round(gapped, 3))
    lines += [f"six-stream vs one-sequence context, 1 thread CPU: prompt chunk {chunk_six:.2f} vs {chunk_solo:.2f} ms a "
              f"token ({chunk_six / chunk_solo:.2f}x); one-token step {step_six:.2f} vs {step_solo:.2f} ms "
              f"({step_six / step_solo:.2f}x)",
              f"a step of sequences 0,1,2 (one micro-batch) {together:.2f} ms vs 0,2,4 (three) {gapped:.2f} ms "
              f"({gapped / together:.2f}x), 1 thread CPU",
              f"a decode row batched with 5 others costs {figures['row_ms_logits_k6'] / figures['row_ms_logits_k1']:.2f}x "
              f"a row alone (1 thread CPU, with logits; {figures['row_ms_no_logits_k6'] / figures['row_ms_no_logits_k1']:.2f}x "
              f"without); 2 threads wall {figures['row_ms_2threads_wall_k6'] / figures['row_ms_2threads_wall_k1']:.2f}x "
              f"(no target: an explanation, see docs/benchmarks.md)"]
    m = mix(max_tokens)
    figures.update(m)
    lines += [f"six compare-modes panes, {max_tokens} new tokens max, 1 thread, CPU time of every llama_decode:",
              f"  alone: {m['mix_solo_prompt_tokens']} prompt tokens + {m['mix_solo_decode_rows']} decode rows, "
              f"{m['mix_solo_cpu_s']:.2f} s ({m['mix_solo_ms_per_token']:.2f} ms a token; a prompt token "
              f"{m['mix_prompt_token_ms']:.2f} ms, a decode row {m['mix_decode_row_ms']:.2f} ms)",
              f"  batched: {m['mix_batched_prompt_tokens']} prompt tokens + {m['mix_batched_decode_rows']} decode rows, "
              f"{m['mix_batched_cpu_s']:.2f} s ({m['mix_batched_ms_per_token']:.2f} ms a token); at the solo rates per "
              f"kind {m['mix_batched_at_solo_rates_s']:.2f} s -> {m['mix_batched_vs_solo_rates']:.3f}",
              f"  batched calls with several decode rows: {m['mix_calls_with_several_rows']}, of which "
              f"{m['mix_of_which_with_id_gaps']} with gaps in their sequence ids"]
    print("\n".join(lines))
    return figures


if __name__ == "__main__":
    main()
