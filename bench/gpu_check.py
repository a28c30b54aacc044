"""GPU check: both backends on the GPU, offload verified, tokens/s against the CPU in the same run.

For the day a GPU machine is at hand (`python bench/gpu_check.py`, or through `bench/run.py`):

- llama.cpp: the bundled model, and one larger GGUF when the catalog has one (`--model ID` picks
  it), each on the CPU and then with device `gpu`. Offload is verified from llama.cpp's own load
  log (layers offloaded, a non-CPU model buffer), not from what was asked for;
- transformers: the bundled GGUF on the CPU and on `cuda` (or `mps`), verified by where the
  weights' tensors really are.

Every GPU figure is a ratio to the CPU run of the same model in the same process. Without a GPU
it measures nothing, says why, and writes "not yet measured" (exit code 1 when run by hand).
The check fails (exit code 2) when a GPU run did not really run on the GPU.
"""
from __future__ import annotations

import argparse
import sys

from common import REPO, machine_info  # noqa: F401  (puts the repo on sys.path)

from playground import devices
from playground.compare import PaneSpec, run_pane
from playground.config import Settings
from playground.context import AppContext
from playground.sampling import SamplingParams

QUESTION = "Explain in a few sentences why the sky is blue."
BUNDLED = "smollm2-135m-instruct"


def _tokens_per_s(ctx: AppContext, model_id: str, backend: str, device: str, tokens: int, reps: int) -> tuple[float, str, str]:
    """Median decode tokens/s over reps runs (after one warm-up), where it ran, and the notices."""
    pane = PaneSpec(model_id=model_id, backend=backend, device=device,
                    sampling=SamplingParams(max_new_tokens=tokens))
    speeds, result = [], None
    for i in range(reps + 1):
        for result in run_pane(ctx, pane, QUESTION):
            pass
        if result.error:
            raise RuntimeError(f"{model_id} on {backend}/{device}: {result.error}")
        if i:
            speeds.append(result.tokens_per_s or 0.0)
    speeds.sort()
    return speeds[len(speeds) // 2], result.ran_on, "; ".join(result.notices)


def _larger_gguf(ctx: AppContext, chosen: str | None) -> str | None:
    if chosen:
        return chosen
    bundled = ctx.catalog.get(BUNDLED)
    bigger = [s for s in ctx.catalog if s.format == "gguf" and s.available and s.id != BUNDLED
              and (s.file_size or 0) > (bundled.file_size or 0)]
    return min(bigger, key=lambda s: s.file_size or 0).id if bigger else None


def _torch_weights_device(ctx: AppContext, model_id: str, device: str) -> str:
    spec = ctx.catalog.get(model_id)
    with ctx.cache.use(spec, "transformers", device) as model:
        return next(model.model.parameters()).device.type


def main(tokens: int = 64, reps: int = 3, model: str | None = None) -> dict:
    llama = devices.llama_cpp_build()
    torch = devices.torch_info()
    torch_gpu = "cuda" if torch.cuda_available else "mps" if torch.mps_available else None
    if not llama.gpu_offload and not torch_gpu:
        reason = (f"not yet measured: no GPU here (llama.cpp GPU offload: no; torch CUDA/MPS: no; "
                  f"{devices.cpu_cores()} CPU cores)")
        print(reason)
        return {"status": "not yet measured", "reason": reason}
    ctx = AppContext.create(Settings(n_ctx=2048))
    figures: dict = {"status": "measured", "gpus": ", ".join(g.name for g in devices.gpus()) or "?"}
    failures = []
    try:
        if llama.gpu_offload:
            for label, model_id in (("bundled", BUNDLED), ("larger", _larger_gguf(ctx, model))):
                if model_id is None:
                    print("llama.cpp: no larger GGUF in the catalog (put one in ./models or pass --model)")
                    continue
                cpu, _, _ = _tokens_per_s(ctx, model_id, "llama_cpp", "cpu", tokens, reps)
                gpu, ran_on, notices = _tokens_per_s(ctx, model_id, "llama_cpp", "gpu", tokens, reps)
                offloaded = ran_on.startswith("gpu")
                if not offloaded:
                    failures.append(f"llama.cpp {model_id}: asked for the GPU, ran on {ran_on} ({notices})")
                print(f"llama.cpp {model_id}: cpu {cpu:.1f} tok/s, gpu {gpu:.1f} tok/s -> x{gpu / cpu:.2f}; "
                      f"ran on {ran_on}")
                figures.update({f"llama_{label}_model": model_id, f"llama_{label}_cpu_tok_s": cpu,
                                f"llama_{label}_gpu_tok_s": gpu, f"llama_{label}_gpu_vs_cpu": gpu / cpu,
                                f"llama_{label}_ran_on": ran_on})
        else:
            print(f"llama.cpp: this build has no GPU offload; {devices.llama_cpp_fix_command()}")
        if torch_gpu:
            cpu, _, _ = _tokens_per_s(ctx, BUNDLED, "transformers", "cpu", tokens, reps)
            gpu, ran_on, _ = _tokens_per_s(ctx, BUNDLED, "transformers", torch_gpu, tokens, reps)
            where = _torch_weights_device(ctx, BUNDLED, torch_gpu)
            if where != torch_gpu:
                failures.append(f"transformers {BUNDLED}: asked for {torch_gpu}, weights are on {where}")
            print(f"transformers {BUNDLED}: cpu {cpu:.1f} tok/s, {torch_gpu} {gpu:.1f} tok/s -> x{gpu / cpu:.2f}; "
                  f"weights on {where}")
            figures.update({"transformers_cpu_tok_s": cpu, f"transformers_{torch_gpu}_tok_s": gpu,
                            "transformers_gpu_vs_cpu": gpu / cpu, "transformers_weights_on": where})
        else:
            print(f"transformers: torch sees no CUDA or MPS device; {devices.INSTALL_TORCH_CUDA}")
    finally:
        ctx.cache.clear()
    figures["failures"] = "; ".join(failures) or "none"
    for failure in failures:
        print(f"FAILED: {failure}")
    return figures


def cli() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per run")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per device (median)")
    parser.add_argument("--model", default=None, help="catalog id of the larger GGUF (default: the smallest "
                                                       "catalog GGUF larger than the bundled one)")
    args = parser.parse_args()
    figures = main(args.tokens, args.reps, args.model)
    if figures["status"] != "measured":
        return 1
    return 2 if figures["failures"] != "none" else 0


if __name__ == "__main__":
    sys.exit(cli())
