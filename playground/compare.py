"""Running several panes at once and merging their streams into one.

Each pane runs in its own thread; the caller iterates snapshots of all panes. One cancel event
stops every pane. An error in one pane ends that pane only, with its message shown there.
"""
from __future__ import annotations

import queue
import threading
import time
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
        notices = [w for w in (warning, *getattr(model, "warnings", [])) if w]
        history = list(history)
        while True:
            plan = plan_for(ctx, pane, question, history, chat=bool(spec.is_chat))
            try:
                for result in run_plan(model, plan, pane.sampling, cancel):
                    result.notices[:0] = [n for n in notices if n not in result.notices]
                    yield result
                return
            except ContextOverflowError:
                if len(history) < 2:
                    raise
                history = history[2:]
                notices.append("the conversation was too long for the context: the oldest turn was dropped")


def _worker(ctx: AppContext, index: int, pane: PaneSpec, question: str, history: Sequence[Message],
            cancel: threading.Event, out: "queue.Queue[tuple[int, PaneResult]]") -> None:
    last = PaneResult()
    try:
        for result in run_pane(ctx, pane, question, history, cancel):
            last = result
            out.put((index, result.copy()))
    except PlaygroundError as exc:
        last = last.copy()
        last.error, last.finish_reason = str(exc), "error"
    except Exception as exc:  # a bug in one pane must not take the others down
        last = last.copy()
        last.error, last.finish_reason = f"internal error: {type(exc).__name__}: {exc}", "error"
    last = last.copy()
    last.done = True
    out.put((index, last))


def run_panes(ctx: AppContext, panes: Sequence[PaneSpec], question: str,
              histories: Sequence[Sequence[Message]] | None = None,
              cancel: threading.Event | None = None, min_interval_s: float = 0.05) -> Iterator[list[PaneResult]]:
    """Run every pane at once; yield a snapshot of all panes at most every `min_interval_s`."""
    cancel = cancel or threading.Event()
    histories = histories or [() for _ in panes]
    states = [PaneResult() for _ in panes]
    out: "queue.Queue[tuple[int, PaneResult]]" = queue.Queue()
    threads = [threading.Thread(target=_worker, args=(ctx, i, p, question, histories[i], cancel, out),
                                daemon=True, name=f"pane-{i}") for i, p in enumerate(panes)]
    for t in threads:
        t.start()
    last_yield = 0.0
    try:
        while not all(s.done for s in states):
            try:
                index, result = out.get(timeout=0.2)
            except queue.Empty:
                continue
            states[index] = result
            while not out.empty():
                index, result = out.get_nowait()
                states[index] = result
            now = time.perf_counter()
            if now - last_yield >= min_interval_s or all(s.done for s in states):
                last_yield = now
                yield list(states)
    finally:
        if not all(s.done for s in states):
            cancel.set()
