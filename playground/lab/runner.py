"""Running a lab: every (model, mode) run of a `LabJob`, item by item, each stored as it is scored.

Every (model, mode) pair is one run (`lab_runs`); every item it answers is one row of
`lab_results`, written in its own short transaction as soon as it is scored, so a crash or a
cancel loses at most the item in flight. Running the same configuration again resumes it and
only the items without a successful result are run.

Prompts are built by `compare.plan_for` and run by `engine.run_plan`, exactly as in the UI; the
only change is the plan's `answer_kind`, set to the item's (number / yes_no / choice / text) so
the answer is extracted the way it is scored. The prompt text is untouched.

Two metrics per item:

- exact match: the extracted final answer against the gold one (`answers_match`: numbers by
  value, yes/no and text case-insensitively, choices by letter). An item that failed with an
  error counts as wrong (n includes it); errored items are retried on resume.
- gold log-likelihood (`playground.lab.scoring`).
"""
from __future__ import annotations

import json
import threading
import time
import gc
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlite_utils import Database

from playground.backends import get_backend
from playground.compare import plan_for
from playground.context import AppContext
from playground.engine import PaneResult, run_plan
from playground.errors import PlaygroundError
from playground.lab.choices import score_options
from playground.lab.config import LabJob, LabRunSpec
from playground.lab.meter import PeakMemory
from playground.lab.scoring import gold_logprob, scoring_prompt
from playground.lab.tasks import TaskItem, score_answer
from storage import lab as lab_store
from storage.db import open_database

STATUSES = ("running", "done", "cancelled", "error")


@dataclass(frozen=True)
class LabProgress:
    """Progress of a lab, for a progress bar: item counts, speed and time left."""

    done: int
    total: int
    run_label: str
    elapsed_s: float
    items_per_s: float | None
    eta_s: float | None
    skipped: int = 0       # items already stored (resumed), not counted in total


@dataclass
class LabOutcome:
    """What `run_lab` did."""

    run_ids: list[int] = field(default_factory=list)
    ran: int = 0
    skipped: int = 0
    cancelled: bool = False
    errors: list[str] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)   # lab_model_stats rows written


@dataclass
class ItemResult:
    """One scored item, as written to `lab_results`."""

    item_index: int
    question: str
    gold: str
    prompt: str
    output: str
    extracted: str | None
    correct: int
    gold_logprob_mean: float | None
    gold_n_tokens: int | None
    n_prompt_tokens: int
    n_output_tokens: int
    total_s: float
    finish_reason: str | None
    error: str | None = None
    samples: str | None = None            # self-consistency: JSON of the sampled paths and the tally
    option_logprobs: str | None = None    # multiple choice: JSON list of each option's log-likelihood
    ttft_s: float | None = None           # time to the first token of the answer
    tokens_per_s: float | None = None     # decode speed of the answer


def run_item(ctx: AppContext, model: Any, run: LabRunSpec, item: TaskItem, labels: tuple[str, ...],
             cancel: threading.Event | None, logprob: bool = True) -> ItemResult | None:
    """Answer and score one item; None if it was cancelled half-way (nothing to store)."""
    start = time.perf_counter()
    try:
        plan = plan_for(ctx, run.pane, item.question, (), chat=bool(run.model.is_chat))
        plan = replace(plan, answer_kind=item.answer_kind)
        result = PaneResult()
        for result in run_plan(model, plan, run.pane.sampling, cancel):
            pass
    except PlaygroundError as exc:
        return ItemResult(item.index, item.question, item.gold, "", "", None, 0, None, None, 0, 0,
                          time.perf_counter() - start, "error", error=str(exc))
    if result.finish_reason == "cancelled":
        return None
    extracted, correct = score_answer(item, result.extracted.value if result.extracted else None,
                                      result.answer_text, labels)
    mean, n_gold = gold_logprob(model, scoring_prompt(result.exact_prompt, plan), item) if logprob else (None, None)
    options = score_options(model, item) if logprob else None
    samples = result.samples_json()
    return ItemResult(item.index, item.question, item.gold, result.exact_prompt, result.answer_text, extracted,
                      int(correct), mean, n_gold, result.n_prompt_tokens, result.n_output_tokens,
                      time.perf_counter() - start, result.finish_reason,
                      samples=json.dumps(samples, ensure_ascii=False) if samples else None,
                      option_logprobs=json.dumps([asdict(o) for o in options]) if options else None,
                      ttft_s=result.ttft_s, tokens_per_s=result.tokens_per_s)


# ---------------------------------------------------------------- storage

def start_run(db: Database, job: LabJob, run: LabRunSpec) -> int:
    """A new run row, status running. A re-run of the same configuration is a new run too: it
    reuses the stored items (its view, see storage/lab.py) and never changes the earlier run."""
    created_at, tstamp = lab_store.now()
    return lab_store.insert_run(db, {
        "created_at": created_at, "tstamp": tstamp, "name": job.name, "task_file": str(job.tasks.path),
        "task_hash": job.tasks.sha256, "n_items": len(job.items), "model_id": run.model.id,
        "model_n_params": run.model.n_params, "backend": run.backend, "device": run.device,
        "mode": run.mode, "preset": run.preset.id, "family": job.family, "shots": run.pane.shots,
        "samples": run.pane.samples, "sampling": json.dumps(run.pane.sampling.to_dict()),
        "seed": run.pane.sampling.seed, "status": "running", "items_per_s": None,
        "config_key": run.config_key, "model_is_chat": None if run.model.is_chat is None else int(run.model.is_chat),
        "model_architecture": run.model.architecture,
    })


def completed_run(db: Database, job: LabJob, run: LabRunSpec) -> int:
    """For a configuration with every item stored: the latest finished run over exactly these items,
    else a new run, finished at once, whose view is the stored items."""
    latest = lab_store.find_run(db, run.config_key)
    if latest and latest["status"] == "done" and latest["n_items"] == len(job.items) \
            and latest["task_file"] == str(job.tasks.path) and latest["name"] == job.name:
        return int(latest["id"])
    run_id = start_run(db, job, run)
    finish_run(db, run_id, "done")
    return run_id


def store_result(db: Database, run_id: int, result: ItemResult) -> None:
    """One item, one short transaction."""
    created_at, tstamp = lab_store.now()
    lab_store.insert_result(db, {"run_id": run_id, **asdict(result), "created_at": created_at, "tstamp": tstamp})


def finish_run(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    lab_store.finish_run(db, run_id, status, error)


def error_run(db: Database, job: LabJob, run: LabRunSpec, message: str) -> int:
    run_id = start_run(db, job, run)
    finish_run(db, run_id, "error", message)
    return run_id


# ---------------------------------------------------------------- running

@dataclass
class _Meter:
    """Counts items run in this call and turns them into speed and time left."""

    total: int
    skipped: int
    on_progress: Callable[[LabProgress], None] | None
    started: float = field(default_factory=time.perf_counter)
    done: int = 0

    def report(self, label: str) -> None:
        if self.on_progress is None:
            return
        elapsed = time.perf_counter() - self.started
        speed = self.done / elapsed if self.done and elapsed > 0 else None
        eta = (self.total - self.done) / speed if speed else None
        self.on_progress(LabProgress(self.done, self.total, label, elapsed, speed, eta, self.skipped))


def _pending(db: Database, job: LabJob) -> dict[str, list[TaskItem]]:
    """Items each run still needs, by config key."""
    pending = {}
    for run in job.runs:
        done = lab_store.finished_indices(db, run.config_key)
        pending[run.config_key] = [i for i in job.items if i.index not in done]
    return pending


def run_lab(ctx: AppContext, job: LabJob, db_path: str | Path | None = None,
            cancel: threading.Event | None = None,
            on_progress: Callable[[LabProgress], None] | None = None) -> LabOutcome:
    """Run every (model, mode) of the job, resuming stored items; stops early when `cancel` is set.

    Models run one at a time. With `job.unattended` (several models, or asked for) each is loaded
    for the lab alone and freed before the next, so a ladder of models never holds two at once;
    otherwise it is borrowed from `ctx.cache` (loaded once, shared with the UI). Each model's load
    time, peak memory, tokens/s and time to first token go to `lab_model_stats`. A
    KeyboardInterrupt marks the current run cancelled and propagates; what was stored stays.
    """
    db = open_database(db_path or ctx.settings.db_path)
    outcome = LabOutcome()
    try:
        pending = _pending(db, job)
        total = sum(len(v) for v in pending.values())
        meter = _Meter(total=total, skipped=len(job.runs) * len(job.items) - total, on_progress=on_progress)
        outcome.skipped = meter.skipped
        meter.report(job.runs[0].label if job.runs else "")
        for model_id in dict.fromkeys(r.model.id for r in job.runs):
            group = [r for r in job.runs if r.model.id == model_id]
            if cancel is not None and cancel.is_set():
                outcome.cancelled = True
                break
            _run_model(ctx, db, job, group, pending, cancel, meter, outcome)
            if outcome.cancelled:
                break
    finally:
        db.close()
    return outcome


def _run_model(ctx: AppContext, db: Database, job: LabJob, group: list[LabRunSpec],
               pending: dict[str, list[TaskItem]], cancel: threading.Event | None, meter: _Meter,
               outcome: LabOutcome) -> None:
    """All runs of one model under one loaded model, measured (see run_lab)."""
    first = group[0]
    if not any(pending[r.config_key] for r in group):   # all stored already: no need to load the model
        outcome.run_ids.extend(completed_run(db, job, run) for run in group)
        return
    results: list[ItemResult] = []
    ids_before = len(outcome.run_ids)
    stats: dict[str, Any] = {"model_id": first.model.id, "backend": first.backend, "device": first.device,
                             "freed": int(job.unattended)}
    with PeakMemory() as memory, ExitStack() as stack:
        started = time.perf_counter()
        try:
            model = stack.enter_context(_borrow(ctx, first, job.unattended))
        except PlaygroundError as exc:   # the model cannot be loaded: its runs fail, the others go on
            outcome.errors.append(f"{first.model.id}: {exc}")
            outcome.run_ids.extend(error_run(db, job, run, str(exc)) for run in group)
            stats["error"] = str(exc)
            model = None
        stats["load_s"] = time.perf_counter() - started
        for run in group if model is not None else ():
            if not pending[run.config_key]:
                outcome.run_ids.append(completed_run(db, job, run))
                continue
            run_id = start_run(db, job, run)
            outcome.run_ids.append(run_id)
            status = _run_items(ctx, db, job, run, run_id, model, pending[run.config_key], cancel, meter, outcome,
                                results)
            if status == "cancelled":
                outcome.cancelled = True
                break
    _record_model(db, stats, outcome.run_ids[ids_before:], results, memory, outcome)


@contextmanager
def _borrow(ctx: AppContext, run: LabRunSpec, private: bool) -> Iterator[Any]:
    """The model for one stage: the shared cache's, or (unattended) a load of its own, closed and
    garbage-collected on the way out so its memory is back before the next model loads."""
    if not private:
        with ctx.cache.use(run.model, run.backend, run.device) as model:
            yield model
        return
    impl = get_backend(run.backend)
    if not impl.supports(run.model):
        raise PlaygroundError(f"backend '{run.backend}' cannot run {run.model.id}; use one of: "
                              f"{', '.join(run.model.backends)}")
    model = impl.load(run.model, device=run.device, threads=ctx.cache.cores, n_ctx=ctx.cache.n_ctx,
                      compute_lock=ctx.cache.device_lock(run.device))
    try:
        yield model
    finally:
        model.close()
        del model
        gc.collect()


def _record_model(db: Database, stats: dict[str, Any], run_ids: list[int], results: list[ItemResult],
                  memory: PeakMemory, outcome: LabOutcome) -> None:
    """One lab_model_stats row: load time, memory, and the speed of the answers run in this stage."""
    speeds = [r.tokens_per_s for r in results if r.tokens_per_s is not None]
    firsts = [r.ttft_s for r in results if r.ttft_s is not None]
    row = {**stats, "run_ids": json.dumps(run_ids), "n_items": len(results),
           "rss_before_bytes": memory.before, "peak_rss_bytes": memory.peak,
           "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
           "ttft_s": sum(firsts) / len(firsts) if firsts else None,
           "n_output_tokens": sum(r.n_output_tokens for r in results)}
    lab_store.insert_model_stats(db, row)
    outcome.models.append(row)


def _run_items(ctx: AppContext, db: Database, job: LabJob, run: LabRunSpec, run_id: int, model: Any,
               items: list[TaskItem], cancel: threading.Event | None, meter: _Meter, outcome: LabOutcome,
               results: list[ItemResult]) -> str:
    """One run's pending items, each stored as soon as it is scored. Returns the final status."""
    try:
        for item in items:
            if cancel is not None and cancel.is_set():
                finish_run(db, run_id, "cancelled")
                return "cancelled"
            result = run_item(ctx, model, run, item, job.labels, cancel, job.config.logprob)
            if result is None:
                finish_run(db, run_id, "cancelled")
                return "cancelled"
            store_result(db, run_id, result)
            results.append(result)
            outcome.ran += 1
            meter.done += 1
            meter.report(run.label)
    except KeyboardInterrupt:
        finish_run(db, run_id, "cancelled")
        raise
    except Exception as exc:
        finish_run(db, run_id, "error", f"internal error: {type(exc).__name__}: {exc}")
        raise
    finish_run(db, run_id, "done")
    return "done"
