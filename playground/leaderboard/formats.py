"""The leaderboard as CSV, JSON and Markdown (rendered from the same fit as the table)."""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, fields
from typing import Any

from playground.leaderboard.board import Leaderboard, LeaderboardRow
from playground.ranking import tie_probability_at_equal_strength


def tie_model_text(board: Leaderboard) -> str:
    """How ties were counted, with the fitted tie parameter for Davidson's model."""
    if board.tie_model != "davidson":
        return "a tie counts as half a win for each side"
    if board.nu is None or not math.isfinite(board.nu) or board.nu == 0:
        return "ties modelled (Davidson): there are no ties, so nu = 0 and the ratings are those of decisive votes"
    low, high = board.nu_ci or (math.nan, math.nan)
    return (f"ties modelled (Davidson): nu = {board.nu:.3f} (95% CI {low:.3f} to {high:.3f}), i.e. two equally "
            f"strong contestants tie {tie_probability_at_equal_strength(board.nu):.1%} of the time")


def rows_as_dicts(board: Leaderboard) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> None; length-control fields only when computed)."""
    keep = [f.name for f in fields(LeaderboardRow)]
    if board.length_control is None:
        keep = [k for k in keep if not k.endswith("_lc")]
    return [{k: _clean(v) for k, v in asdict(row).items() if k in keep} for row in board.rows]


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else round(value, 4)
    return value


def to_json(board: Leaderboard) -> str:
    """The whole leaderboard: rows, warnings, position bias, settings, length coefficient."""
    bias = {k: _clean(v) for k, v in asdict(board.position_bias).items()}
    doc: dict[str, Any] = {
        "rows": rows_as_dicts(board),
        "warnings": board.warnings,
        "position_bias": bias,
        "battles": board.n_battles,
        "settings": {"rounds": board.rounds, "seed": board.seed, "both_bad": board.both_bad, "prior": board.prior,
                     "tie_model": board.tie_model, "battles_shown": board.shows, "grouping": board.grouping,
                     "rating": "Bradley-Terry, Elo scale (400 points = 10x odds), mean 1000, 95% bootstrap CI"},
    }
    if board.tie_model == "davidson":
        doc["tie_model"] = {"nu": _clean(board.nu), "nu_ci": [_clean(x) for x in (board.nu_ci or ())]}
    if board.length_control is not None:
        lc = board.length_control
        doc["length_control"] = {"coef": _clean(lc.coef), "coef_ci_low": _clean(lc.coef_ci_low),
                                 "coef_ci_high": _clean(lc.coef_ci_high), "bins": lc.bins}
    return json.dumps(doc, indent=2, ensure_ascii=False)


def to_csv(board: Leaderboard) -> str:
    rows = rows_as_dicts(board)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else [f.name for f in fields(LeaderboardRow)])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_markdown(board: Leaderboard) -> str:
    """A GitHub-flavoured table plus the warnings as a list under it."""
    has_lc = board.length_control is not None
    header = ["Rank", "Contestant", "Rating", "95% CI", "Elo", "Battles", "W / L / T", "Win rate"]
    header += ["Rating (length-controlled)", "Rank (LC)"] if has_lc else []
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in board.rows:
        cells = [
            _fmt_int(r.rank), r.contestant.replace("|", "\\|"), _fmt(r.rating, 0),
            f"{_fmt(r.ci_low - r.rating, 0, sign=True)} / {_fmt(r.ci_high - r.rating, 0, sign=True)}",
            _fmt(r.elo, 0), str(r.battles), f"{r.wins} / {r.losses} / {r.ties}", _fmt(100 * r.win_rate, 1) + "%",
        ]
        if has_lc:
            cells += [_fmt(r.rating_lc, 0), _fmt_int(r.rank_lc)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    shows = f" ({board.shows})" if board.shows else ""
    grouped = f"contestants by {board.grouping}; " if board.grouping else ""
    lines.append(f"{board.n_battles} battles{shows}; {grouped}Bradley-Terry ratings (mean 1000) with 95% bootstrap CIs "
                 f"({board.rounds} rounds); rank = 1 + contestants whose CI lies entirely above; "
                 f"{tie_model_text(board)}.")
    lines += [""] + [f"- {w}" for w in board.warnings] if board.warnings else []
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else str(value)


