"""The research figures, drawn from run summaries: the curves the papers drew.

- `plot_emergence`: exact match and gold log-probability against model size on one shared log x
  axis, one line per mode, 95% Wilson and ±1.96 SE intervals: "flat then jump" next to "smooth"
  (Wei et al. 2022, Schaeffer et al. 2023).
- `plot_icl_curve`: accuracy and gold log-probability against the number of exemplars k, one
  line per model and mode (GPT-3, Brown et al. 2020, figures 1.2 and 3.x).
- `plot_cot_gain`: CoT accuracy minus direct accuracy per model against size, with a 95%
  Newcombe interval for the difference (Wei et al. 2022: CoT helps only at scale).
- `plot_base_vs_instruct`: base and instruct models of the same architecture and size side by side,
  each prompted in its own frame (plain "Q:/A:" text for base, the chat template for instruct).

The plotted accuracy is `accuracy`, the app's own extractor (last number, yes/no, letter); the
harness's strict and flexible GSM8K columns are in the summary beside it. Every figure says so.
Built on `matplotlib.figure.Figure` (no pyplot state shared between users).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from playground.lab.plots import DODGE, DPI, XPAD, save_figure
from playground.lab.reports import SummaryRow, params_label
from playground.palette import SeriesStyle, colour, series_styles
from playground.stats import Z95, wilson_interval

ACCURACY_NOTE = "exact match by the app's extractor (harness strict/flexible: see the summary)"
DIRECT_FOR = {"few_shot_cot": ("few_shot", "zero_shot"), "zero_shot_cot": ("zero_shot",),
              "self_consistency": ("few_shot", "zero_shot")}


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _size_axis(ax, sizes: Sequence[int]) -> None:
    ax.set_xscale("log")
    ax.set_xlim(min(sizes) / XPAD, max(sizes) * XPAD)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: params_label(int(round(x)))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.grid(True, which="both", alpha=0.3)


def _dodge(x: float, line: int, n_lines: int, log: bool = True) -> float:
    offset = DODGE * (line - (n_lines - 1) / 2)
    return x * 10 ** offset if log else x + offset * 4


def _acc_err(rows: Sequence[SummaryRow]) -> tuple[list[float], list[list[float]]]:
    ys = [100 * (r.accuracy or 0.0) for r in rows]
    low = [max(0.0, y - 100 * (r.ci_low or 0.0)) for y, r in zip(ys, rows, strict=True)]
    high = [max(0.0, 100 * (r.ci_high or 0.0) - y) for y, r in zip(ys, rows, strict=True)]
    return ys, [low, high]


def _draw_series(top, bottom, xs: Sequence[float], series: Sequence[SummaryRow], label: str,
                 style: SeriesStyle) -> None:
    """One line on both panels: accuracy with its Wilson interval above, gold log-prob ±1.96 SE below."""
    ys, err = _acc_err(series)
    top.errorbar(xs, ys, yerr=err, marker=style.marker, capsize=4, label=label, color=style.colour)
    scored = [(x, r) for x, r in zip(xs, series, strict=True) if r.mean_logprob is not None]
    if scored:
        bottom.errorbar([x for x, _ in scored], [r.mean_logprob for _, r in scored],
                        yerr=[Z95 * (r.logprob_se or 0.0) for _, r in scored], marker=style.marker, capsize=4,
                        label=label, color=style.colour)


def _finish_two_panels(fig: Figure, top, bottom, xlabel: str, title: str) -> Figure:
    """The accuracy / log-prob figure's shared labels, legend, note and layout."""
    top.set_ylim(-2, 102)
    top.set_ylabel("exact match (%), 95% Wilson")
    top.legend(fontsize="small", loc="best")
    bottom.set_ylabel("mean log p(gold), ±1.96 SE")
    bottom.set_xlabel(xlabel)
    fig.suptitle(title)
    fig.text(0.01, 0.005, ACCURACY_NOTE, fontsize="x-small", color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


def _mode_label(row: SummaryRow, shots_vary: bool) -> str:
    return f"{row.mode} k={row.shots}" if shots_vary and row.shots is not None else row.mode


# ---------------------------------------------------------------- emergence

def plot_emergence(rows: Sequence[SummaryRow], title: str = "Emergence: exact match and gold log-prob vs size") -> Figure:
    """Two panels over one log size axis: accuracy (Wilson 95%) above, gold log-prob (±1.96 SE) below."""
    fig = Figure(figsize=(7.0, 7.0), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True)
    sized = [r for r in rows if r.n_params and r.accuracy is not None]
    shots_vary = len({(r.mode, r.shots) for r in sized}) > len({r.mode for r in sized})
    lines: dict[str, list[SummaryRow]] = defaultdict(list)
    for r in sized:
        lines[_mode_label(r, shots_vary)].append(r)
    if not lines:
        _empty(top, "no sized results yet")
        bottom.set_visible(False)
        fig.suptitle(title)
        return fig
    styles = series_styles(lines)
    for i, (label, series) in enumerate(sorted(lines.items())):
        series.sort(key=lambda r: r.n_params or 0)
        xs = [_dodge(r.n_params, i, len(lines)) for r in series]
        _draw_series(top, bottom, xs, series, label, styles[label])
    _size_axis(top, [r.n_params for r in sized])
    _size_axis(bottom, [r.n_params for r in sized])
    return _finish_two_panels(fig, top, bottom, "parameters (log scale)", title)


# ---------------------------------------------------------------- in-context learning

def plot_icl_curve(rows: Sequence[SummaryRow], title: str = "In-context learning: score vs exemplars k") -> Figure:
    """Accuracy and gold log-prob against k for each (model, few-shot mode) with at least two k values."""
    fig = Figure(figsize=(7.0, 7.0), dpi=DPI)
    top, bottom = fig.subplots(2, 1, sharex=True)
    lines: dict[str, list[SummaryRow]] = defaultdict(list)
    for r in rows:
        if r.shots is not None and r.accuracy is not None:
            lines[f"{r.mode} · {r.model_id}"].append(r)     # mode first: it takes the mode's colour
    lines = {k: sorted(v, key=lambda r: r.shots or 0) for k, v in lines.items() if len({r.shots for r in v}) > 1}
    if not lines:
        _empty(top, "needs a few-shot mode run at two or more k (e.g. k = 0,1,2,4,8)")
        bottom.set_visible(False)
        fig.suptitle(title)
        return fig
    ks = sorted({r.shots for v in lines.values() for r in v})
    position = {k: i for i, k in enumerate(ks)}   # even spacing: 0,1,2,4,8 read as a doubling ladder
    styles = series_styles(lines)
    for i, (label, series) in enumerate(sorted(lines.items())):
        xs = [_dodge(position[r.shots], i, len(lines), log=False) for r in series]
        _draw_series(top, bottom, xs, series, label, styles[label])
    for ax in (top, bottom):
        ax.set_xticks(range(len(ks)), [str(k) for k in ks])
        ax.grid(True, alpha=0.3)
    return _finish_two_panels(fig, top, bottom, "exemplars in the prompt (k)", title)


# ---------------------------------------------------------------- does CoT help

def newcombe_difference(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float, float]:
    """p1 - p2 with Newcombe's 95% hybrid score interval (method 10), built from the two Wilson
    intervals: unlike the Wald interval it stays inside [-1, 1] and is honest at 0/n."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson_interval(k1, n1)
    l2, u2 = wilson_interval(k2, n2)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def cot_gains(rows: Sequence[SummaryRow]) -> list[dict]:
    """Per model: each CoT mode minus its direct counterpart (same model, task and k when both have one)."""
    out = []
    by_model: dict[tuple[str, str], list[SummaryRow]] = defaultdict(list)
    for r in rows:
        if r.n:
            by_model[(r.model_id, r.name)].append(r)
    for (model, name), group in by_model.items():
        for cot in (r for r in group if r.mode in DIRECT_FOR):
            direct = next((d for mode in DIRECT_FOR[cot.mode] for d in group
                           if d.mode == mode and (d.shots is None or d.shots == cot.shots)), None)
            if direct is None:
                continue
            d, low, high = newcombe_difference(cot.n_correct, cot.n, direct.n_correct, direct.n)
            out.append({"model_id": model, "name": name, "n_params": cot.n_params, "pair": f"{cot.mode}{'' if cot.shots is None else f' k={cot.shots}'} − {direct.mode}",
                        "cot_accuracy": cot.accuracy, "direct_accuracy": direct.accuracy, "difference": d,
                        "ci_low": low, "ci_high": high, "n": min(cot.n, direct.n)})
    return out


def plot_cot_gain(rows: Sequence[SummaryRow], title: str = "Does CoT help? CoT minus direct accuracy vs size") -> Figure:
    fig = Figure(figsize=(7.0, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    gains = [g for g in cot_gains(rows) if g["n_params"]]
    if not gains:
        _empty(ax, "needs a CoT mode and its direct counterpart for the same model\n"
                   "(few_shot_cot with few_shot or zero_shot; zero_shot_cot with zero_shot)")
        fig.suptitle(title)
        return fig
    pairs = sorted({g["pair"] for g in gains})
    styles = series_styles(pairs)
    for i, pair in enumerate(pairs):
        series = sorted((g for g in gains if g["pair"] == pair), key=lambda g: g["n_params"])
        xs = [_dodge(g["n_params"], i, len(pairs)) for g in series]
        ys = [100 * g["difference"] for g in series]
        err = [[y - 100 * g["ci_low"] for y, g in zip(ys, series, strict=True)], [100 * g["ci_high"] - y for y, g in zip(ys, series, strict=True)]]
        ax.errorbar(xs, ys, yerr=err, marker=styles[pair].marker, capsize=4, label=pair, color=styles[pair].colour)
    ax.axhline(0, color="grey", linewidth=1)
    _size_axis(ax, [g["n_params"] for g in gains])
    ax.set_ylim(-102, 102)
    ax.set_ylabel("CoT − direct (points), 95% Newcombe")     # short enough for the axis height
    ax.set_xlabel("parameters (log scale)")
    ax.legend(fontsize="small", loc="best")
    fig.suptitle(title)
    fig.text(0.01, 0.005, ACCURACY_NOTE, fontsize="x-small", color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


# ---------------------------------------------------------------- base vs instruct

def base_instruct_pairs(rows: Sequence[SummaryRow]) -> list[tuple[SummaryRow, SummaryRow]]:
    """(base, instruct) runs of the same task, mode, k, architecture and parameter count: the same
    family before and after instruction tuning, matched on metadata read from the files."""
    pairs = []
    for base in (r for r in rows if r.is_chat is False and r.n_params):
        for inst in rows:
            if inst.is_chat and (inst.n_params, inst.architecture, inst.mode, inst.shots, inst.name) == (
                    base.n_params, base.architecture, base.mode, base.shots, base.name):
                pairs.append((base, inst))
    return pairs


def plot_base_vs_instruct(rows: Sequence[SummaryRow], title: str = "Base vs instruct (same size and architecture)") -> Figure:
    fig = Figure(figsize=(7.0, 4.5), dpi=DPI)
    ax = fig.add_subplot()
    pairs = base_instruct_pairs(rows)
    if not pairs:
        _empty(ax, "needs a base and an instruct model of the same architecture and size\n"
                   "(e.g. SmolLM2-135M and SmolLM2-135M-Instruct from presets/hub_models.yaml)")
        fig.suptitle(title)
        return fig
    pairs.sort(key=lambda p: (p[0].n_params or 0, p[0].mode))
    labels = [f"{params_label(b.n_params)} {b.architecture or ''}\n{b.mode}" for b, _ in pairs]
    width = 0.38
    for offset, kind, pick in ((-width / 2, "base", 0), (width / 2, "instruct", 1)):
        chosen = [p[pick] for p in pairs]
        ys, err = _acc_err(chosen)
        ax.bar([i + offset for i in range(len(pairs))], ys, width, yerr=err, capsize=4, label=kind, color=colour(kind))
    ax.set_xticks(range(len(pairs)), labels, fontsize="small")
    ax.set_ylim(0, 102)
    ax.set_ylabel("exact match (%), 95% Wilson")
    ax.legend(fontsize="small", loc="best")
    ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.text(0.01, 0.005, "base: plain Q:/A: frames; instruct: its chat template. " + ACCURACY_NOTE,
             fontsize="x-small", color="grey")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    return fig


CURVES = {"emergence": plot_emergence, "icl": plot_icl_curve, "cot_gain": plot_cot_gain,
          "base_instruct": plot_base_vs_instruct}


def write_curves(rows: Sequence[SummaryRow], out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Every research figure as <stem>-<curve>.png; returns their paths by curve name."""
    out = Path(out_dir)
    return {name: save_figure(draw(rows), out / f"{stem}-{name}.png") for name, draw in CURVES.items()}
