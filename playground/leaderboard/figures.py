"""The Leaderboard tab's plots on plain `matplotlib.figure.Figure` objects (Agg; no pyplot state,
so they are safe in a multi-user server)."""
from __future__ import annotations

import math
import textwrap

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from playground.leaderboard.board import Leaderboard


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # explicit Agg canvas: savefig/draw never touch pyplot or a GUI backend
    return fig


def short_label(name: str, width: int = 22) -> str:
    """Long contestant names wrapped onto lines of `width` characters (at ' + ', '-', or anywhere)."""
    if len(name) <= width:
        return name
    return "\n".join(textwrap.wrap(name.replace(" + ", " +\u00a0"), width, break_on_hyphens=True)[:3])


def ratings_figure(board: Leaderboard) -> Figure:
    """Ratings with their 95% CIs as horizontal error bars, best at the top."""
    rows = [r for r in board.rows if not math.isnan(r.rating)][::-1]
    lines = max((short_label(r.contestant, 30).count("\n") + 1 for r in rows), default=1)
    fig = _new_figure(7, max(2.5, 0.3 * len(rows) * lines + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    rating = np.array([r.rating for r in rows])
    # The interval is drawn from its own ends, not as errors around the rating: a percentile interval
    # need not contain the fit (with one-sided results every round equals it and the percentiles land
    # a rounding error away, on either side), and matplotlib refuses a negative error bar.
    low, high = np.array([r.ci_low for r in rows]), np.array([r.ci_high for r in rows])
    ax.hlines(y, low, high, color="tab:blue", linewidth=1.5)
    ax.plot(np.r_[low, high], np.r_[y, y], "|", color="tab:blue", markersize=8)
    ax.plot(rating, y, "o", color="tab:blue", label="Bradley-Terry (95% CI)")
    if board.length_control is not None:
        ax.plot([r.rating_lc for r in rows], y + 0.2, "D", color="tab:orange", markersize=4, zorder=3,
                label="length-controlled")
        ax.legend(loc="best", fontsize=8)
    ax.set_yticks(y, [short_label(r.contestant, 30) for r in rows], fontsize=8)
    ax.set_xlabel("rating (Elo scale)")
    ax.set_title(f"Ratings from {board.n_battles} battle{'' if board.n_battles == 1 else 's'}")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _heatmap(board: Leaderboard, matrix: np.ndarray, title: str, fmt: str, cmap: str, vmin=None, vmax=None) -> Figure:
    n = len(matrix)  # large boards: the matrices cover the top rows only
    labels = [short_label(name) for name in board.names[:n]]
    fig = _new_figure(min(11.0, max(5.5, 0.45 * n + 3.5)), min(10.0, max(4.5, 0.4 * n + 3)))  # capped: PNG cost
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=vmin, vmax=vmax)
    size = 8 if n <= 15 else 6
    ax.set_xticks(range(n), labels, rotation=45, ha="right", rotation_mode="anchor", fontsize=size)
    ax.set_yticks(range(n), labels, fontsize=size)
    ax.set_xlabel("opponent")
    ax.set_title("\n".join(textwrap.wrap(title, 48)), fontsize=10)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if not math.isnan(matrix[i, j]) and i != j:
                    red, green, blue, _ = image.cmap(image.norm(matrix[i, j]))
                    dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # black text vanishes on dark cells
                    ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=8,
                            color="white" if dark else "black")
    fig.colorbar(image, ax=ax, shrink=0.8, fraction=0.05, pad=0.02)
    return fig


def win_rate_figure(board: Leaderboard) -> Figure:
    """Observed score of row against column (ties half); blank where they never met."""
    return _heatmap(board, board.win_rate, "Observed win rate (row vs column, ties half)", ".2f", "RdBu", 0, 1)


def battle_count_figure(board: Leaderboard) -> Figure:
    counts = board.battle_counts.astype(float)
    np.fill_diagonal(counts, np.nan)
    return _heatmap(board, counts, "Battles between row and column", ".0f", "Blues", 0, None)


def predicted_win_rate_figure(board: Leaderboard) -> Figure:
    """P(row beats column) implied by the Bradley-Terry ratings."""
    return _heatmap(board, board.predicted, "Predicted win rate from ratings (row vs column)", ".2f", "RdBu", 0, 1)
