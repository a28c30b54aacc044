"""The Lab's figures for the browser, in plotly: hovering a point shows its value, interval and n.

The same data and colours as the matplotlib files (`lab/plots.py`, `lab/curves.py`, kept for the
downloads and `lab report`), drawn as `plotly.graph_objects.Figure` for `gr.Plot`. Titles are in
the figure and the gr.Plot's own label is hidden, so no badge covers them.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Sequence

import plotly.graph_objects as go

from playground.lab.curves import base_instruct_pairs, cot_gains
from playground.lab.reports import SummaryRow, params_label
from playground.palette import SeriesStyle, colour, series_styles
from playground.stats import Z95

HEIGHT = 420
ACCURACY_HOVER = "%{customdata[0]}<br>%{y:.1f}% (95% CI %{customdata[1]:.1f}–%{customdata[2]:.1f}%)<br>n = %{customdata[3]}<extra>%{fullData.name}</extra>"
LOGPROB_HOVER = "%{customdata[0]}<br>%{y:.3f} (±1.96 SE: %{customdata[1]:.3f}–%{customdata[2]:.3f})<br>n = %{customdata[3]}<extra>%{fullData.name}</extra>"


def _layout(fig: go.Figure, title: str, ytitle: str, xtitle: str, log_x: bool = True) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=HEIGHT,
                      margin={"l": 64, "r": 16, "t": 56, "b": 56}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.22, "font": {"size": 11}}, hovermode="closest")
    fig.update_yaxes(title_text=ytitle, title_font={"size": 12})
    fig.update_xaxes(title_text=xtitle, type="log" if log_x else "linear", title_font={"size": 12})
    return fig


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"color": "grey", "size": 13})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=HEIGHT, template="plotly_white")
    return fig


def _lines(rows: Sequence[SummaryRow], has_value: Callable[[SummaryRow], bool]) -> dict[str, list[SummaryRow]]:
    """Sized rows with a value, one line per mode (per mode and task name when several tasks)."""
    usable = [r for r in rows if r.n_params and has_value(r)]
    many_tasks = len({r.name for r in usable}) > 1
    shots_vary = len({(r.mode, r.shots) for r in usable}) > len({r.mode for r in usable})
    lines: dict[str, list[SummaryRow]] = defaultdict(list)
    for r in usable:
        label = f"{r.mode} k={r.shots}" if shots_vary and r.shots is not None else r.mode
        lines[f"{label} · {r.name}" if many_tasks else label].append(r)
    return {k: sorted(v, key=lambda r: r.n_params or 0) for k, v in sorted(lines.items())}


def _accuracy_trace(label: str, series: Sequence[SummaryRow], xs: Sequence[float], style: SeriesStyle) -> go.Scatter:
    ys = [100 * (r.accuracy or 0.0) for r in series]
    lo = [100 * (r.ci_low or 0.0) for r in series]
    hi = [100 * (r.ci_high or 0.0) for r in series]
    return go.Scatter(
        x=list(xs), y=ys, name=label, mode="lines+markers", line={"color": style.colour},
        marker={"symbol": style.symbol, "size": 8},
        error_y={"type": "data", "symmetric": False, "array": [max(0.0, h - y) for h, y in zip(hi, ys, strict=True)],
                 "arrayminus": [max(0.0, y - lw) for y, lw in zip(ys, lo, strict=True)]},
        customdata=[[f"{r.model_id} ({params_label(r.n_params)})", lw, h, r.n]
                    for r, lw, h in zip(series, lo, hi, strict=True)],
        hovertemplate=ACCURACY_HOVER)


def _logprob_trace(label: str, series: Sequence[SummaryRow], xs: Sequence[float], style: SeriesStyle) -> go.Scatter:
    ys = [r.mean_logprob for r in series]
    err = [Z95 * (r.logprob_se or 0.0) for r in series]
    return go.Scatter(
        x=list(xs), y=ys, name=label, mode="lines+markers", line={"color": style.colour},
        marker={"symbol": style.symbol, "size": 8},
        error_y={"type": "data", "array": err},
        customdata=[[f"{r.model_id} ({params_label(r.n_params)})", y - e, y + e, r.n]
                    for r, y, e in zip(series, ys, err, strict=True)],
        hovertemplate=LOGPROB_HOVER)


def accuracy_figure(rows: Sequence[SummaryRow], title: str = "Accuracy vs model size") -> go.Figure:
    lines = _lines(rows, lambda r: r.accuracy is not None)
    if not lines:
        return _empty(title, "no results yet")
    styles = series_styles(lines)
    fig = go.Figure([_accuracy_trace(k, v, [r.n_params for r in v], styles[k]) for k, v in lines.items()])
    fig.update_yaxes(range=[-2, 102])
    return _layout(fig, title, "exact match (%), 95% Wilson CI", "parameters (log scale)")


def logprob_figure(rows: Sequence[SummaryRow], title: str = "Gold log-likelihood vs model size") -> go.Figure:
    lines = _lines(rows, lambda r: r.mean_logprob is not None)
    if not lines:
        return _empty(title, "no log-likelihood scores yet")
    styles = series_styles(lines)
    fig = go.Figure([_logprob_trace(k, v, [r.n_params for r in v], styles[k]) for k, v in lines.items()])
    return _layout(fig, title, "mean log p(gold token), ±1.96 SE", "parameters (log scale)")


def emergence_figure(rows: Sequence[SummaryRow],
                     title: str = "Emergence: exact match and gold log-prob vs size") -> go.Figure:
    """Two panels on one log size axis, as `curves.plot_emergence` draws them."""
    from plotly.subplots import make_subplots

    lines = _lines(rows, lambda r: r.accuracy is not None)
    if not lines:
        return _empty(title, "no sized results yet")
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    styles = series_styles(lines)
    for label, series in lines.items():
        xs = [r.n_params for r in series]
        fig.add_trace(_accuracy_trace(label, series, xs, styles[label]), row=1, col=1)
        scored = [r for r in series if r.mean_logprob is not None]
        if scored:
            trace = _logprob_trace(label, scored, [r.n_params for r in scored], styles[label])
            trace.showlegend = False
            fig.add_trace(trace, row=2, col=1)
    _layout(fig, title, "", "")
    fig.update_layout(height=HEIGHT + 160)
    fig.update_yaxes(title_text="exact match (%), Wilson", range=[-2, 102], row=1, col=1)
    fig.update_yaxes(title_text="log p(gold), ±1.96 SE", row=2, col=1)
    fig.update_xaxes(type="log")
    fig.update_xaxes(title_text="parameters (log scale)", row=2, col=1)
    return fig


def icl_figure(rows: Sequence[SummaryRow], title: str = "In-context learning: score vs exemplars k") -> go.Figure:
    lines: dict[str, list[SummaryRow]] = defaultdict(list)
    for r in rows:
        if r.shots is not None and r.accuracy is not None:
            lines[f"{r.mode} · {r.model_id}"].append(r)
    lines = {k: sorted(v, key=lambda r: r.shots or 0) for k, v in sorted(lines.items())
             if len({r.shots for r in v}) > 1}
    if not lines:
        return _empty(title, "needs a few-shot mode run at two or more k (e.g. k = 0,1,2,4,8)")
    ks = sorted({r.shots for v in lines.values() for r in v})
    styles = series_styles(lines)
    fig = go.Figure([_accuracy_trace(k, v, [ks.index(r.shots) for r in v], styles[k]) for k, v in lines.items()])
    fig.update_xaxes(tickvals=list(range(len(ks))), ticktext=[str(k) for k in ks])
    fig.update_yaxes(range=[-2, 102])
    return _layout(fig, title, "exact match (%), 95% Wilson CI", "exemplars in the prompt (k)", log_x=False)


def cot_gain_figure(rows: Sequence[SummaryRow],
                    title: str = "Does CoT help? CoT minus direct accuracy vs size") -> go.Figure:
    gains = [g for g in cot_gains(rows) if g["n_params"]]
    if not gains:
        return _empty(title, "needs a CoT mode and its direct counterpart for the same model<br>"
                             "(few_shot_cot with few_shot or zero_shot; zero_shot_cot with zero_shot)")
    fig = go.Figure()
    styles = series_styles(g["pair"] for g in gains)
    for pair in sorted({g["pair"] for g in gains}):
        series = sorted((g for g in gains if g["pair"] == pair), key=lambda g: g["n_params"])
        ys = [100 * g["difference"] for g in series]
        fig.add_trace(go.Scatter(
            x=[g["n_params"] for g in series], y=ys, name=pair, mode="lines+markers", line={"color": styles[pair].colour},
            marker={"symbol": styles[pair].symbol, "size": 8},
            error_y={"type": "data", "symmetric": False,
                     "array": [100 * g["ci_high"] - y for g, y in zip(series, ys, strict=True)],
                     "arrayminus": [y - 100 * g["ci_low"] for g, y in zip(series, ys, strict=True)]},
            customdata=[[g["model_id"], 100 * g["ci_low"], 100 * g["ci_high"], g["n"]] for g in series],
            hovertemplate="%{customdata[0]}<br>%{y:+.1f} points (95% CI %{customdata[1]:+.1f} to "
                          "%{customdata[2]:+.1f})<br>n = %{customdata[3]}<extra>%{fullData.name}</extra>"))
    fig.add_hline(y=0, line_color="grey", line_width=1)
    fig.update_yaxes(range=[-102, 102])
    return _layout(fig, title, "CoT − direct (points), 95% Newcombe", "parameters (log scale)")


def base_instruct_figure(rows: Sequence[SummaryRow],
                         title: str = "Base vs instruct (same size and architecture)") -> go.Figure:
    pairs = sorted(base_instruct_pairs(rows), key=lambda p: (p[0].n_params or 0, p[0].mode))
    if not pairs:
        return _empty(title, "needs a base and an instruct model of the same architecture and size<br>"
                             "(e.g. SmolLM2-135M and SmolLM2-135M-Instruct from presets/hub_models.yaml)")
    labels = [f"{params_label(b.n_params)} {b.architecture or ''} · {b.mode}" for b, _ in pairs]
    fig = go.Figure()
    for kind, pick in (("base", 0), ("instruct", 1)):
        chosen = [p[pick] for p in pairs]
        ys = [100 * (r.accuracy or 0.0) for r in chosen]
        fig.add_trace(go.Bar(
            x=labels, y=ys, name=kind, marker_color=colour(kind),
            error_y={"type": "data", "symmetric": False,
                     "array": [max(0.0, 100 * (r.ci_high or 0) - y) for r, y in zip(chosen, ys, strict=True)],
                     "arrayminus": [max(0.0, y - 100 * (r.ci_low or 0)) for r, y in zip(chosen, ys, strict=True)]},
            customdata=[[r.model_id, 100 * (r.ci_low or 0), 100 * (r.ci_high or 0), r.n] for r in chosen],
            hovertemplate=ACCURACY_HOVER))
    fig.update_yaxes(range=[0, 102])
    fig.update_layout(barmode="group")
    return _layout(fig, title, "exact match (%), 95% Wilson CI", "", log_x=False)
