"""Which compute device a backend will really use, and what the machine offers.

torch and llama_cpp are imported inside the functions: importing either costs seconds, and a
machine may have only one of them installed.
"""
from __future__ import annotations

from playground.errors import PlaygroundError

TRANSFORMERS_DEVICES = ("cpu", "cuda", "mps", "auto")
LLAMA_CPP_DEVICES = ("cpu", "gpu", "auto")
_GPU_WORDS = ("gpu", "cuda", "mps", "metal")


def resolve_device(requested: str, backend: str) -> tuple[str, str | None]:
    """(device actually used, warning or None) for a device request on a backend.

    A GPU that is not there is not an error: the model runs on the CPU and the warning says so,
    so the UI can show it next to the pane instead of failing the load.
    """
    wanted = (requested or "cpu").strip().lower()
    if backend == "llama_cpp":
        return _resolve_llama_cpp(wanted)
    if backend == "transformers":
        return _resolve_torch(wanted)
    if backend == "openai_compat":
        return "remote", None          # the server decides where it runs
    if wanted == "cpu":
        return "cpu", None
    return "cpu", f"device '{requested}' is not supported by backend '{backend}': running on CPU"


def _resolve_llama_cpp(wanted: str) -> tuple[str, str | None]:
    if wanted == "cpu":
        return "cpu", None
    if wanted not in LLAMA_CPP_DEVICES and wanted not in _GPU_WORDS:
        raise PlaygroundError(f"unknown device '{wanted}' for llama_cpp: choose one of {', '.join(LLAMA_CPP_DEVICES)}")
    if _llama_cpp_gpu():
        return "gpu", None
    if wanted == "auto":
        return "cpu", None
    return "cpu", ("GPU requested but this llama-cpp-python build has no GPU offload: running on CPU "
                   "(reinstall llama-cpp-python with CUDA or Metal enabled to use the GPU)")


def _resolve_torch(wanted: str) -> tuple[str, str | None]:
    if wanted == "cpu":
        return "cpu", None
    if wanted not in TRANSFORMERS_DEVICES and wanted not in _GPU_WORDS:
        raise PlaygroundError(f"unknown device '{wanted}' for transformers: choose one of {', '.join(TRANSFORMERS_DEVICES)}")
    cuda, mps = _torch_cuda(), _torch_mps()
    if wanted == "cuda":
        return ("cuda", None) if cuda else ("cpu", "CUDA requested but not available: running on CPU")
    if wanted in ("mps", "metal"):
        return ("mps", None) if mps else ("cpu", "MPS requested but not available: running on CPU")
    best = "cuda" if cuda else "mps" if mps else None
    if best:
        return best, None
    if wanted == "auto":
        return "cpu", None
    return "cpu", "GPU requested but neither CUDA nor MPS is available: running on CPU"


def _llama_cpp_gpu() -> bool:
    try:
        import llama_cpp
    except ImportError:
        return False
    try:
        return bool(llama_cpp.llama_supports_gpu_offload())
    except (AttributeError, OSError):
        return False


def _torch_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _torch_mps() -> bool:
    try:
        import torch
    except ImportError:
        return False
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def gpu_summary() -> str:
    """One line for the UI: which accelerators each engine can use on this machine."""
    parts: list[str] = []
    try:
        import torch
    except ImportError:
        parts.append("transformers: torch not installed")
    else:
        if torch.cuda.is_available():
            names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
            parts.append(f"transformers: CUDA ({names})")
        elif _torch_mps():
            parts.append("transformers: Apple MPS")
        else:
            parts.append("transformers: CPU only")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        parts.append("llama.cpp: not installed")
    else:
        parts.append("llama.cpp: GPU offload" if _llama_cpp_gpu() else "llama.cpp: CPU only")
    return "; ".join(parts)
