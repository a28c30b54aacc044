"""Peak resident memory of the process while one model runs, sampled in a background thread.

The OS keeps only the lifetime peak (ru_maxrss), which cannot tell the second model's peak from
the first's; sampling the current RSS every 50 ms while a model is loaded and running can. A
spike shorter than the interval is missed: the figure is a lower bound, stated as such in the docs.
"""
from __future__ import annotations

import os
import threading
from typing import Any

INTERVAL_S = 0.05


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux /proc, else psutil when installed)."""
    try:
        with open("/proc/self/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:   # psutil missing or refusing: no figure rather than a wrong one
        return None


class PeakMemory:
    """`with PeakMemory() as peak:` ... `peak.before`, `peak.peak` (bytes, or None where unknown)."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.before: int | None = None
        self.peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        value = current_rss()
        if value is not None and (self.peak is None or value > self.peak):
            self.peak = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> "PeakMemory":
        self.before = current_rss()
        self.peak = self.before
        self._thread = threading.Thread(target=self._loop, name="lab-peak-memory", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()
