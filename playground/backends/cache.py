"""Loaded models kept in memory, keyed by (model, backend, device), with an LRU memory budget.

Switching panes back and forth must not reload a model, and two panes asking for the same model
at once must share one load. A model in use is never evicted; the least recently used idle ones
go first when a new load would exceed the budget.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from playground.backends import get_backend
from playground.backends.base import Backend, LoadedModel
from playground.errors import PlaygroundError
from playground.models.spec import ModelSpec

CacheKey = tuple[str, str, str]


@dataclass
class _Entry:
    model: LoadedModel
    size: int
    users: int = 0


@dataclass
class ModelCache:
    """Process-wide cache of loaded models (shared engine state, not user state)."""

    budget_bytes: int
    threads: int
    n_ctx: int
    backend_lookup: Callable[[str], Backend] = get_backend
    _entries: "OrderedDict[CacheKey, _Entry]" = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _key_locks: dict[CacheKey, threading.Lock] = field(default_factory=dict)
    _device_locks: dict[str, threading.Lock] = field(default_factory=dict)
    loads: int = 0

    def device_lock(self, device: str) -> threading.Lock:
        """One decode at a time per device: each uses every thread, panes interleave by token."""
        with self._lock:
            return self._device_locks.setdefault(device, threading.Lock())

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
            size = impl.estimate_bytes(spec)
            self._make_room(size)
            model = impl.load(spec, device=key[2], threads=self.threads, n_ctx=self.n_ctx,
                              compute_lock=self.device_lock(key[2]))
            entry = _Entry(model=model, size=size, users=1)
            with self._lock:
                self._entries[key] = entry
                self.loads += 1
            return entry

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
