"""Judging stored battles with a catalog model, in both orders, through the usual engine.

Each (battle, judge, order) is written in its own transaction as soon as it is judged, and a
run skips what is already stored: a run killed mid-batch loses at most the verdict in flight, and
the next run judges only what is left. The judge sees the pair's input (the latest user turn) and
the two answers; the exact prompt sent and the raw output are stored with the parsed verdict.
When a battle's second order is stored, the pair becomes the judge's vote in the same
transaction (`storage.judge_verdicts.fold_judge_votes`, under the `inconsistent` policy); a run
first folds whatever this judge left unfolded (verdicts stored before votes from judges existed).
One database connection serves the whole run.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from storage import open_database
from storage import write_transaction
from storage.judge_verdicts import (battles_to_judge, fold_judge_votes, judge_identity, judged_orders,
                                    record_judge_verdict)

from playground.context import AppContext
from playground.engine import PaneResult, run_plan
from playground.errors import PlaygroundError
from playground.judge.prompts import JudgePrompt, label_to_side, load_judge_prompts, parse_verdict, UNPARSEABLE
from playground.models.identity import model_identity
from playground.prompting.plan import PromptPlan
from playground.sampling import SamplingParams

ORDERS = ("AB", "BA")
Progress = Callable[[int, int, str], None]


@dataclass
class JudgeRunReport:
    judge: str
    battles: int = 0                 # battles selected
    judged: int = 0                  # orders judged in this run
    skipped_done: int = 0            # orders already stored (resumed)
    unparseable: int = 0
    failed: int = 0                  # orders whose generation failed (not stored; a rerun retries)
    no_reference: int = 0            # battles skipped: the reference prompt has no known answer
    verdicts: dict[str, int] = field(default_factory=dict)
    votes: dict[str, int] = field(default_factory=dict)   # fold_judge_votes counts, summed over the run
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class JudgeInput:
    battle_id: int
    question: str
    left: str
    right: str


def load_references(presets_dir: Path) -> dict[str, str]:
    """Known answers by question text, from the task files (presets/tasks/*.jsonl)."""
    from playground.lab.tasks import load_task_file

    refs: dict[str, str] = {}
    for path in sorted((Path(presets_dir) / "tasks").glob("*.jsonl")):
        try:
            task = load_task_file(path)
        except PlaygroundError:
            continue
        for item in task.items:
            refs.setdefault(item.question.strip(), item.gold)
    return refs


def judge_input(db, battle_id: int) -> JudgeInput:
    """The latest user turn and the two answers of a battle."""
    row = db.execute(
        "SELECT gl.conversation, gl.output, gr.output FROM battles b JOIN generations gl ON gl.id = "
        "b.left_generation_id JOIN generations gr ON gr.id = b.right_generation_id WHERE b.id = ?",
        [battle_id]).fetchone()
    if row is None:
        raise PlaygroundError(f"battle {battle_id} does not exist")
    conversation = json.loads(row[0] or "[]")
    users = [m.get("content", "") for m in conversation if isinstance(m, dict) and m.get("role") == "user"]
    return JudgeInput(battle_id, users[-1] if users else "", row[1] or "", row[2] or "")


def judge_plan(prompt: JudgePrompt, messages: list[dict[str, str]], is_chat: bool) -> PromptPlan:
    """Chat judges get the messages through their template; base judges a plain text frame."""
    if is_chat:
        return PromptPlan(mode="instruction", messages=tuple(messages), text=None, stop=(), preset_id=prompt.id,
                          system=prompt.system_prompt)
    text = "\n\n".join(m["content"] for m in messages) + "\n\nEvaluation:"
    return PromptPlan(mode="instruction", messages=None, text=text, stop=(), preset_id=prompt.id)


def judge_battles(ctx: AppContext, db_path: Path, model_id: str, prompt_id: str = "general", *,
                  battles: str = "unjudged", limit: int | None = None, max_tokens: int | None = None,
                  backend: str | None = None, device: str = "cpu", progress: Progress | None = None,
                  cancel: threading.Event | None = None, inconsistent: str = "tie",
                  battle_ids: Sequence[int] | None = None) -> JudgeRunReport:
    """Judge the selected battles in both orders with catalog model `model_id`; returns counts.

    `battle_ids` judges exactly these battles (the Arena's "judge this battle too") instead of
    the `battles`/`limit` selection; `inconsistent` (tie | drop) is what a pair whose two orders
    disagree becomes as a vote."""
    library = load_judge_prompts(ctx.settings.presets_dir)
    prompt = library.get(prompt_id)
    spec = ctx.catalog.get(model_id)
    backend = backend or spec.backends[0]
    if backend not in spec.backends:
        raise PlaygroundError(f"{spec.id} cannot run on backend '{backend}': use {', '.join(spec.backends)}")
    judge = judge_identity(spec.id, prompt.id)
    report = JudgeRunReport(judge=judge)
    start = time.perf_counter()
    with closing(open_database(db_path)) as db:
        _add_votes(report, fold_judge_votes(db, judge, inconsistent))
        ids = list(battle_ids) if battle_ids is not None else battles_to_judge(db, judge, battles, limit)
        done = judged_orders(db, judge)
        inputs = [judge_input(db, b) for b in ids]
    report.battles = len(ids)
    references = load_references(ctx.settings.presets_dir) if prompt.kind == "reference" else {}
    work: list[tuple[JudgeInput, str, str | None]] = []
    for item in inputs:
        reference = references.get(item.question.strip()) if prompt.kind == "reference" else None
        if prompt.kind == "reference" and not reference:
            report.no_reference += 1
            continue
        for order in ORDERS:
            if (item.battle_id, order) in done:
                report.skipped_done += 1
            else:
                work.append((item, order, reference))
    if not work:
        report.elapsed_s = time.perf_counter() - start
        return report
    sampling = SamplingParams(temperature=0.0, seed=0,
                              max_new_tokens=min(max_tokens or prompt.max_tokens, prompt.max_tokens))
    spec = ctx.ensure_local(spec)
    device, _warning = ctx.resolve_device(device, backend)
    identity = model_identity(spec)
    is_chat = bool(spec.is_chat)
    with ctx.cache.use(spec, backend, device) as model, closing(open_database(db_path)) as db:
        for n, (item, order, reference) in enumerate(work, 1):
            if cancel is not None and cancel.is_set():
                break
            a, b = (item.left, item.right) if order == "AB" else (item.right, item.left)
            plan = judge_plan(prompt, prompt.messages(item.question, a, b, reference), is_chat)
            result = PaneResult()
            for result in run_plan(model, plan, sampling, cancel):
                pass
            if result.finish_reason in ("error", "cancelled") or result.error:
                report.failed += 1
                continue
            label = parse_verdict(result.answer_text, prompt.allow_both_bad)
            verdict = label_to_side(label, order)
            with write_transaction(db):   # the verdict and, once both orders are in, the vote: together
                stored = record_judge_verdict(
                    db, battle_id=item.battle_id, judge=judge, judge_model=spec.id, prompt_id=prompt.id,
                    order=order, judge_prompt=result.exact_prompt, raw_output=result.answer_text,
                    label=None if label == UNPARSEABLE else label, verdict=verdict, judge_model_identity=identity,
                    finish_reason=result.finish_reason, sampling=result.sampling_used or sampling.to_dict(),
                    total_s=result.total_s)
                if stored is not None:
                    _add_votes(report, fold_judge_votes(db, judge, inconsistent, [item.battle_id]))
            if stored is None:
                report.skipped_done += 1
            else:
                report.judged += 1
                report.unparseable += verdict == UNPARSEABLE
                report.verdicts[verdict] = report.verdicts.get(verdict, 0) + 1
            if progress:
                progress(n, len(work), f"battle {item.battle_id} {order}: {verdict}")
    report.elapsed_s = time.perf_counter() - start
    return report


def _add_votes(report: JudgeRunReport, counts: dict[str, int]) -> None:
    for key, n in counts.items():
        report.votes[key] = report.votes.get(key, 0) + n
