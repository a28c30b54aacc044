"""Where a llama.cpp model really landed: layers offloaded and buffer sizes, from llama.cpp's own log.

llama.cpp has no API that says how many layers went to the GPU; it logs it while loading
("load_tensors: offloaded 31/31 layers to GPU", "load_tensors: CUDA0 model buffer size = ..."),
and logs the buffers on every build ("CPU_Mapped model buffer size = ..."). The log goes through
one process-wide callback, so `capture_load_log` swaps in a recorder for the duration of a load
(loads are serialised by a lock) and hands every line on to llama-cpp-python's own callback, which
prints it when `verbose=True` as before.
"""
from __future__ import annotations

import ctypes
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

_OFFLOADED = re.compile(r"offloaded (\d+)/(\d+) layers to GPU")
_BUFFER = re.compile(r"(\S+) (model|KV|compute) buffer size =\s*([\d.]+) MiB")
_LOAD_LOCK = threading.Lock()


@dataclass
class Placement:
    """Where one loaded model's weights and caches are, as llama.cpp reported them."""

    layers_on_gpu: int = 0
    n_layers: int = 0                  # llama.cpp's count: repeating layers + the output layer
    buffers_mib: dict[str, float] = field(default_factory=dict)   # "CUDA0 model" -> MiB

    @property
    def gpu_buffers(self) -> list[str]:
        """Devices holding weights: not the CPU's buffers, nor host memory pinned for a GPU (CUDA_Host)."""
        names = {k.split()[0] for k in self.buffers_mib if k.endswith(" model")}
        return sorted(n for n in names if not n.startswith("CPU") and not n.endswith("_Host"))

    @property
    def device(self) -> str:
        return "gpu" if self.layers_on_gpu > 0 and self.gpu_buffers else "cpu"

    def describe(self) -> str:
        """One figure for a pane: e.g. 'cpu (0/31 layers on GPU)' or 'gpu CUDA0 (31/31 layers)'."""
        total = self.n_layers or "?"
        if self.device == "gpu":
            return f"gpu {', '.join(self.gpu_buffers)} ({self.layers_on_gpu}/{total} layers)"
        return f"cpu (0/{total} layers on GPU)"


def parse_load_log(lines: list[str], n_layers: int) -> Placement:
    """Placement from llama.cpp's load log; n_layers (repeating) is used when the log does not say."""
    placement = Placement(n_layers=n_layers + 1)
    for line in "".join(lines).splitlines():
        m = _OFFLOADED.search(line)
        if m:
            placement.layers_on_gpu, placement.n_layers = int(m.group(1)), int(m.group(2))
            continue
        m = _BUFFER.search(line)
        if m:
            key = f"{m.group(1)} {m.group(2)}"
            placement.buffers_mib[key] = placement.buffers_mib.get(key, 0.0) + float(m.group(3))
    return placement


class _Recorder:
    """The one log callback this module installs (kept alive for the life of the process, so a
    llama.cpp thread still holding the pointer after a swap never calls freed memory)."""

    def __init__(self) -> None:
        import llama_cpp

        self.lines: list[str] | None = None
        self.callback = llama_cpp.llama_log_callback(self._record)

    def _record(self, level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        from llama_cpp import _logger

        lines = self.lines
        if lines is not None:
            lines.append(text.decode("utf-8", errors="replace"))
        _logger.llama_log_callback(level, text, user_data)


_RECORDER: list[_Recorder] = []      # created on first use: importing llama_cpp costs seconds


@contextmanager
def capture_load_log() -> Iterator[list[str]]:
    """Record llama.cpp's log lines while the block runs (one load at a time)."""
    import llama_cpp
    from llama_cpp import _logger

    with _LOAD_LOCK:
        if not _RECORDER:
            _RECORDER.append(_Recorder())
        recorder = _RECORDER[0]
        recorder.lines = lines = []
        llama_cpp.llama_log_set(recorder.callback, ctypes.c_void_p(0))
        try:
            yield lines
        finally:
            llama_cpp.llama_log_set(_logger.llama_log_callback, ctypes.c_void_p(0))
            recorder.lines = None


def gpu_layers_for(spec: Any, n_ctx: int) -> tuple[int, list[str]]:
    """n_gpu_layers for a GPU load (-1 = all) and a notice when memory is short: every layer when
    the model fits in the GPU's free memory, else as many as fit (see `fit.llama_gpu_fit`)."""
    from playground.devices import gpus
    from playground.models.fit import estimate, llama_gpu_fit, model_shape

    shape = model_shape(spec)
    est = estimate(spec, "llama_cpp", "gpu", n_ctx, shape) if shape is not None else None
    if shape is None or est is None:
        return -1, []
    found = gpus()
    verdict = llama_gpu_fit(est, shape, found[0].free_bytes if found else None)
    if verdict.gpu_layers is None:
        return -1, []
    return verdict.gpu_layers, [f"not enough free GPU memory for all of {spec.id}: {verdict.summary}"]
