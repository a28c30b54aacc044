"""The Leaderboard tab's figures for the browser, in plotly: hover a contestant for its rating, 95%
interval and record; hover a heatmap cell for the pair and its figure. The matplotlib versions
(`leaderboard/figures.py`) stay for files; colours come from `playground.palette`."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from playground.leaderboard.board import Leaderboard
from playground.palette import contestant_colours


def ratings_plot(board: Leaderboard) -> go.Figure:
    """Ratings with their 95% bootstrap intervals, best at the top, one colour per contestant."""
    rows = [r for r in board.rows if not math.isnan(r.rating)][::-1]
    colours = contestant_colours([r.contestant for r in rows])
    fig = go.Figure()
    for r in rows:
        fig.add_trace(go.Scatter(
            x=[r.rating], y=[r.contestant], mode="markers", marker={"size": 10, "color": colours[r.contestant]},
            error_x={"type": "data", "symmetric": False, "array": [max(0.0, r.ci_high - r.rating)],
                     "arrayminus": [max(0.0, r.rating - r.ci_low)], "color": colours[r.contestant]},
            name=r.contestant, showlegend=False,
            hovertemplate=(f"<b>{r.contestant}</b><br>rating %{{x:.0f}} (95% CI {r.ci_low:.0f}–{r.ci_high:.0f})"
                           f"<br>{r.battles} battles: {r.wins} won, {r.losses} lost, {r.ties} ties<extra></extra>")))
        if board.length_control is not None and r.rating_lc is not None:
            fig.add_trace(go.Scatter(
                x=[r.rating_lc], y=[r.contestant], mode="markers", showlegend=False, name="length-controlled",
                marker={"symbol": "diamond", "size": 7, "color": "#555"},
                hovertemplate=f"<b>{r.contestant}</b><br>length-controlled %{{x:.0f}}<extra></extra>"))
    plural = "" if board.n_battles == 1 else "s"
    fig.update_layout(title={"text": f"Ratings from {board.n_battles} battle{plural} (95% CI)", "x": 0.01},
                      hovermode="closest",
                      height=max(260, 34 * len(rows) + 120), template="plotly_white",
                      margin={"l": 16, "r": 16, "t": 50, "b": 46})
    fig.update_xaxes(title_text="rating (Elo scale)")
    fig.update_yaxes(automargin=True)
    return fig


def _heatmap(board: Leaderboard, matrix: np.ndarray, title: str, fmt: str, scale: str, zmin=None, zmax=None,
             what: str = "") -> go.Figure:
    names = list(board.names[:len(matrix)])  # large boards: the matrices cover the top rows only
    z = [[None if math.isnan(v) else float(v) for v in row] for row in np.asarray(matrix, dtype=float)]
    text = [[("" if v is None else format(v, fmt)) for v in row] for row in z]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, colorscale=scale, zmin=zmin, zmax=zmax, text=text,
        texttemplate="%{text}" if len(names) <= 15 else None,
        hovertemplate=f"%{{y}} vs %{{x}}<br>{what} %{{text}}<extra></extra>", hoverongaps=False))
    fig.update_layout(title={"text": title, "x": 0.01}, template="plotly_white",
                      height=min(900, max(360, 36 * len(names) + 200)), margin={"l": 16, "r": 16, "t": 50, "b": 16})
    fig.update_xaxes(title_text="opponent", automargin=True, tickangle=-35)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def win_rate_plot(board: Leaderboard) -> go.Figure:
    return _heatmap(board, board.win_rate, "Observed win rate (row vs column, ties half)", ".2f", "RdBu", 0, 1,
                    "observed score")


def battle_count_plot(board: Leaderboard) -> go.Figure:
    counts = board.battle_counts.astype(float)
    np.fill_diagonal(counts, np.nan)
    return _heatmap(board, counts, "Battles between row and column", ".0f", "Blues", 0, None, "battles:")


def predicted_win_rate_plot(board: Leaderboard) -> go.Figure:
    return _heatmap(board, board.predicted, "Predicted win rate from ratings (row vs column)", ".2f", "RdBu", 0, 1,
                    "P(row wins)")
