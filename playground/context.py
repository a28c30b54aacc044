"""AppContext: the long-lived services of one process, built once and passed explicitly.

It holds engine state shared by every user (catalog, loaded models, presets), never a user's
own state: histories, votes in progress and battles live in each session's `gr.State`.
"""
from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from typing import Callable

from playground.auth.access import Access
from playground.backends.cache import ModelCache
from playground.config import Settings
from playground.errors import ModelError, PlaygroundError, PresetError
from playground.models.catalog import Catalog, build_catalog, hub_spec
from playground.models.spec import ModelSpec
from playground.prompting.presets import PresetLibrary, PromptPreset, default_preset_for, load_presets
from playground.sampling import SamplingParams, SamplingPreset, load_sampling_presets


@dataclass
class RunRegistry:
    """Cancel events of the generations in flight, by run id (the id lives in gr.State)."""

    _events: dict[str, threading.Event] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> tuple[str, threading.Event]:
        run_id, event = uuid.uuid4().hex, threading.Event()
        with self._lock:
            self._events[run_id] = event
        return run_id, event

    def cancel(self, run_id: str | None) -> bool:
        with self._lock:
            event = self._events.get(run_id or "")
        if event is not None:
            event.set()
        return event is not None

    def finish(self, run_id: str) -> None:
        with self._lock:
            self._events.pop(run_id, None)


@dataclass
class AppContext:
    settings: Settings
    catalog: Catalog
    cache: ModelCache
    presets: PresetLibrary
    sampling_presets: dict[str, SamplingPreset]
    preset_errors: list[PresetError]
    runs: RunRegistry = field(default_factory=RunRegistry)
    access: Access = field(default_factory=Access)   # who may do what (set by `serve`; local admin by default)

    @classmethod
    def create(cls, settings: Settings, hub_refs: tuple[str, ...] = ()) -> "AppContext":
        presets = load_presets(settings.presets_dir)
        sampling, sampling_errors = load_sampling_presets(settings.presets_dir / "sampling")
        catalog = build_catalog(settings.models_dir, settings.presets_dir, hub_refs, cache_dir=settings.cache_dir)
        cache = ModelCache(budget_bytes=settings.memory_budget_mb * 1024 * 1024,
                           threads=settings.threads, n_ctx=settings.n_ctx)
        return cls(settings=settings, catalog=catalog, cache=cache, presets=presets,
                   sampling_presets=sampling, preset_errors=[*presets.errors, *sampling_errors])

    def refresh_catalog(self) -> Catalog:
        """Re-scan bundled packages, the models folder and the Hub cache (new files appear)."""
        extra = [s.hub_ref for s in self.catalog if s.source == "hub" and s.hub_ref]
        remote = [s for s in self.catalog if s.source == "remote"]
        catalog = build_catalog(self.settings.models_dir, self.settings.presets_dir, extra,
                                cache_dir=self.settings.cache_dir)
        for spec in remote:            # added at run time: keep them
            catalog.models.setdefault(spec.id, spec)
        self.catalog = catalog
        return self.catalog

    def sampling(self, preset_id: str | None, **overrides: object) -> SamplingParams:
        """A sampling preset's parameters with per-pane overrides (None means keep the preset's)."""
        if preset_id and preset_id not in self.sampling_presets:
            raise PlaygroundError(f"unknown sampling preset '{preset_id}': choose one of "
                                  f"{', '.join(self.sampling_presets)}")
        base = self.sampling_presets[preset_id].params if preset_id else SamplingParams()
        return base.with_changes(**{k: v for k, v in overrides.items() if v is not None})

    def prompt_preset(self, mode: str, preset_id: str | None) -> PromptPreset:
        if preset_id:
            preset = self.presets.prompting.get(preset_id)
            if preset is None:
                raise PlaygroundError(f"unknown prompting preset '{preset_id}': choose one of "
                                      f"{', '.join(self.presets.prompting)}")
            return preset
        return default_preset_for(mode, library=self.presets)

    def resolve_device(self, requested: str, backend: str) -> tuple[str, str | None]:
        from playground.devices import resolve_device

        return resolve_device(requested, backend)

    def ensure_local(self, spec: ModelSpec, progress: Callable[[str, float], None] | None = None,
                     explicit: bool = False) -> ModelSpec:
        """A spec whose files are on disk: a Hub entry is downloaded (or found in the cache), the
        bundled model's F16 copy is built into the cache (once, a few seconds).

        `explicit`: an admin pressed Download; otherwise this is a download on first use, which a
        team server (`allow_hub_download` off) refuses. Either way at most `max_download_gb`.
        """
        if spec.available:
            return spec   # on disk, or served by a remote server
        if spec.built_from is not None:
            from playground.models.catalog import ensure_built

            fresh = ensure_built(spec, self.settings.cache_dir, progress)
            self.catalog.models[spec.id] = fresh
            return fresh
        if spec.source != "hub" or not spec.hub_ref:
            raise ModelError(f"model file not found for {spec.id}: {spec.path}. "
                             "It was moved or deleted; refresh the model list.")
        if not (explicit or self.settings.allow_hub_download):
            raise ModelError(f"{spec.hub_ref} is not downloaded yet, and this server does not download models on "
                             "first use: an admin can download it in the Models tab")
        from playground.models.hub import download, parse_hub_ref

        download(parse_hub_ref(spec.hub_ref), progress=progress,
                 max_bytes=int(self.settings.max_download_gb * 1e9))
        fresh = hub_spec(spec.hub_ref)
        self.catalog.models[spec.id] = fresh
        return fresh
