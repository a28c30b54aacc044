"""ModelCache: one load per (model, backend, device), LRU eviction within the memory budget."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from playground.backends.cache import ModelCache
from playground.models.spec import ModelSpec


@dataclass
class FakeModel:
    spec: ModelSpec
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeBackend:
    """Counts loads; slow enough that concurrent requests overlap."""

    name: str = "fake"
    loads: list[str] = field(default_factory=list)

    def supports(self, spec: ModelSpec) -> bool:
        return True

    def estimate_bytes(self, spec: ModelSpec) -> int:
        return spec.file_size or 0

    def load(self, spec, *, device, threads, n_ctx, compute_lock=None):
        time.sleep(0.05)
        self.loads.append(spec.id)
        return FakeModel(spec)


def spec(name: str, size: int = 100) -> ModelSpec:
    return ModelSpec(id=name, display_name=name, source="local", backends=("fake",), file_size=size)


def make_cache(budget: int) -> tuple[ModelCache, FakeBackend]:
    backend = FakeBackend()
    return ModelCache(budget_bytes=budget, threads=1, n_ctx=128, backend_lookup=lambda name: backend), backend


def test_concurrent_requests_share_one_load():
    cache, backend = make_cache(1000)
    got = []

    def borrow():
        with cache.use(spec("a"), "fake", "cpu") as m:
            got.append(m)

    threads = [threading.Thread(target=borrow) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert backend.loads == ["a"]
    assert len({id(m) for m in got}) == 1


def test_lru_eviction_within_budget():
    cache, backend = make_cache(250)
    for name in ("a", "b"):
        with cache.use(spec(name), "fake", "cpu"):
            pass
    with cache.use(spec("a"), "fake", "cpu") as a:       # a is now the most recently used
        pass
    with cache.use(spec("c"), "fake", "cpu"):
        pass
    assert [k[0] for k in cache.loaded_keys()] == ["a", "c"]   # b, the least recently used, went
    with cache.use(spec("a"), "fake", "cpu") as again:
        assert again is a                                    # no reload
    assert backend.loads == ["a", "b", "c"]


def test_a_model_in_use_is_never_evicted():
    cache, _ = make_cache(150)
    with cache.use(spec("a"), "fake", "cpu") as a:
        with cache.use(spec("b"), "fake", "cpu"):
            assert not a.closed                              # over budget, but a is borrowed
    assert {k[0] for k in cache.loaded_keys()} == {"a", "b"}


def test_device_lock_is_shared_per_device():
    cache, _ = make_cache(100)
    assert cache.device_lock("cpu") is cache.device_lock("cpu")
    assert cache.device_lock("cpu") is not cache.device_lock("gpu")


def test_unsupported_backend_is_a_clear_error():
    from playground.errors import PlaygroundError

    backend = FakeBackend()
    backend.supports = lambda s: False
    cache = ModelCache(budget_bytes=100, threads=1, n_ctx=128, backend_lookup=lambda name: backend)
    with pytest.raises(PlaygroundError, match="cannot run"):
        with cache.use(spec("a"), "fake", "cpu"):
            pass


def test_real_model_switching_does_not_reload(app_ctx):
    """Back and forth between two keys of the real bundled model: each loads once."""
    spec_ = app_ctx.catalog.get("smollm2-135m-instruct")
    with app_ctx.cache.use(spec_, "llama_cpp", "cpu") as first:
        pass
    loads = app_ctx.cache.loads
    for _ in range(3):
        with app_ctx.cache.use(spec_, "llama_cpp", "cpu") as again:
            assert again is first
    assert app_ctx.cache.loads == loads
