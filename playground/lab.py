"""Emergence lab: batch evaluation of models x prompting modes over a task file, stored in SQLite.

Every (model, mode) pair is one run (`lab_runs`); every item it answers is one row of
`lab_results`, written in its own short transaction as soon as it is scored, so a crash or a
cancel loses at most the item in flight. A run is identified by a key over everything that
changes its answers (task file content hash, model, backend, device, mode, prompting preset,
shots, samples, sampling incl. seed and max tokens, scoring): running the same configuration
again resumes it and only the items without a successful result are run.

Prompts are built by `compare.plan_for` and run by `engine.run_plan`, exactly as in the UI; the
only change is the plan's `answer_kind`, set to the item's (number / yes_no / choice / text) so
the answer is extracted the way it is scored. The prompt text is untouched.

Two metrics per item:

- exact match: the extracted final answer against the gold one (`answers_match`: numbers by
  value, yes/no and text case-insensitively, choices by letter). An item that failed with an
  error counts as wrong (n includes it); errored items are retried on resume.
- gold log-likelihood: the mean per-token log-probability of the gold answer given the prompt,
  `model.continuation_logprob(scoring_prompt, continuation)`. It moves smoothly with scale while
  accuracy can jump (Schaeffer et al. 2023: emergence is partly the metric). The scoring prompt
  is the exact prompt the model saw, followed by the mode's answer prefix:

  - zero_shot, instruction: nothing (the answer would come right away);
  - few_shot, few_shot_cot, self_consistency: "The answer is" (their exemplars end that way;
    self-consistency uses its few-shot CoT prompt, which is its exact prompt);
  - zero_shot_cot: the preset's answer trigger ("Therefore, the answer (arabic numerals) is"),
    or "The answer is" when it has none.

  The reasoning the model wrote is NOT inserted: the score is about the prompt, identical for
  every model, so models are compared on the same conditional. The continuation is " " + gold;
  when the scoring prompt ends in whitespace (a chat template's "assistant\\n") the space is
  dropped and a word answer is capitalised, as a reply would start. Multiple choice scores "(B)".
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sqlite_utils import Database

from playground.compare import PaneSpec, plan_for
from playground.context import AppContext
from playground.engine import PaneResult, run_plan
from playground.errors import PlaygroundError, UnknownModelError
from playground.lab_tasks import (
    TaskItem, TaskSet, check_family, infer_family, load_task_file, score_answer,
)
from playground.models.spec import ModelSpec
from playground.prompting.plan import MODES, PromptPlan
from playground.prompting.presets import PromptPreset
from storage.db import open_database, write_transaction

DEFAULT_MODES: tuple[str, ...] = ("zero_shot", "few_shot_cot")
DEFAULT_SAMPLING_PRESET = "deterministic"
ANSWER_PREFIX = "The answer is"
PREFIX_MODES = ("few_shot", "few_shot_cot", "self_consistency", "zero_shot_cot")
STATUSES = ("running", "done", "cancelled", "error")
Z_95 = 1.959963984540054


# ---------------------------------------------------------------- configuration

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
        return f"{self.model.id} · {self.mode}"


@dataclass(frozen=True)
class LabJob:
    """A validated lab: the items to run and every (model, mode) run, ready to go."""

    config: LabConfig
    tasks: TaskSet
    items: tuple[TaskItem, ...]
    family: str
    runs: tuple[LabRunSpec, ...]
    name: str

    @property
    def labels(self) -> tuple[str, ...]:
        return self.tasks.labels


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
            pane = PaneSpec(model_id=spec.id, mode=mode, backend=backend, device=device, preset_id=preset.id,
                            shots=config.shots if mode in ("few_shot", "few_shot_cot", "self_consistency") else None,
                            samples=config.samples if mode == "self_consistency" else None, sampling=sampling)
            key = config_key({"task_hash": tasks.sha256, "model": spec.id, "model_size": spec.file_size,
                              "backend": backend, "device": device, "mode": mode, "preset": preset.id,
                              "shots": pane.shots, "samples": pane.samples, "sampling": sampling.to_dict(),
                              "family": family, "logprob": config.logprob})
            runs.append(LabRunSpec(model=spec, backend=backend, device=device, mode=mode, preset=preset,
                                   pane=pane, config_key=key))
    for run in runs:   # a bad shots/samples value must fail now, not after the first model ran
        plan_for(ctx, run.pane, items[0].question, (), chat=bool(run.model.is_chat))
    name = config.run_name or tasks.name
    return LabJob(config=config, tasks=tasks, items=items, family=family, runs=tuple(runs), name=name)


# ---------------------------------------------------------------- scoring

def answer_prefix(plan: PromptPlan) -> str:
    """The text that precedes the gold answer when scoring its log-likelihood (module docstring)."""
    if plan.mode == "zero_shot_cot":
        return plan.followup or ANSWER_PREFIX
    return ANSWER_PREFIX if plan.mode in PREFIX_MODES else ""


def scoring_prompt(exact: str, plan: PromptPlan) -> str:
    """The exact prompt plus the mode's answer prefix, joined by a space unless the prompt ends in one."""
    prefix = answer_prefix(plan)
    if not prefix:
        return exact
    return exact + prefix if not exact or exact[-1].isspace() else f"{exact} {prefix}"


def scoring_continuation(prompt: str, item: TaskItem) -> str:
    """' ' + gold after text; at the start of a reply no space and a capital letter."""
    gold = f"({item.gold})" if item.answer_kind == "choice" else item.gold
    if prompt and prompt[-1].isspace():
        return gold[:1].upper() + gold[1:] if gold[:1].isalpha() else gold
    return " " + gold


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


def gold_logprob(model: Any, prompt: str, item: TaskItem) -> tuple[float | None, int | None]:
    """(mean per-token log-prob of the gold answer, its token count); None when it cannot be scored."""
    continuation = scoring_continuation(prompt, item)
    try:
        total, n = model.continuation_logprob(prompt, continuation)
    except (PlaygroundError, NotImplementedError):
        return None, None
    return (total / n if n else None), n


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
    return ItemResult(item.index, item.question, item.gold, result.exact_prompt, result.answer_text, extracted,
                      int(correct), mean, n_gold, result.n_prompt_tokens, result.n_output_tokens,
                      time.perf_counter() - start, result.finish_reason)


# ---------------------------------------------------------------- storage

def _now() -> tuple[str, float]:
    now = time.time()
    return datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds"), now


def find_run(db: Database, key: str) -> dict[str, Any] | None:
    """The latest run with this configuration key, if any (the one a re-run resumes)."""
    rows = list(db.query("SELECT * FROM lab_runs WHERE config_key = ? ORDER BY id DESC LIMIT 1", [key]))
    return rows[0] if rows else None


def finished_indices(db: Database, run_id: int) -> set[int]:
    """Items with a stored, error-free result: skipped on resume."""
    return {r["item_index"] for r in db.query(
        "SELECT item_index FROM lab_results WHERE run_id = ? AND error IS NULL", [run_id])}


def start_run(db: Database, job: LabJob, run: LabRunSpec) -> int:
    """Create the run row, or reopen the existing one with the same key; status becomes running."""
    existing = find_run(db, run.config_key)
    created_at, tstamp = _now()
    with write_transaction(db):
        if existing:
            db["lab_runs"].update(existing["id"], {"status": "running", "n_items": len(job.items),
                                                   "name": job.name, "task_file": str(job.tasks.path),
                                                   "error": None})
            return int(existing["id"])
        row = {
            "created_at": created_at, "tstamp": tstamp, "name": job.name, "task_file": str(job.tasks.path),
            "task_hash": job.tasks.sha256, "n_items": len(job.items), "model_id": run.model.id,
            "model_n_params": run.model.n_params, "backend": run.backend, "device": run.device,
            "mode": run.mode, "preset": run.preset.id, "family": job.family, "shots": run.pane.shots,
            "samples": run.pane.samples, "sampling": json.dumps(run.pane.sampling.to_dict()),
            "seed": run.pane.sampling.seed, "status": "running", "items_per_s": None,
            "config_key": run.config_key,
        }
        return int(db["lab_runs"].insert(row).last_pk)


def store_result(db: Database, run_id: int, result: ItemResult) -> None:
    """One item, one short transaction; a re-run of an errored item replaces its row."""
    created_at, tstamp = _now()
    row = {"run_id": run_id, **asdict(result), "created_at": created_at, "tstamp": tstamp}
    with write_transaction(db):
        db["lab_results"].insert(row, replace=True)


def finish_run(db: Database, run_id: int, status: str, error: str | None = None) -> None:
    """Final status and items/s (items over their summed wall time: stable across resumes)."""
    stats = next(db.query("SELECT COUNT(*) AS n, SUM(total_s) AS s FROM lab_results WHERE run_id = ? "
                          "AND error IS NULL", [run_id]))
    speed = stats["n"] / stats["s"] if stats["n"] and stats["s"] else None
    with write_transaction(db):
        db["lab_runs"].update(run_id, {"status": status, "items_per_s": speed, "error": error})


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
        existing = find_run(db, run.config_key)
        done = finished_indices(db, existing["id"]) if existing else set()
        pending[run.config_key] = [i for i in job.items if i.index not in done]
    return pending


def run_lab(ctx: AppContext, job: LabJob, db_path: str | Path | None = None,
            cancel: threading.Event | None = None,
            on_progress: Callable[[LabProgress], None] | None = None) -> LabOutcome:
    """Run every (model, mode) of the job, resuming stored items; stops early when `cancel` is set.

    Models are taken one at a time from `ctx.cache` (loaded once, shared with the UI). A
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
    """All runs of one model under one borrowed (cached) model."""
    first = group[0]
    if not any(pending[r.config_key] for r in group):   # all stored already: no need to load the model
        for run in group:
            run_id = start_run(db, job, run)
            finish_run(db, run_id, "done")
            outcome.run_ids.append(run_id)
        return
    with ExitStack() as stack:
        try:
            model = stack.enter_context(ctx.cache.use(first.model, first.backend, first.device))
        except PlaygroundError as exc:   # the model cannot be loaded: its runs fail, the others go on
            outcome.errors.append(f"{first.model.id}: {exc}")
            outcome.run_ids.extend(error_run(db, job, run, str(exc)) for run in group)
            return
        for run in group:
            run_id = start_run(db, job, run)
            outcome.run_ids.append(run_id)
            status = _run_items(ctx, db, job, run, run_id, model, pending[run.config_key], cancel, meter, outcome)
            if status == "cancelled":
                outcome.cancelled = True
                return


def _run_items(ctx: AppContext, db: Database, job: LabJob, run: LabRunSpec, run_id: int, model: Any,
               items: list[TaskItem], cancel: threading.Event | None, meter: _Meter, outcome: LabOutcome) -> str:
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


# ---------------------------------------------------------------- results

def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a proportion: honest at 0/n and n/n, unlike the normal one."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SummaryRow:
    """One run's figures: accuracy with its 95% Wilson CI, and the mean gold log-prob with its SE."""

    run_id: int
    name: str
    task_file: str
    model_id: str
    n_params: int | None
    mode: str
    preset: str | None
    backend: str
    status: str
    n: int
    n_correct: int
    n_errors: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    mean_logprob: float | None
    logprob_se: float | None
    items_per_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_SUMMARY_SQL = """
SELECT r.id AS run_id, r.name, r.task_file, r.model_id, r.model_n_params, r.mode, r.preset, r.backend,
       r.status, r.items_per_s,
       COUNT(x.id) AS n, COALESCE(SUM(x.correct), 0) AS n_correct,
       COALESCE(SUM(x.error IS NOT NULL), 0) AS n_errors,
       COUNT(x.gold_logprob_mean) AS n_lp, AVG(x.gold_logprob_mean) AS lp_mean,
       AVG(x.gold_logprob_mean * x.gold_logprob_mean) AS lp_sq
FROM lab_runs r LEFT JOIN lab_results x ON x.run_id = r.id AND x.item_index < r.n_items
WHERE r.id IN ({marks})
GROUP BY r.id ORDER BY r.model_n_params, r.model_id, r.id
"""


def _summary_row(r: dict[str, Any]) -> SummaryRow:
    n, k = int(r["n"]), int(r["n_correct"])
    low, high = wilson_interval(k, n) if n else (None, None)
    se = None
    if r["n_lp"] and r["n_lp"] > 1 and r["lp_mean"] is not None:
        variance = max(0.0, r["lp_sq"] - r["lp_mean"] ** 2) * r["n_lp"] / (r["n_lp"] - 1)
        se = math.sqrt(variance / r["n_lp"])
    return SummaryRow(run_id=r["run_id"], name=r["name"] or "", task_file=r["task_file"], model_id=r["model_id"],
                      n_params=r["model_n_params"], mode=r["mode"], preset=r["preset"], backend=r["backend"] or "",
                      status=r["status"], n=n, n_correct=k, n_errors=int(r["n_errors"]),
                      accuracy=k / n if n else None, ci_low=low, ci_high=high, mean_logprob=r["lp_mean"],
                      logprob_se=se, items_per_s=r["items_per_s"])


def summarize(db: Database, run_ids: Iterable[int]) -> list[SummaryRow]:
    """Per-run figures, aggregated in SQL over the run's current items, smallest model first."""
    ids = [int(i) for i in dict.fromkeys(run_ids)]
    if not ids:
        return []
    sql = _SUMMARY_SQL.format(marks=", ".join("?" * len(ids)))
    return [_summary_row(r) for r in db.query(sql, ids)]


ITEM_COLUMNS = ("run_id", "model_id", "mode", "item_index", "question", "gold", "extracted", "correct",
                "gold_logprob_mean", "gold_n_tokens", "n_prompt_tokens", "n_output_tokens", "total_s",
                "finish_reason", "error", "prompt", "output")


def load_items(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-item results of some runs (for the drill-down and the CSV), in run and item order."""
    ids = [int(i) for i in dict.fromkeys(run_ids)]
    if not ids:
        return []
    sql = (f"SELECT x.run_id, r.model_id, r.mode, x.item_index, x.question, x.gold, x.extracted, x.correct, "
           f"x.gold_logprob_mean, x.gold_n_tokens, x.n_prompt_tokens, x.n_output_tokens, x.total_s, "
           f"x.finish_reason, x.error, x.prompt, x.output FROM lab_results x JOIN lab_runs r ON r.id = x.run_id "
           f"WHERE x.run_id IN ({', '.join('?' * len(ids))}) AND x.item_index < r.n_items "
           f"ORDER BY x.run_id, x.item_index")
    return list(db.query(sql, ids))


def list_runs(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Past runs, newest first, with how many items each has stored."""
    sql = ("SELECT r.id, r.created_at, r.name, r.task_file, r.model_id, r.mode, r.status, r.n_items, "
           "COUNT(x.id) AS n_done, AVG(x.correct) AS accuracy, r.items_per_s "
           "FROM lab_runs r LEFT JOIN lab_results x ON x.run_id = r.id AND x.item_index < r.n_items "
           "GROUP BY r.id ORDER BY r.id DESC LIMIT ?")
    return list(db.query(sql, [int(limit)]))


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Rows as CSV (UTF-8, header first); the columns of the first row unless given."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = list(columns or (rows[0].keys() if rows else []))
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def summary_dicts(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in rows]


SUMMARY_COLUMNS = tuple(SummaryRow.__dataclass_fields__)


def format_summary(rows: Sequence[SummaryRow]) -> str:
    """Aligned text table for the terminal."""
    header = ["MODEL", "PARAMS", "MODE", "N", "ACCURACY", "95% CI", "GOLD LOGPROB", "ITEMS/S", "STATUS"]
    table = [header]
    for r in rows:
        acc = "-" if r.accuracy is None else f"{100 * r.accuracy:.1f}%"
        ci = "-" if r.ci_low is None else f"{100 * r.ci_low:.0f}..{100 * r.ci_high:.0f}%"
        lp = "-" if r.mean_logprob is None else f"{r.mean_logprob:.3f}" + (
            f" ±{Z_95 * r.logprob_se:.3f}" if r.logprob_se is not None else "")
        speed = "-" if r.items_per_s is None else f"{r.items_per_s:.2f}"
        errors = f" ({r.n_errors} err)" if r.n_errors else ""
        table.append([r.model_id, params_label(r.n_params), r.mode, f"{r.n}{errors}", acc, ci, lp, speed, r.status])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)


def params_label(n: int | None) -> str:
    if not n:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def run_ids_for(db: Database, job: LabJob) -> list[int]:
    """The stored runs of a job's (model, mode) pairs, in job order (some may not exist yet)."""
    found = (find_run(db, run.config_key) for run in job.runs)
    return [int(r["id"]) for r in found if r]


def file_stem(name: str) -> str:
    """A safe file-name stem for a run name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return cleaned.strip("-.") or "lab"
