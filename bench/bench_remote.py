"""Remote vs in-process: the bundled SmolLM2 through llama-cpp-python's OpenAI-compatible server
(the openai_compat backend) against in-process llama-cpp-python (the llama_cpp backend), same
GGUF, prompt, greedy settings and thread count; then 4 concurrent users vs 1 on the server.

Runs alternate (in-process, remote, remote, in-process, ...) and each rep uses a fresh prompt
prefix so neither side reuses the previous prompt's KV cache. Figures are medians.
Run: python bench/bench_remote.py [--reps 5] [--max-tokens 64] [--users 4]
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bundled_gguf, machine_info, median  # noqa: E402  (also puts the repo on sys.path)

from playground.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from playground.backends.openai_compat import OpenAICompatBackend  # noqa: E402
from playground.models.catalog import spec_from_gguf  # noqa: E402
from playground.models.gguf_meta import gguf_info  # noqa: E402
from playground.models.remote import remote_spec  # noqa: E402
from playground.sampling import SamplingParams  # noqa: E402

THREADS = 2
N_CTX = 2048
PROMPT = "Run {i}. Write the numbers from 1 to 300 in words, separated by commas: one, two, three,"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf: Path, log: Path) -> tuple[subprocess.Popen, str]:
    """python -m llama_cpp.server on a free loopback port; returns (process, base URL) once ready."""
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", str(N_CTX), "--n_threads", str(THREADS),
                             "--n_threads_batch", str(THREADS), "--interrupt_requests", "False"],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited: {log.read_text(errors='replace')[-800:]}")
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("llama_cpp.server did not start within 120 s")


def one_run(model, prompt: str, max_tokens: int) -> dict[str, float]:
    """Stream once; ttft from the call, decode tokens/s after the first token (as the panes show)."""
    start = time.perf_counter()
    ttft, n_out = None, 0
    for chunk in model.stream(prompt, SamplingParams(max_new_tokens=max_tokens)):
        if chunk.text and ttft is None:
            ttft = time.perf_counter() - start
        n_out = chunk.n_output_tokens
    total = time.perf_counter() - start
    ttft = ttft if ttft is not None else total
    decode = total - ttft
    return {"ttft_s": ttft, "tokens": float(n_out), "total_s": total,
            "tokens_per_s": (n_out - 1) / decode if n_out > 1 and decode > 0 else float("nan")}


def users_at_once(model, n_users: int, max_tokens: int, tag: str) -> dict[str, float]:
    """n users streaming at once: aggregate tokens per wall-clock second and their median ttft."""
    results: list[dict[str, float]] = [{} for _ in range(n_users)]
    barrier = threading.Barrier(n_users + 1)

    def user(i: int) -> None:
        barrier.wait()
        results[i] = one_run(model, PROMPT.format(i=f"{tag}-{i}"), max_tokens)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(n_users)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    tokens = sum(r["tokens"] for r in results)
    return {"aggregate_tokens_per_s": tokens / wall, "median_ttft_s": median([r["ttft_s"] for r in results]),
            "wall_s": wall, "tokens": tokens}


def main(reps: int = 5, max_tokens: int = 64, users: int = 4) -> dict[str, float]:
    """Measure, print and return the figures (for bench/run.py)."""
    gguf = bundled_gguf()
    local = LlamaCppBackend().load(spec_from_gguf("smollm2-bench", "SmolLM2", "bundled", gguf_info(gguf)),
                                   device="cpu", threads=THREADS, n_ctx=N_CTX)
    with tempfile.TemporaryDirectory(prefix="bench_remote_") as tmp:
        proc, url = start_server(gguf, Path(tmp) / "server.log")
        try:
            backend = OpenAICompatBackend()
            backend.configure(url, max_concurrency=users)
            remote = backend.load(remote_spec(url, "smollm2", is_chat=False, context_length=N_CTX))
            figures = measure(local, remote, reps, max_tokens, users)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            local.close()
    print_figures(figures)
    return figures


def measure(local, remote, reps: int, max_tokens: int, users: int) -> dict[str, float]:
    one_run(local, PROMPT.format(i="warm"), 8)
    one_run(remote, PROMPT.format(i="warm"), 8)
    runs: dict[str, list[dict[str, float]]] = {"local": [], "remote": []}
    for i in range(reps):
        order = (("local", local), ("remote", remote)) if i % 2 == 0 else (("remote", remote), ("local", local))
        for name, model in order:
            runs[name].append(one_run(model, PROMPT.format(i=i), max_tokens))
    single = [users_at_once(remote, 1, max_tokens, f"u1-{i}") for i in range(max(1, reps // 2))]
    many = [users_at_once(remote, users, max_tokens, f"u{users}-{i}") for i in range(max(1, reps // 2))]
    fig = {f"{name}_{key}": median([r[key] for r in rs]) for name, rs in runs.items()
           for key in ("tokens_per_s", "ttft_s", "tokens")}
    fig.update({
        "reps": float(reps), "max_tokens": float(max_tokens), "users": float(users),
        "remote_vs_local_tokens_per_s": fig["remote_tokens_per_s"] / fig["local_tokens_per_s"],
        "remote_minus_local_ttft_s": fig["remote_ttft_s"] - fig["local_ttft_s"],
        "remote_1_user_aggregate_tokens_per_s": median([r["aggregate_tokens_per_s"] for r in single]),
        f"remote_{users}_users_aggregate_tokens_per_s": median([r["aggregate_tokens_per_s"] for r in many]),
        f"remote_{users}_users_median_ttft_s": median([r["median_ttft_s"] for r in many]),
    })
    fig[f"aggregate_{users}_vs_1"] = (fig[f"remote_{users}_users_aggregate_tokens_per_s"]
                                      / fig["remote_1_user_aggregate_tokens_per_s"])
    return fig


def print_figures(fig: dict[str, float]) -> None:
    users = int(fig["users"])
    print(f"machine: {machine_info()}")
    print(f"SmolLM2-135M Q4_1, {THREADS} threads, greedy, {int(fig['max_tokens'])} new tokens, "
          f"{int(fig['reps'])} alternating reps (medians)")
    print(f"  in-process llama_cpp : {fig['local_tokens_per_s']:7.1f} tok/s   ttft {fig['local_ttft_s'] * 1000:7.1f} ms")
    print(f"  remote openai_compat : {fig['remote_tokens_per_s']:7.1f} tok/s   ttft {fig['remote_ttft_s'] * 1000:7.1f} ms")
    print(f"  ratio remote/in-process tokens/s: {fig['remote_vs_local_tokens_per_s']:.2f}x; "
          f"ttft difference {fig['remote_minus_local_ttft_s'] * 1000:+.1f} ms")
    print(f"  server aggregate, 1 user : {fig['remote_1_user_aggregate_tokens_per_s']:7.1f} tok/s")
    print(f"  server aggregate, {users} users: {fig[f'remote_{users}_users_aggregate_tokens_per_s']:7.1f} tok/s "
          f"({fig[f'aggregate_{users}_vs_1']:.2f}x; median ttft {fig[f'remote_{users}_users_median_ttft_s']:.2f} s; "
          "llama-cpp-python's server runs one request at a time)")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--users", type=int, default=4)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args(None)
    main(args.reps, args.max_tokens, args.users)
