"""Loaded models kept in memory, keyed by (model, backend, device), with an LRU memory budget.

Switching panes back and forth must not reload a model, and two panes asking for the same model
at once must share one load. A model in use is never evicted; the least recently used idle ones
go first when a new load would exceed the budget. A model that cannot fit at all (more than the
budget, or more than the machine's memory for its device, by `models.fit`) is refused before
anything is loaded, with the figures and the fix.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from playground.backends import get_backend
from playground.backends.base import Backend, LoadedModel
from playground.backends.free_cores import FreeCores
from playground.errors import ModelError, PlaygroundError
from playground.models.spec import ModelSpec

CacheKey = tuple[str, str, str]
SPREAD_MAX = 4     # the most single-thread contexts one model's generations spread over (memory)


class CoreShare:
    """The CPU cores of one device, lent to generations in arrival order.

    `with share:` (or `acquire()`) takes every core: a prompt prefill, or a transformers step.
    A llama.cpp decode step takes `fair_share()` cores: all of them when it runs alone, one each
    when two run, so two panes decode side by side on one thread each instead of taking turns
    with two threads (measured on 2 cores: 2 x 64 tok/s against 106 tok/s for one context; and a
    context's idle worker threads spin, so taking turns costs even more). More generations than
    cores queue, first come first served (`threading.Lock` would let the releasing thread take
    it straight back).

    What a holder runs on its cores is `threads(held)`: all of them under a fixed `--threads`,
    else no more than other processes leave free (`free_cores.FreeCores`), re-read between steps.
    """

    def __init__(self, cores: int, free: FreeCores | None = None) -> None:
        self.cores = max(1, cores)
        self.free = free
        self._free = self.cores
        self._active = 0
        self._queue: deque[object] = deque()
        self._cond = threading.Condition(threading.Lock())

    def enter(self) -> None:
        """A generation starts (it counts towards the fair share)."""
        with self._cond:
            self._active += 1

    def leave(self) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def fair_share(self) -> int:
        with self._cond:
            return max(1, self.cores // max(1, self._active))

    def acquire(self, n: int | None = None) -> int:
        """Wait for n cores (default: all), in arrival order; returns how many were taken."""
        n = min(self.cores, n or self.cores)
        me = object()
        with self._cond:
            self._queue.append(me)
            self._cond.wait_for(lambda: self._queue[0] is me and self._free >= n)
            self._queue.popleft()
            self._free -= n
            self._cond.notify_all()      # the next in line may fit in what is left
        return n

    def release(self, n: int | None = None) -> None:
        with self._cond:
            self._free = min(self.cores, self._free + (n or self.cores))
            self._cond.notify_all()

    def threads(self, held: int) -> int:
        """Threads to run now on `held` cores of this share (at least one)."""
        return max(1, held) if self.free is None else self.free.threads(held)

    def spread(self) -> int:
        """Single-thread contexts that same-model generations should spread over now: every core
        (at most SPREAD_MAX) when other processes leave one thread's worth free, else one.

        Linux shares a core per runnable thread: beside two busy loops on 2 cores one context on
        its one thread gets 2/3 of a core, two contexts on a thread each get a core between them
        (1.5x), and a one-thread context has no barrier to collapse (docs/benchmarks.md). With
        cores to spare one context on all of them is as fast, and reads a shared prompt once.
        """
        if self.free is None or self.cores < 2:
            return 1
        return min(self.cores, SPREAD_MAX) if self.free.usable() <= 1 else 1

    def has_waiters(self) -> bool:
        with self._cond:
            return bool(self._queue)

    def __enter__(self) -> "CoreShare":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class _Entry:
    model: LoadedModel
    size: int
    users: int = 0


@dataclass
class ModelCache:
    """Process-wide cache of loaded models (shared engine state, not user state)."""

    budget_bytes: int
    threads: int | None        # fixed threads per model (--threads); None: follow the free cores
    n_ctx: int
    backend_lookup: Callable[[str], Backend] = get_backend
    _entries: "OrderedDict[CacheKey, _Entry]" = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[CacheKey, threading.Lock] = field(default_factory=dict)
    _device_locks: dict[str, CoreShare] = field(default_factory=dict)
    loads: int = 0

    @property
    def cores(self) -> int:
        """The threads a model is loaded with: --threads, else every core this process may use."""
        from playground.devices import cpu_cores

        return self.threads or cpu_cores()

    def device_lock(self, device: str) -> CoreShare:
        """The cores of a device, shared by every model on it (see CoreShare)."""
        with self._lock:
            share = self._device_locks.get(device)
            if share is None:
                cores = self.cores
                share = CoreShare(cores, None if self.threads else FreeCores(cores))
                self._device_locks[device] = share
            return share

    def _key_lock(self, key: CacheKey) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def loaded_keys(self) -> list[CacheKey]:
        with self._lock:
            return list(self._entries)

    @contextmanager
    def use(self, spec: ModelSpec, backend: str, device: str) -> Iterator[LoadedModel]:
        """Borrow a loaded model (loading it at most once); it is not evicted while borrowed."""
        key = (spec.id, backend, device)
        entry = self._acquire(key, spec)
        try:
            yield entry.model
        finally:
            with self._lock:
                entry.users -= 1

    def _acquire(self, key: CacheKey, spec: ModelSpec) -> _Entry:
        with self._key_lock(key):
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    entry.users += 1
                    return entry
            impl = self.backend_lookup(key[1])
            if not impl.supports(spec):
                raise PlaygroundError(f"backend '{key[1]}' cannot run {spec.id} ({spec.format} model); "
                                      f"use one of: {', '.join(spec.backends)}")
            size = self._need(impl, spec, key[1], key[2])
            self._make_room(size)
            model = impl.load(spec, device=key[2], threads=self.cores, n_ctx=self.n_ctx,
                              compute_lock=self.device_lock(key[2]))
            entry = _Entry(model=model, size=size, users=1)
            with self._lock:
                self._entries[key] = entry
                self.loads += 1
            return entry

    def _need(self, impl: Backend, spec: ModelSpec, backend: str, device: str) -> int:
        """Bytes the model will take here; raises ModelError, before any loading, if it cannot fit."""
        from playground.models.fit import MB, estimate, gb

        est = estimate(spec, backend, device, self.n_ctx)
        if est is None:                      # remote server, or a backend fit.py does not know
            return impl.estimate_bytes(spec)
        fix = "lower --n-ctx, or pick a smaller model or quantisation"
        if est.total > self.budget_bytes:
            raise ModelError(
                f"{spec.id} will not fit in the memory budget: it needs about {est.describe()} with "
                f"{backend} on {device}, and the budget is {gb(self.budget_bytes)} (--memory-budget "
                f"{self.budget_bytes // MB}). Raise --memory-budget if the machine has the memory, {fix}.")
        limit, what = _device_memory(backend, device)
        if limit is not None and est.total > limit:
            raise ModelError(f"{spec.id} will not fit in {what}: it needs about {est.describe()} with "
                             f"{backend} on {device}, and there is {gb(limit)}. Use another device, {fix}.")
        return est.total

    def _make_room(self, size: int) -> None:
        victims: list[LoadedModel] = []
        with self._lock:
            total = sum(e.size for e in self._entries.values())
            for key in list(self._entries):
                if total + size <= self.budget_bytes:
                    break
                entry = self._entries[key]
                if entry.users == 0:
                    victims.append(self._entries.pop(key).model)
                    total -= entry.size
        for model in victims:
            model.close()

    def clear(self) -> None:
        with self._lock:
            entries, self._entries = list(self._entries.values()), OrderedDict()
        for entry in entries:
            entry.model.close()


def _device_memory(backend: str, device: str) -> tuple[int | None, str]:
    """The most memory a model on this device can use: the RAM for the CPU (and for llama.cpp, which
    keeps what does not fit on the GPU in RAM), plus a GPU's free memory where it offloads."""
    from playground.devices import gpus, ram

    total_ram = ram()[0] or None
    if device == "cpu":
        return total_ram, "this machine's RAM"
    found = gpus()
    free = found[0].free_bytes if found else None
    if found and found[0].source == "unified":      # Apple silicon: the GPU's memory is the RAM
        return total_ram, "this machine's unified memory"
    if backend == "llama_cpp":
        if total_ram is None:
            return None, ""
        return total_ram + (free or 0), "RAM plus free GPU memory"
    return free, f"the free memory of {found[0].name}" if found else "GPU memory"
