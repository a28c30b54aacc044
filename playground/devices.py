"""Which compute device a backend will really use, and what the machine offers.

torch and llama_cpp are imported inside the functions: importing either costs seconds, and a
machine may have only one of them installed. What a build *can* do (GPU offload compiled in,
torch built with CUDA) never changes while the process runs and is cached; free memory is read
every time it is asked for.
"""
from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from playground.errors import PlaygroundError

# The one command that fixes each missing accelerator, checked against the projects' own docs:
# llama-cpp-python's README ("CMAKE_ARGS=-DGGML_CUDA=on" / "-DGGML_METAL=on"; "--upgrade
# --force-reinstall --no-cache-dir" to rebuild) and pytorch.org/get-started (CUDA wheels come
# from download.pytorch.org/whl/<cuda tag>). Versions are the ones requirements.txt pins.
LLAMA_CPP_PIN = "llama-cpp-python[server]==0.3.36"
TORCH_PIN = "torch==2.13.0"
INSTALL_LLAMA_CPP_CUDA = (f'CMAKE_ARGS="-DGGML_CUDA=on" pip install --upgrade --force-reinstall '
                          f'--no-cache-dir "{LLAMA_CPP_PIN}"')
INSTALL_LLAMA_CPP_METAL = (f'CMAKE_ARGS="-DGGML_METAL=on" pip install --upgrade --force-reinstall '
                           f'--no-cache-dir "{LLAMA_CPP_PIN}"')
INSTALL_TORCH_CUDA = f"pip install --force-reinstall {TORCH_PIN} --index-url https://download.pytorch.org/whl/cu130"

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
    return "cpu", llama_cpp_gpu_notice()


def llama_cpp_gpu_notice() -> str:
    """Why a llama.cpp GPU request runs on the CPU here, and the command that fixes it."""
    if not _llama_cpp_installed():
        return "GPU requested but llama-cpp-python is not installed: running on CPU"
    return ("GPU requested but this llama-cpp-python build has no GPU offload (CPU-only build, or no GPU "
            f"found): running on CPU. To use the GPU, reinstall it: {llama_cpp_fix_command()}")


def llama_cpp_fix_command() -> str:
    """The reinstall command for this kind of machine (Metal on Apple silicon, CUDA elsewhere)."""
    return INSTALL_LLAMA_CPP_METAL if _apple_silicon() else INSTALL_LLAMA_CPP_CUDA


def _torch_gpu_notice(what: str) -> str:
    """Why a torch GPU request runs on the CPU here, and what would fix it."""
    build = torch_info()
    if what == "MPS":
        return "MPS requested but not available (it needs Apple silicon and macOS 12.3+): running on CPU"
    if not build.cuda_build and not _apple_silicon():
        return (f"{what} requested but this torch is a CPU-only build: running on CPU. To use an NVIDIA GPU, "
                f"reinstall it: {INSTALL_TORCH_CUDA}")
    return (f"{what} requested but torch sees no CUDA device (check the NVIDIA driver with `nvidia-smi`): "
            "running on CPU")


def _resolve_torch(wanted: str) -> tuple[str, str | None]:
    if wanted == "cpu":
        return "cpu", None
    if wanted not in TRANSFORMERS_DEVICES and wanted not in _GPU_WORDS:
        raise PlaygroundError(f"unknown device '{wanted}' for transformers: choose one of {', '.join(TRANSFORMERS_DEVICES)}")
    cuda, mps = _torch_cuda(), _torch_mps()
    if wanted == "cuda":
        return ("cuda", None) if cuda else ("cpu", _torch_gpu_notice("CUDA"))
    if wanted in ("mps", "metal"):
        return ("mps", None) if mps else ("cpu", _torch_gpu_notice("MPS"))
    best = "cuda" if cuda else "mps" if mps else None
    if best:
        return best, None
    if wanted == "auto":
        return "cpu", None
    return "cpu", _torch_gpu_notice("GPU")


@lru_cache(maxsize=1)
def _llama_cpp_gpu() -> bool:
    try:
        import llama_cpp
    except ImportError:
        return False
    try:
        return bool(llama_cpp.llama_supports_gpu_offload())
    except (AttributeError, OSError):
        return False


def _llama_cpp_installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def _apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


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


# --- what the machine has: cores, memory, GPUs, engine builds (for the doctor and the fit check) ---

@dataclass(frozen=True)
class GpuInfo:
    """One GPU and its memory; free_bytes is read when asked (None when nothing can tell)."""

    index: int
    name: str
    total_bytes: int | None
    free_bytes: int | None
    source: str              # torch.cuda | nvml | unified (Apple: the GPU shares RAM)


@dataclass(frozen=True)
class TorchInfo:
    installed: bool
    version: str | None = None
    cuda_build: str | None = None        # CUDA version torch was built with; None = CPU-only build
    cuda_available: bool = False
    mps_available: bool = False


@dataclass(frozen=True)
class LlamaCppBuild:
    installed: bool
    version: str | None = None
    gpu_offload: bool = False
    blas: bool = False
    system_info: str = ""


@dataclass(frozen=True)
class Memory:
    """RAM and GPU memory of this machine, in bytes."""

    ram_total: int
    ram_available: int
    gpus: tuple[GpuInfo, ...] = ()
    unified: bool = False              # Apple silicon: the GPU's memory is the RAM


@lru_cache(maxsize=1)
def torch_info() -> TorchInfo:
    try:
        import torch
    except ImportError:
        return TorchInfo(installed=False)
    return TorchInfo(installed=True, version=str(torch.__version__), cuda_build=torch.version.cuda,
                     cuda_available=bool(torch.cuda.is_available()), mps_available=_torch_mps())


@lru_cache(maxsize=1)
def llama_cpp_build() -> LlamaCppBuild:
    """What this llama-cpp-python was compiled with (GPU offload, BLAS), from llama.cpp itself."""
    try:
        import llama_cpp
    except ImportError:
        return LlamaCppBuild(installed=False)
    try:
        info = llama_cpp.llama_print_system_info().decode("utf-8", errors="replace").strip()
    except (AttributeError, OSError):
        info = ""
    return LlamaCppBuild(installed=True, version=getattr(llama_cpp, "__version__", None),
                         gpu_offload=_llama_cpp_gpu(), blas=_has_blas(info), system_info=info)


def _has_blas(system_info: str) -> bool:
    """A BLAS backend (OpenBLAS, Accelerate, MKL) shows as `BLAS = 1` or as its own `BLAS :` entry."""
    text = system_info.replace(" ", "")
    return "BLAS=1" in text or "BLAS:" in text


def ram() -> tuple[int, int]:
    """(total, available) bytes: /proc/meminfo on Linux, sysconf elsewhere (available = total then)."""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        fields: dict[str, int] = {}
        for line in meminfo.read_text().splitlines():
            name, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0]) * 1024
        total = fields.get("MemTotal", 0)
        return total, fields.get("MemAvailable", fields.get("MemFree", total))
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 0
    return total, total


def gpus() -> tuple[GpuInfo, ...]:
    """GPUs and their memory: torch (CUDA) first, then NVML (nvidia-ml-py) when torch has no CUDA,
    then Apple silicon's unified memory. Empty on a machine without any."""
    found = _torch_cuda_gpus() or _nvml_gpus()
    if found:
        return found
    if _apple_silicon():
        total, available = ram()
        limit = _mps_recommended_max()
        return (GpuInfo(0, "Apple GPU (unified memory)", limit or total, min(limit or available, available),
                        "unified"),)
    return ()


def _torch_cuda_gpus() -> tuple[GpuInfo, ...]:
    if "torch" not in sys.modules and not torch_info().cuda_build:
        return ()        # a CPU-only torch cannot see a GPU: do not pay for the import twice
    try:
        import torch
    except ImportError:
        return ()
    if not torch.cuda.is_available():
        return ()
    out = []
    for i in range(torch.cuda.device_count()):
        try:
            free, total = torch.cuda.mem_get_info(i)
        except RuntimeError:
            free, total = None, torch.cuda.get_device_properties(i).total_memory
        out.append(GpuInfo(i, torch.cuda.get_device_name(i), int(total), None if free is None else int(free),
                           "torch.cuda"))
    return tuple(out)


def _nvml_gpus() -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs through NVML (`pip install nvidia-ml-py`), for llama.cpp users without CUDA torch."""
    try:
        import pynvml
    except ImportError:
        return ()
    try:
        pynvml.nvmlInit()
    except Exception:   # NVMLError_LibraryNotFound, DriverNotLoaded...: no NVIDIA GPU usable here
        return ()
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            out.append(GpuInfo(i, name.decode() if isinstance(name, bytes) else str(name), int(mem.total),
                               int(mem.free), "nvml"))
        return tuple(out)
    finally:
        pynvml.nvmlShutdown()


def _mps_recommended_max() -> int | None:
    """Metal's recommended working-set limit (how much of the RAM the GPU may use), from torch."""
    try:
        import torch
        return int(torch.mps.recommended_max_memory())
    except (ImportError, AttributeError, RuntimeError):
        return None


def memory() -> Memory:
    """RAM and GPUs now (free memory changes: not cached)."""
    total, available = ram()
    return Memory(ram_total=total, ram_available=available, gpus=gpus(), unified=_apple_silicon())


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask on Linux, e.g. inside a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def device_menu(backend: str) -> list[tuple[str, str]]:
    """(label, value) pairs for a pane's device menu: every device stays choosable, and one that
    cannot run here says so in its label (choosing it runs on the CPU with a notice)."""
    if backend == "transformers":
        info = torch_info()
        cuda = "cuda" if info.cuda_available else ("cuda (no GPU: runs on CPU)" if info.cuda_build
                                                    else "cuda (CPU-only torch: runs on CPU)")
        mps = "mps" if info.mps_available else "mps (not available: runs on CPU)"
        return [("cpu", "cpu"), (cuda, "cuda"), (mps, "mps"), ("auto", "auto")]
    if backend == "llama_cpp":
        gpu = "gpu" if _llama_cpp_gpu() else "gpu (CPU-only llama.cpp build: runs on CPU)"
        return [("cpu", "cpu"), (gpu, "gpu")]
    return [("cpu", "cpu"), ("gpu", "gpu")]
