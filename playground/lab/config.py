"""What a lab is: the user's request (`LabConfig`), validated into a `LabJob` of (model, mode) runs.

Everything is checked before anything runs (task file, modes, models, presets, sampling, shots),
so a typo fails in a second, not after the first model has run for an hour. A run is identified
by a key over everything that changes its answers (task file content hash, model, backend,
device, mode, prompting preset, shots, samples, sampling incl. seed and max tokens, scoring):
running the same configuration again resumes it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from playground.compare import PaneSpec, plan_for
from playground.context import AppContext
from playground.errors import PlaygroundError, UnknownModelError
from playground.lab.tasks import TaskItem, TaskSet, check_family, infer_family, load_task_file
from playground.models.spec import ModelSpec
from playground.prompting.plan import MODES
from playground.prompting.presets import PromptPreset

DEFAULT_MODES: tuple[str, ...] = ("zero_shot", "few_shot_cot")
DEFAULT_SAMPLING_PRESET = "deterministic"


@dataclass(frozen=True)
class LabConfig:
    """What the user asked for; `prepare_lab` validates it into a `LabJob`."""

    task_path: Path
    models: tuple[str, ...]
    modes: tuple[str, ...] = DEFAULT_MODES
    limit: int | None = None
    seed: int = 0
    family: str | None = None            # None: inferred from the task file's answers
    max_tokens: int | None = None        # None: the sampling preset's
    shots: int | None = None             # None: the preset's
    samples: int | None = None           # self-consistency paths; None: the preset's
    run_name: str | None = None
    backend: str | None = None           # None: each model's default backend
    device: str = "cpu"
    sampling_preset: str = DEFAULT_SAMPLING_PRESET
    logprob: bool = True                 # compute the gold log-likelihood metric
    shot_counts: tuple[int, ...] = ()    # in-context learning curve: one run per k for few-shot modes
    unattended: bool | None = None       # load each model alone and free it; None: when several models


@dataclass(frozen=True)
class LabRunSpec:
    """One (model, mode) pair, resolved: what runs and the key that makes it resumable."""

    model: ModelSpec
    backend: str
    device: str
    mode: str
    preset: PromptPreset
    pane: PaneSpec
    config_key: str

    @property
    def label(self) -> str:
        shots = f" · {self.pane.shots}-shot" if self.pane.shots is not None else ""
        return f"{self.model.id} · {self.mode}{shots}"


@dataclass(frozen=True)
class LabJob:
    """A validated lab: the items to run and every (model, mode) run, ready to go."""

    config: LabConfig
    tasks: TaskSet
    items: tuple[TaskItem, ...]
    family: str
    runs: tuple[LabRunSpec, ...]
    name: str
    unattended: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return self.tasks.labels


def _fail(message: str) -> PlaygroundError:
    return PlaygroundError(message)


def check_modes(modes: Sequence[str]) -> tuple[str, ...]:
    """Known, de-duplicated modes; an unknown one names the valid choices."""
    cleaned = tuple(dict.fromkeys(m.strip() for m in modes if m and m.strip()))
    if not cleaned:
        raise _fail(f"no prompting mode given; choose from: {', '.join(MODES)}")
    for mode in cleaned:
        if mode not in MODES:
            raise _fail(f"unknown prompting mode '{mode}'; choose from: {', '.join(MODES)}")
    return cleaned


def check_models(ctx: AppContext, model_ids: Sequence[str]) -> tuple[ModelSpec, ...]:
    """Catalog specs of the models; an unknown id names the models there are."""
    cleaned = tuple(dict.fromkeys(m.strip() for m in model_ids if m and m.strip()))
    if not cleaned:
        raise _fail(f"no model given; choose from: {', '.join(ctx.catalog.ids())}")
    specs = []
    for model_id in cleaned:
        try:
            specs.append(ctx.catalog.get(model_id))
        except UnknownModelError as exc:
            raise _fail(f"{exc} Models in the catalog: {', '.join(ctx.catalog.ids())}") from None
    return tuple(specs)


def resolve_preset(ctx: AppContext, mode: str, family: str) -> PromptPreset:
    """The family's preset for a mode, else the general one (family-agnostic), else a clear error."""
    for candidate in dict.fromkeys((family, "general")):
        try:
            return ctx.presets.default_preset_for(mode, candidate)
        except PlaygroundError:
            continue
    usable = [m for m in MODES if ctx.presets.presets_for(m, family) or ctx.presets.presets_for(m, "general")]
    raise _fail(f"no prompting preset for mode '{mode}' and task family '{family}'; modes available "
                f"for this family: {', '.join(usable) or 'none'} (or add a preset in presets/prompting/)")


def config_key(parts: dict[str, Any]) -> str:
    """A stable hash of everything that changes a run's answers: equal keys resume one run."""
    canonical = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


FEW_SHOT_MODES = ("few_shot", "few_shot_cot", "self_consistency")


def parse_shot_counts(value: str | None) -> tuple[int, ...]:
    """'0,1,2,4,8' -> (0, 1, 2, 4, 8); blank -> (); anything else a clear error."""
    parts = [v.strip() for v in (value or "").split(",") if v.strip()]
    try:
        return tuple(int(v) for v in parts)
    except ValueError:
        raise _fail(f"shot counts must be whole numbers separated by commas, e.g. 0,1,2,4,8; got {value!r}") from None


def shots_for(config: LabConfig, mode: str) -> tuple[int | None, ...]:
    """The exemplar counts a mode runs with: the curve's k values, the one given, or the preset's (None)."""
    if mode not in FEW_SHOT_MODES:
        return (None,)
    if config.shot_counts:
        return tuple(dict.fromkeys(int(k) for k in config.shot_counts))
    return (config.shots,)


def prepare_lab(ctx: AppContext, config: LabConfig) -> LabJob:
    """Validate everything before anything runs: task file, modes, models, presets, sampling."""
    modes = check_modes(config.modes)
    specs = check_models(ctx, config.models)
    tasks = load_task_file(config.task_path)
    family = check_family(config.family) if config.family else infer_family(tasks.items)
    if config.limit is not None and (isinstance(config.limit, bool) or config.limit < 1):
        raise _fail(f"limit must be a whole number of at least 1, got {config.limit!r}")
    items = tasks.items[: config.limit] if config.limit else tasks.items
    presets = {mode: resolve_preset(ctx, mode, family) for mode in modes}
    sampling = ctx.sampling(config.sampling_preset, max_new_tokens=config.max_tokens, seed=config.seed)
    runs = []
    for spec in specs:
        backend = config.backend or spec.backends[0]
        if backend not in spec.backends:
            raise _fail(f"{spec.id} cannot run on backend '{backend}'; use one of: {', '.join(spec.backends)}")
        spec = ctx.ensure_local(spec)
        device, _ = ctx.resolve_device(config.device, backend)
        for mode in modes:
            preset = presets[mode]
            for shots in shots_for(config, mode):
                pane = PaneSpec(model_id=spec.id, mode=mode, backend=backend, device=device, preset_id=preset.id,
                                shots=shots, samples=config.samples if mode == "self_consistency" else None,
                                sampling=sampling)
                key = config_key({"task_hash": tasks.sha256, "model": spec.id, "model_size": spec.file_size,
                                  "backend": backend, "device": device, "mode": mode, "preset": preset.id,
                                  "shots": pane.shots, "samples": pane.samples, "sampling": sampling.to_dict(),
                                  "family": family, "logprob": config.logprob})
                runs.append(LabRunSpec(model=spec, backend=backend, device=device, mode=mode, preset=preset,
                                       pane=pane, config_key=key))
    for run in runs:   # a bad shots/samples value must fail now, not after the first model ran
        plan_for(ctx, run.pane, items[0].question, (), chat=bool(run.model.is_chat))
    name = config.run_name or tasks.name
    unattended = len(specs) > 1 if config.unattended is None else bool(config.unattended)
    return LabJob(config=config, tasks=tasks, items=items, family=family, runs=tuple(runs), name=name,
                  unattended=unattended)
