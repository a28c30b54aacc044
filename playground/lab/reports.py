"""Reading a lab back: per-run summaries with intervals, per-item rows, CSVs and the text table.

Accuracy carries a 95% Wilson interval (honest at 0/n and n/n); the mean gold log-probability
carries its standard error. Figures are computed from the stored rows, never stored themselves.
"""
from __future__ import annotations

import csv
import math
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlite_utils import Database

from playground.lab import metrics
from playground.stats import Z95, wilson_interval
from storage import lab as lab_store

if TYPE_CHECKING:
    from playground.lab.config import LabJob

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
    # lm-evaluation-harness's GSM8K columns (items with a number for gold; see playground/lab/gsm8k.py)
    strict_accuracy: float | None = None
    flexible_accuracy: float | None = None
    # self-consistency: majority over the k sampled paths (the harness's maj@k)
    maj_k: int | None = None
    maj_accuracy: float | None = None
    # multiple choice by option log-likelihood (the harness's acc and acc_norm)
    choice_accuracy: float | None = None
    choice_accuracy_norm: float | None = None
    shots: int | None = None
    samples: int | None = None
    is_chat: bool | None = None
    architecture: str | None = None
    ttft_s: float | None = None            # mean time to first token over the items
    tokens_per_s: float | None = None      # mean decode speed over the items

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_and_se(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample standard deviation over sqrt(n)); SE needs n >= 2."""
    if not values:
        return None, None
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, None
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def _summary_row(run: dict[str, Any], items: Sequence[dict[str, Any]]) -> SummaryRow:
    n, k = len(items), sum(int(i["correct"] or 0) for i in items)
    low, high = wilson_interval(k, n) if n else (None, None)
    lp_mean, se = mean_and_se([i["gold_logprob_mean"] for i in items if i["gold_logprob_mean"] is not None])
    scored = [{**i, **metrics.item_scores(i)} for i in items]
    maj = [i["maj_k"] for i in scored if i["maj_k"]]
    return SummaryRow(run_id=run["id"], name=run["name"] or "", task_file=run["task_file"], model_id=run["model_id"],
                      n_params=run["model_n_params"], mode=run["mode"], preset=run["preset"],
                      backend=run["backend"] or "", status=run["status"], n=n, n_correct=k,
                      n_errors=sum(1 for i in items if i["error"] is not None),
                      accuracy=k / n if n else None, ci_low=low, ci_high=high, mean_logprob=lp_mean,
                      logprob_se=se, items_per_s=run["items_per_s"],
                      strict_accuracy=metrics.share(scored, "strict_correct")[2],
                      flexible_accuracy=metrics.share(scored, "flexible_correct")[2],
                      maj_k=max(maj) if maj else None, maj_accuracy=metrics.share(scored, "maj_correct")[2],
                      choice_accuracy=metrics.share(scored, "choice_correct")[2],
                      choice_accuracy_norm=metrics.share(scored, "choice_correct_norm")[2],
                      shots=run.get("shots"), samples=run.get("samples"),
                      is_chat=None if run.get("model_is_chat") is None else bool(run["model_is_chat"]),
                      architecture=run.get("model_architecture"),
                      ttft_s=_mean(i.get("ttft_s") for i in items), tokens_per_s=_mean(i.get("tokens_per_s") for i in items))


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def summarize(db: Database, run_ids: Iterable[int]) -> list[SummaryRow]:
    """Per-run figures over each run's items (its view: see storage/lab.py), smallest model first."""
    runs = lab_store.runs_by_id(db, run_ids)
    by_run: dict[int, list[dict[str, Any]]] = {r["id"]: [] for r in runs}
    for item in lab_store.view_items(db, by_run):
        by_run[item["run_id"]].append(item)
    return [_summary_row(run, by_run[run["id"]]) for run in runs]


DERIVED_COLUMNS = ("strict_extracted", "strict_correct", "flexible_extracted", "flexible_correct", "maj_k",
                   "maj_answer", "maj_correct", "maj_votes", "choice_pick", "choice_correct", "choice_pick_norm",
                   "choice_correct_norm")
ITEM_COLUMNS = (*lab_store.ITEM_FIELDS[:8], *DERIVED_COLUMNS, *lab_store.ITEM_FIELDS[8:], "ttft_s", "tokens_per_s",
                "samples", "option_logprobs")


def load_items(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-item results of some runs (for the drill-down and the CSV), in run and item order."""
    rows = lab_store.view_items(db, run_ids)
    return [{c: {**r, **metrics.item_scores(r)}.get(c) for c in ITEM_COLUMNS} for r in rows]


def list_runs(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Past runs, newest first, with how many items each has stored."""
    return lab_store.list_runs(db, limit)


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Rows as CSV (UTF-8, header first); the columns of the first row unless given. Written to a
    temporary name and renamed: a reader (two people showing the same runs) never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = list(columns or (rows[0].keys() if rows else []))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def summary_dicts(rows: Sequence[SummaryRow]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in rows]


SUMMARY_COLUMNS = tuple(SummaryRow.__dataclass_fields__)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


OPTIONAL_COLUMNS = (("STRICT", "strict_accuracy"), ("FLEXIBLE", "flexible_accuracy"), ("MAJ@K", "maj_accuracy"),
                    ("MC ACC", "choice_accuracy"), ("MC ACC_NORM", "choice_accuracy_norm"))


def format_summary(rows: Sequence[SummaryRow]) -> str:
    """Aligned text table for the terminal; the harness's columns appear when some run has them."""
    extra = [(title, name) for title, name in OPTIONAL_COLUMNS if any(getattr(r, name) is not None for r in rows)]
    header = ["MODEL", "PARAMS", "MODE", "N", "ACCURACY", "95% CI", *(t for t, _ in extra), "GOLD LOGPROB",
              "ITEMS/S", "STATUS"]
    table = [header]
    for r in rows:
        ci = "-" if r.ci_low is None else f"{100 * r.ci_low:.0f}..{100 * r.ci_high:.0f}%"
        lp = "-" if r.mean_logprob is None else f"{r.mean_logprob:.3f}" + (
            f" ±{Z95 * r.logprob_se:.3f}" if r.logprob_se is not None else "")
        speed = "-" if r.items_per_s is None else f"{r.items_per_s:.2f}"
        errors = f" ({r.n_errors} err)" if r.n_errors else ""
        optional = [_pct(getattr(r, name)) + (f" (k={r.maj_k})" if name == "maj_accuracy" and r.maj_k else "")
                    for _, name in extra]
        table.append([r.model_id, params_label(r.n_params), r.mode, f"{r.n}{errors}", _pct(r.accuracy), ci,
                      *optional, lp, speed, r.status])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)


def params_label(n: int | None) -> str:
    if not n:
        return "?"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def run_ids_for(db: Database, job: LabJob) -> list[int]:
    """The stored runs of a job's (model, mode) pairs, in job order (some may not exist yet)."""
    found = (lab_store.find_run(db, run.config_key) for run in job.runs)
    return [int(r["id"]) for r in found if r]


def file_stem(name: str) -> str:
    """A safe file-name stem for a run name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return cleaned.strip("-.") or "lab"
