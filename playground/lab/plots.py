"""The emergent-abilities figures: a metric against model size (log x), one line per prompting mode.

Built on `matplotlib.figure.Figure` directly (rendered by Agg when saved): no pyplot, so no
global figure state is shared between users or threads.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from playground.lab.reports import SummaryRow, params_label
from playground.palette import series_styles
from playground.stats import Z95

FIGSIZE = (7.0, 4.5)
DPI = 120
XPAD = 2.5    # the x axis spans at least min/XPAD .. max*XPAD, so one model still shows a log scale
DODGE = 0.03   # lines are shifted by this share of a decade so their error bars do not hide each other


def _series_key(row: SummaryRow, many_tasks: bool) -> str:
    return f"{row.mode} · {row.name}" if many_tasks else row.mode


def _series(rows: Sequence[SummaryRow], value: Callable[[SummaryRow], float | None]) -> dict[str, list[SummaryRow]]:
    """Rows with a size and a value, grouped into lines (by mode, and by task name when several)."""
    usable = [r for r in rows if r.n_params and value(r) is not None]
    many_tasks = len({r.name for r in usable}) > 1
    lines: dict[str, list[SummaryRow]] = defaultdict(list)
    for row in usable:
        lines[_series_key(row, many_tasks)].append(row)
    return {k: sorted(v, key=lambda r: r.n_params or 0) for k, v in lines.items()}


def _dodged(xs: Sequence[float], line: int, n_lines: int) -> list[float]:
    """x positions nudged in log space: same-size models under several modes stay readable."""
    factor = 10 ** (DODGE * (line - (n_lines - 1) / 2))
    return [x * factor for x in xs]


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _finish(fig: Figure, ax, rows: Sequence[SummaryRow], plotted: int, title: str, ylabel: str) -> Figure:
    unsized = sorted({r.model_id for r in rows if not r.n_params})
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if plotted:
        ax.set_xscale("log")
        sizes = [r.n_params for r in rows if r.n_params]
        ax.set_xlim(min(sizes) / XPAD, max(sizes) * XPAD)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: params_label(int(round(x)))))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("parameters (log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", loc="best")
    if unsized:
        fig.text(0.01, 0.01, f"not plotted (size unknown): {', '.join(unsized)}", fontsize="x-small", color="grey")
    fig.tight_layout()
    return fig


def plot_accuracy(rows: Sequence[SummaryRow], title: str = "Accuracy vs model size") -> Figure:
    """Accuracy per mode against parameters, with 95% Wilson intervals as error bars."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot()
    lines = _series(rows, lambda r: r.accuracy)
    styles = series_styles(lines)
    for i, (label, series) in enumerate(lines.items()):
        xs = _dodged([r.n_params for r in series], i, len(lines))
        ys = [100 * (r.accuracy or 0.0) for r in series]
        # clamped: at 0% or 100% the Wilson bound equals the estimate up to rounding
        low = [max(0.0, y - 100 * (r.ci_low or 0.0)) for y, r in zip(ys, series, strict=True)]
        high = [max(0.0, 100 * (r.ci_high or 0.0) - y) for y, r in zip(ys, series, strict=True)]
        ax.errorbar(xs, ys, yerr=[low, high], marker=styles[label].marker, capsize=4, label=label,
                    color=styles[label].colour)
    if lines:
        ax.set_ylim(-2, 102)
    else:
        _empty(ax, "no results yet")
    return _finish(fig, ax, rows, len(lines), title, "exact-match accuracy (%), 95% Wilson CI")


def plot_logprob(rows: Sequence[SummaryRow], title: str = "Gold-answer log-likelihood vs model size") -> Figure:
    """Mean per-token log-prob of the gold answer per mode, with ±1.96 standard errors."""
    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    ax = fig.add_subplot()
    lines = _series(rows, lambda r: r.mean_logprob)
    styles = series_styles(lines)
    for i, (label, series) in enumerate(lines.items()):
        xs = _dodged([r.n_params for r in series], i, len(lines))
        ys = [r.mean_logprob for r in series]
        err = [Z95 * (r.logprob_se or 0.0) for r in series]
        ax.errorbar(xs, ys, yerr=err, marker=styles[label].marker, capsize=4, label=label, color=styles[label].colour)
    if not lines:
        _empty(ax, "no log-likelihood scores yet")
    return _finish(fig, ax, rows, len(lines), title, "mean log p(gold token), ±1.96 SE")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write a PNG (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_report(rows: Sequence[SummaryRow], items: Sequence[dict], out_dir: str | Path, stem: str) -> dict[str, Path]:
    """The two PNGs and the two CSVs of a lab, named <stem>-accuracy.png etc.; returns their paths."""
    from playground.lab.reports import ITEM_COLUMNS, SUMMARY_COLUMNS, summary_dicts, write_csv

    out = Path(out_dir)
    return {
        "accuracy_png": save_figure(plot_accuracy(rows), out / f"{stem}-accuracy.png"),
        "logprob_png": save_figure(plot_logprob(rows), out / f"{stem}-logprob.png"),
        "summary_csv": write_csv(summary_dicts(rows), out / f"{stem}-summary.csv", SUMMARY_COLUMNS),
        "items_csv": write_csv(list(items), out / f"{stem}-items.csv", ITEM_COLUMNS),
    }
