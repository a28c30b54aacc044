"""Running several panes at once and merging their streams into one.

Each pane runs in its own thread; the caller iterates snapshots of all panes. One cancel event
stops every pane. An error in one pane ends that pane only, with its message shown there.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from playground.context import AppContext
from playground.engine import PaneResult, run_plan
from playground.errors import ContextOverflowError, PlaygroundError
from playground.prompting.modes import build_plan
from playground.prompting.plan import Message, PromptPlan
from playground.sampling import SamplingParams


@dataclass(frozen=True)
class PaneSpec:
    """What one pane runs: a model on a backend and device, under a prompting mode."""

    model_id: str
    mode: str = "zero_shot"
    backend: str | None = None           # None: the model's default backend
    device: str = "cpu"
    preset_id: str | None = None         # None: the mode's default preset
    shots: int | None = None
    samples: int | None = None
    trigger: str | None = None
    system_prompt: str | None = None
    template_index: int | None = None
    sampling: SamplingParams = field(default_factory=SamplingParams)

    def label(self) -> str:
        return f"{self.model_id} · {self.mode}"


# The Playground's "compare modes" layout and its per-pane defaults (playground/ui/grid.py).
COMPARE_MODES_ORDER = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "instruction", "self_consistency")


def family_preset(ctx: AppContext, mode: str, family: str) -> str | None:
    """The prompting preset of a task family for a mode (the Playground's 'Task family')."""
    for preset in ctx.presets.prompting.values():
        if preset.mode == mode and preset.family == family:
            return preset.id
    return None


def playground_pane(ctx: AppContext, model_id: str, mode: str, *, family: str = "arithmetic",
                    backend: str | None = None, device: str = "cpu", shots: int = 4, samples: int = 5,
                    sampling: SamplingParams | None = None) -> PaneSpec:
    """A pane as the Playground builds it from its controls (shots only for the modes that use them)."""
    return PaneSpec(model_id=model_id, mode=mode, backend=backend, device=device,
                    preset_id=family_preset(ctx, mode, family),
                    shots=shots if mode in ("few_shot", "few_shot_cot", "self_consistency") else None,
                    samples=samples if mode == "self_consistency" else None,
                    sampling=sampling or ctx.sampling("deterministic" if "deterministic" in ctx.sampling_presets
                                                      else None))


def preload_models(ctx: AppContext, panes: Sequence[PaneSpec]) -> None:
    """Load every pane's model once (benchmarks and the CLI keep loading out of their timings)."""
    for pane in panes:
        spec = ctx.ensure_local(ctx.catalog.get(pane.model_id))
        backend = pane.backend or spec.backends[0]
        device, _ = ctx.resolve_device(pane.device, backend)
        with ctx.cache.use(spec, backend, device):
            pass


def plan_for(ctx: AppContext, pane: PaneSpec, question: str, history: Sequence[Message], chat: bool) -> PromptPlan:
    """The prompting step: mode + preset + input -> exactly what will be sent."""
    preset = ctx.prompt_preset(pane.mode, pane.preset_id)
    exemplars = ctx.presets.exemplars.get(preset.exemplar_set) if preset.exemplar_set else None
    return build_plan(pane.mode, question, preset=preset, exemplars=exemplars, chat=chat,
                      history=tuple(history), shots=pane.shots, samples=pane.samples,
                      trigger=pane.trigger, template_index=pane.template_index,
                      rng_seed=pane.sampling.seed, system_prompt=pane.system_prompt)


def run_pane(ctx: AppContext, pane: PaneSpec, question: str, history: Sequence[Message] = (),
             cancel: threading.Event | None = None) -> Iterator[PaneResult]:
    """One pane from model lookup to the final result; oldest turns are dropped if too long."""
    spec = ctx.catalog.get(pane.model_id)
    backend = pane.backend or spec.backends[0]
    if backend not in spec.backends:
        raise PlaygroundError(f"{spec.id} cannot run on backend '{backend}': use {', '.join(spec.backends)}")
    spec = ctx.ensure_local(spec)
    device, warning = ctx.resolve_device(pane.device, backend)
    with ctx.cache.use(spec, backend, device) as model:
        notices = [w for w in (warning, *model.warnings) if w]
        history = list(history)
        while True:
            plan = plan_for(ctx, pane, question, history, chat=bool(spec.is_chat))
            try:
                for result in run_plan(model, plan, pane.sampling, cancel):
                    result.notices[:0] = [n for n in notices if n not in result.notices]
                    result.device, result.ran_on = model.device, model.ran_on
                    yield result
                return
            except ContextOverflowError:
                if len(history) < 2:
                    raise
                history = history[2:]
                notices.append("the conversation was too long for the context: the oldest turn was dropped")


@dataclass
class _PaneBox:
    """Where a pane's worker leaves its progress for the reader: the live result (mutated in place
    by the engine) and, once it has ended, the final one."""

    live: PaneResult = field(default_factory=PaneResult)
    final: PaneResult | None = None

    def snapshot(self) -> PaneResult:
        return self.final if self.final is not None else self.live.copy()


def _worker(ctx: AppContext, pane: PaneSpec, question: str, history: Sequence[Message],
            cancel: threading.Event, box: _PaneBox, ended: threading.Event) -> None:
    last = PaneResult()
    try:
        for last in run_pane(ctx, pane, question, history, cancel):
            box.live = last
    except PlaygroundError as exc:
        last = last.copy()
        last.error, last.finish_reason = str(exc), "error"
    except Exception as exc:  # a bug in one pane must not take the others down
        last = last.copy()
        last.error, last.finish_reason = f"internal error: {type(exc).__name__}: {exc}", "error"
    final = last.copy()
    final.done = True
    box.final = final
    ended.set()


def run_panes(ctx: AppContext, panes: Sequence[PaneSpec], question: str,
              histories: Sequence[Sequence[Message]] | None = None,
              cancel: threading.Event | None = None, min_interval_s: float = 0.05) -> Iterator[list[PaneResult]]:
    """Run every pane at once; yield a snapshot of all panes every `min_interval_s` and when one ends.

    The reader polls instead of being woken for every token: a reader thread that wakes per
    token competes with the decoding threads for the GIL and costs them a quarter of their speed.
    """
    cancel = cancel or threading.Event()
    histories = histories or [() for _ in panes]
    boxes = [_PaneBox() for _ in panes]
    ended = threading.Event()
    threads = [threading.Thread(target=_worker, args=(ctx, p, question, histories[i], cancel, boxes[i], ended),
                                daemon=True, name=f"pane-{i}") for i, p in enumerate(panes)]
    for t in threads:
        t.start()
    interval = max(min_interval_s, 0.01)
    finished = False
    try:
        while not finished:
            ended.wait(timeout=interval)
            ended.clear()
            finished = all(b.final is not None for b in boxes)
            yield [b.snapshot() for b in boxes]
    finally:
        if not finished:
            cancel.set()
