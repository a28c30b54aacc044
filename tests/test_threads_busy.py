"""Threads follow the machine, through the real parts: the default model through the real
llama.cpp backend, with busy processes the test starts beside it.

With a busy process on a 2-core machine every decode step runs on fewer threads than cores
(read back from llama.cpp's own context), and the greedy answer is token for token the one a
fixed-thread run (`--threads 2`, which never adapts) gives: the thread count changes how fast,
never what (llama.cpp's CPU kernels give each output row to one thread).
"""
from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from typing import Iterator

from playground.config import Settings
from playground.context import AppContext
from playground.devices import cpu_cores
from playground.sampling import SamplingParams

QUESTION = "A cafeteria had 23 apples. They used 20 and bought 6 more. How many apples do they have?"
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=40)


@contextmanager
def busy_processes(n: int, deadline_s: float = 300.0) -> Iterator[None]:
    """n plain Python busy loops, ending by themselves after deadline_s, stopped on exit."""
    code = f"import time\nend = time.time() + {deadline_s}\nwhile time.time() < end:\n    pass\n"
    procs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)


def generate(ctx: AppContext, model_id: str, watch_threads: bool) -> tuple[str, list[int]]:
    """The greedy answer and, per streamed piece, the threads the model's batch context runs on."""
    import llama_cpp

    spec = ctx.ensure_local(ctx.catalog.get(model_id))
    threads: list[int] = []
    with ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        prompt = model.render_chat([{"role": "user", "content": QUESTION}])
        model.forget_prompts()
        pieces = []
        for chunk in model.stream(prompt, GREEDY):
            pieces.append(chunk.text)
            if watch_threads and model._batch is not None:
                threads.append(llama_cpp.llama_n_threads(model._batch.ctx.ctx))
    return "".join(pieces), threads


def test_beside_busy_processes_fewer_threads_and_the_same_tokens(session_settings, tmp_path) -> None:
    adaptive = AppContext.create(Settings(data_dir=tmp_path, db_path=tmp_path / "a.db",
                                          models_dir=session_settings.models_dir, n_ctx=2048))
    fixed = AppContext.create(Settings(data_dir=tmp_path, db_path=tmp_path / "f.db",
                                       models_dir=session_settings.models_dir, n_ctx=2048, threads=2))
    model_id = adaptive.settings.default_model
    try:
        assert adaptive.cache.device_lock("cpu").free is not None      # the default follows the machine
        assert fixed.cache.device_lock("cpu").free is None             # --threads N never changes
        cores = cpu_cores()
        with busy_processes(max(2, cores)):
            busy_text, busy_threads = generate(adaptive, model_id, watch_threads=True)
        fixed_text, _ = generate(fixed, model_id, watch_threads=False)
    finally:
        adaptive.cache.clear()
        fixed.cache.clear()
    assert busy_threads, "no piece was streamed"
    assert max(busy_threads) < cores if cores > 1 else max(busy_threads) == 1, (cores, busy_threads)
    assert busy_text == fixed_text
    assert busy_text.strip()
