"""How many threads a computation should use now: the cores other processes leave free.

llama.cpp's threads meet at a spinning barrier after every operation of a graph. When another
process holds one of the cores, every operation waits for the scheduler to run the preempted
thread again: on 2 cores beside one busy loop, a 64-token prompt chunk took 9.3 s on 2 threads
against 0.44 s on 1 (docs/benchmarks.md). So a context should run on the cores that are free,
not on all of them, and follow the machine as its load changes.

Two readings, both from /proc, cheap enough to take every SAMPLE_S while generating:

- *window*: the CPU time every process spent on the cores we may use (`/proc/stat`), minus our
  own process's (`/proc/self/stat`), over the last SAMPLE_S-STALE_S: what others really ran.
  A busy loop beside our 2 threads runs 2/3 of a core (three runnable threads on two cores),
  one beside our single thread a whole core; both round to "one core taken".
- *run queue*: when the last window is older than STALE_S (the app was idle, the past says
  little about now), the runnable threads right now (`/proc/loadavg`) minus our own
  (`/proc/self/task/*/stat`): a snapshot, so a CPU-bound neighbour is never missed by the first
  step of a generation, whose prefill chunk would collapse on the wrong count.

A thread is added only for a core at least 1 - SLACK free (see `threads_for`). Without /proc
(macOS, Windows) every core counts as free, as before. `--threads N` bypasses all of this.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SAMPLE_S = 0.25   # how often the counters are read while a computation asks
STALE_S = 1.0     # a window longer than this describes the past: take a run-queue snapshot instead
SLACK = 0.3       # a core that others use for at most this share still gets a thread


@dataclass(frozen=True)
class CpuTimes:
    """Cumulative CPU seconds at one moment."""

    t: float       # monotonic clock
    busy: float    # all processes, on the cores this process may use
    own: float     # this process (every thread)


def threads_for(cores: int, others_busy: float) -> int:
    """Threads worth running when other processes keep `others_busy` cores busy (a window
    average): n threads need n - SLACK free cores, and there is always at least one."""
    free = cores - max(0.0, others_busy)
    return max(1, min(cores, math.floor(free + SLACK)))


def others_busy(before: CpuTimes, after: CpuTimes) -> float:
    """Cores other processes kept busy between two readings."""
    span = after.t - before.t
    if span <= 0:
        return 0.0
    return max(0.0, ((after.busy - before.busy) - (after.own - before.own)) / span)


def threads_from_run_queue(cores: int, others_running: float) -> int:
    """Threads worth running when `others_running` threads of other processes are runnable now."""
    return max(1, min(cores, cores - math.ceil(max(0.0, others_running))))


# --- reading /proc ---------------------------------------------------------------------------------

def parse_proc_stat(text: str, cpus: set[int] | None, tick: float) -> float | None:
    """Busy seconds (user, nice, system, irq, softirq, steal) summed over the given cpuN lines
    (all of them when cpus is None); idle and iowait are free time."""
    total, seen = 0.0, False
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        f = [int(x) for x in rest.split()]
        total += (f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] if len(f) > 7 else 0)) * tick
        seen = True
    return total if seen else None


def parse_self_stat(text: str, tick: float) -> float:
    """utime + stime of /proc/<pid>/stat, in seconds (the fields after the command's ')')."""
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * tick


def parse_running(loadavg: str) -> int:
    """Runnable threads on the machine now: the 'running/total' field of /proc/loadavg."""
    return int(loadavg.split()[3].split("/")[0])


def task_state(stat: str) -> str:
    return stat.rsplit(")", 1)[1].split()[0]


class ProcReader:
    """The counters above, from a /proc tree (another root in tests)."""

    def __init__(self, root: Path = Path("/proc"), cpus: set[int] | None = None) -> None:
        self.root = root
        self.cpus = cpus if cpus is not None else _affinity()
        self.tick = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
        self._share = 1.0   # our cores' share of the machine's (run queue of a bigger host)
        try:
            n = sum(1 for line in (root / "stat").read_text().splitlines()
                    if line.startswith("cpu") and not line.startswith("cpu "))
            if self.cpus and n > len(self.cpus):
                self._share = len(self.cpus) / n
        except OSError:
            pass

    def times(self, clock: Callable[[], float] = time.monotonic) -> CpuTimes | None:
        try:
            busy = parse_proc_stat((self.root / "stat").read_text(), self.cpus, self.tick)
            own = parse_self_stat((self.root / "self" / "stat").read_text(), self.tick)
        except (OSError, ValueError, IndexError):
            return None
        return None if busy is None else CpuTimes(clock(), busy, own)

    def others_running(self) -> float | None:
        try:
            running = parse_running((self.root / "loadavg").read_text())
        except (OSError, ValueError, IndexError):
            return None
        mine = 0
        for task in (self.root / "self" / "task").iterdir():
            try:
                mine += task_state((task / "stat").read_text()) == "R"
            except (OSError, IndexError):
                continue   # the thread ended meanwhile
        return max(0, running - mine) * self._share


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


class FreeCores:
    """The number of threads a computation should use now, re-read at most every SAMPLE_S.
    Shared by every context of a process (one per device's CoreShare); thread-safe."""

    def __init__(self, cores: int, reader: ProcReader | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cores = max(1, cores)
        self.reader = reader or ProcReader()
        self.clock = clock
        self._last: CpuTimes | None = None
        self._usable = self.cores
        self._lock = threading.Lock()
        self.readings = 0   # how often the counters were read (tests, diagnostics)

    def usable(self) -> int:
        """Threads worth running now, 1..cores."""
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last.t < SAMPLE_S:
                return self._usable
            current = self.reader.times(self.clock)
            self.readings += 1
            if current is None:                       # no /proc: every core counts as free
                self._usable = self.cores
            elif self._last is None or current.t - self._last.t > STALE_S:
                running = self.reader.others_running()
                self._usable = self.cores if running is None else threads_from_run_queue(self.cores, running)
            else:
                self._usable = threads_for(self.cores, others_busy(self._last, current))
            self._last = current
            return self._usable

    def threads(self, wanted: int) -> int:
        """At most `wanted` threads, no more than the free cores allow, at least one."""
        return max(1, min(wanted, self.usable()))
