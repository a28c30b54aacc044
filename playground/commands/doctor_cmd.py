"""`python app.py doctor [--json]`: what this machine and these builds can run, and what to install for more.

The first thing to ask a user who reports a problem: CPU cores, RAM, GPUs and their memory, the
llama.cpp build's features (GPU offload, BLAS), torch's devices, where each catalog model fits at
the configured context length, and the commands that would add GPU support.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from typing import Any

from playground.config import Settings

NAME = "doctor"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="report cores, memory, GPUs, engine builds and which models fit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-hub", action="store_true", help="leave out the recommended Hub models")


def diagnose(settings: Settings, include_hub: bool = True) -> dict[str, Any]:
    """Everything the doctor reports, as plain data (the JSON output)."""
    from playground import devices
    from playground.models.catalog import build_catalog
    from playground.models.fit import fit_lines

    llama = devices.llama_cpp_build()
    torch = devices.torch_info()
    mem = devices.memory()
    gpu_backends = [name for name, ok in (("llama_cpp", llama.gpu_offload),
                                          ("transformers", torch.cuda_available or torch.mps_available)) if ok]
    catalog = build_catalog(settings.models_dir, settings.presets_dir, include_hub=include_hub)
    models = []
    for spec in catalog:
        line = fit_lines(spec, mem, settings.n_ctx, gpu_backends)
        cpu = line.get("cpu")
        line["within_budget"] = None if cpu is None else cpu["total_bytes"] <= settings.memory_budget_mb * 1024 ** 2
        models.append(line)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": {"cores": devices.cpu_cores(), "threads_used": settings.threads or devices.cpu_cores(),
                "threads_adaptive": settings.threads is None, "model": _cpu_model()},
        "memory": {"ram_total_bytes": mem.ram_total, "ram_available_bytes": mem.ram_available,
                   "unified": mem.unified, "budget_bytes": settings.memory_budget_mb * 1024 ** 2},
        "gpus": [vars(g) for g in mem.gpus],
        "llama_cpp": {"installed": llama.installed, "version": llama.version, "gpu_offload": llama.gpu_offload,
                      "blas": llama.blas, "system_info": llama.system_info},
        "torch": {"installed": torch.installed, "version": torch.version, "cuda_build": torch.cuda_build,
                  "cuda_available": torch.cuda_available, "mps_available": torch.mps_available},
        "devices": {"llama_cpp": ["cpu"] + (["gpu"] if llama.gpu_offload else []),
                    "transformers": ["cpu"] + (["cuda"] if torch.cuda_available else [])
                                    + (["mps"] if torch.mps_available else [])},
        "n_ctx": settings.n_ctx,
        "models": models,
        "problems": list(catalog.problems),
        "advice": advice(llama, torch, mem),
    }


def advice(llama: Any, torch: Any, mem: Any) -> list[str]:
    """What to install for more: one line per missing accelerator, with its command."""
    from playground import devices

    out: list[str] = []
    apple = mem.unified
    nvidia = any(g.source in ("torch.cuda", "nvml") for g in mem.gpus)
    if not llama.installed:
        out.append("llama-cpp-python is not installed: pip install -r requirements.txt")
    elif not llama.gpu_offload:
        if apple:
            out.append(f"llama.cpp runs on the CPU only; for Metal: {devices.INSTALL_LLAMA_CPP_METAL}")
        else:
            if nvidia:
                out.append("this machine has an NVIDIA GPU but llama.cpp is a CPU-only build; for CUDA: "
                           f"{devices.INSTALL_LLAMA_CPP_CUDA}")
            else:
                out.append("llama.cpp is a CPU-only build; on a machine with an NVIDIA GPU, rebuild it for "
                           f"CUDA: {devices.INSTALL_LLAMA_CPP_CUDA}")
    if torch.installed and not apple and not torch.cuda_build:
        out.append(f"torch is a CPU-only build; for CUDA: {devices.INSTALL_TORCH_CUDA}")
    elif torch.installed and torch.cuda_build and not torch.cuda_available:
        out.append("torch is built with CUDA but sees no GPU: check the NVIDIA driver (`nvidia-smi`)")
    if not mem.gpus:
        out.append("no GPU found: every model runs on the CPU (GPU memory readings need torch with CUDA "
                   "or `pip install nvidia-ml-py`)")
    return out


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _gb(n: int | None) -> str:
    from playground.models.fit import gb

    return gb(n)


def format_report(report: dict[str, Any]) -> str:
    lines = [f"python {report['python']} on {report['platform']}",
             f"CPU: {report['cpu']['model']}, {report['cpu']['cores']} cores "
             + (f"(up to {report['cpu']['threads_used']} threads per model: as many as other processes leave free)"
              if report["cpu"].get("threads_adaptive") else f"({report['cpu']['threads_used']} threads per model)")]
    mem = report["memory"]
    lines.append(f"RAM: {_gb(mem['ram_total_bytes'])} total, {_gb(mem['ram_available_bytes'])} available; "
                 f"memory budget {_gb(mem['budget_bytes'])}")
    if report["gpus"]:
        for g in report["gpus"]:
            lines.append(f"GPU {g['index']}: {g['name']}, {_gb(g['total_bytes'])} total, "
                         f"{_gb(g['free_bytes'])} free ({g['source']})")
    else:
        lines.append("GPU: none found")
    llama = report["llama_cpp"]
    lines.append("llama.cpp: " + ("not installed" if not llama["installed"] else
                                  f"llama-cpp-python {llama['version']}, GPU offload "
                                  f"{'yes' if llama['gpu_offload'] else 'no'}, BLAS {'yes' if llama['blas'] else 'no'}"))
    torch = report["torch"]
    lines.append("torch: " + ("not installed" if not torch["installed"] else
                              f"{torch['version']}, CUDA build {torch['cuda_build'] or 'no'}, CUDA available "
                              f"{'yes' if torch['cuda_available'] else 'no'}, MPS "
                              f"{'yes' if torch['mps_available'] else 'no'}"))
    lines.append(f"devices: llama_cpp {', '.join(report['devices']['llama_cpp'])}; "
                 f"transformers {', '.join(report['devices']['transformers'])}")
    lines.append(f"\nmodels at a context of {report['n_ctx']:,} tokens (default backend):")
    width = max((len(m["model"]) for m in report["models"]), default=10)
    for m in report["models"]:
        budget = "" if m["within_budget"] in (None, True) else " · over the memory budget"
        lines.append(f"  {m['model'].ljust(width)}  {m['summary']}{budget}")
    if report["advice"]:
        lines.append("\nto get more:")
        lines += [f"  - {a}" for a in report["advice"]]
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    report = diagnose(settings, include_hub=not args.no_hub)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(format_report(report))
    for problem in report["problems"]:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
