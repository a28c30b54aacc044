"""Reading a lab back: per-run summaries with intervals, per-item rows, CSVs and the text table.

Accuracy carries a 95% Wilson interval (honest at 0/n and n/n); the mean gold log-probability
carries its standard error. Figures are computed from the stored rows, never stored themselves.
"""
from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from sqlite_utils import Database

from storage import lab as lab_store

if TYPE_CHECKING:
    from playground.lab.config import LabJob

Z_95 = 1.959963984540054


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
    """Per-run figures, aggregated over the run's current items, smallest model first."""
    return [_summary_row(r) for r in lab_store.summary_rows(db, run_ids)]


ITEM_COLUMNS = ("run_id", "model_id", "mode", "item_index", "question", "gold", "extracted", "correct",
                "gold_logprob_mean", "gold_n_tokens", "n_prompt_tokens", "n_output_tokens", "total_s",
                "finish_reason", "error", "prompt", "output")


def load_items(db: Database, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Per-item results of some runs (for the drill-down and the CSV), in run and item order."""
    return lab_store.item_rows(db, run_ids)


def list_runs(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Past runs, newest first, with how many items each has stored."""
    return lab_store.list_runs(db, limit)


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
    found = (lab_store.find_run(db, run.config_key) for run in job.runs)
    return [int(r["id"]) for r in found if r]


def file_stem(name: str) -> str:
    """A safe file-name stem for a run name."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name.strip())
    return cleaned.strip("-.") or "lab"
