"""Database -> battles -> leaderboard: ratings with CIs, online Elo, counts, diagnostics, figures.

`load_battles` reads every voted battle with one SQL query (labels, winner codes and answer
lengths computed in SQL), `build_leaderboard` turns them into ranked rows plus the warnings a
reader needs (prior-driven ratings, disconnected groups, position bias), and the `*_figure`
functions draw the Leaderboard tab's plots on plain `matplotlib.figure.Figure` objects (Agg;
no pyplot state, so they are safe in a multi-user server).
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sqlite_utils import Database

from playground.ranking import (
    DEFAULT_PRIOR,
    NO_BATTLES,
    WINNERS,
    Battles,
    BothBad,
    LengthControl,
    PositionBias,
    RankingError,
    battle_count_matrix,
    ci_rank,
    contestant_totals,
    fit_bradley_terry,
    fit_length_controlled,
    online_elo,
    position_bias,
    predicted_win_matrix,
    tally_battles,
    win_rate_matrix,
)

GroupBy = Literal["model", "mode", "model+mode"]
GROUPINGS: tuple[str, ...] = ("model", "mode", "model+mode")
NO_MODE = "(no mode)"


# ----------------------------------------------------------------------------- loading


def vote_filter_sql(
    *,
    anonymous_only: bool = False,
    since: float | None = None,
    until: float | None = None,
    model: str | None = None,
    mode: str | None = None,
    voter: str | None = None,
) -> tuple[str, list[Any]]:
    """WHERE clause over `votes v JOIN battles b`: vote time in [since, until), either side's model/mode,
    and one voter's votes (`storage.voters.voter_sql`; None = everyone's)."""
    from storage.voters import voter_sql

    clauses, params = [], []
    own, own_params = voter_sql(voter)
    if own:
        clauses.append(own)
        params += own_params
    if anonymous_only:
        clauses.append("b.anonymous = 1")
    if since is not None:
        clauses.append("v.tstamp >= ?")
        params.append(float(since))
    if until is not None:
        clauses.append("v.tstamp < ?")
        params.append(float(until))
    if model is not None:
        clauses.append("(b.left_model = ? OR b.right_model = ?)")
        params += [model, model]
    if mode is not None:
        clauses.append("(b.left_mode = ? OR b.right_mode = ?)")
        params += [mode, mode]
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


_WINNER_CODE_SQL = "CASE v.winner " + " ".join(f"WHEN '{w}' THEN {i}" for i, w in enumerate(WINNERS)) + " END"
_ROW_DTYPE = np.dtype([("code", np.int64), ("tstamp", np.float64), ("left_len", np.int64), ("right_len", np.int64)])


def load_battles(
    db: Database,
    *,
    by: GroupBy = "model",
    anonymous_only: bool = False,
    since: float | None = None,
    until: float | None = None,
    with_lengths: bool = True,
) -> Battles:
    """Every counted vote's battle in vote-time order (ties by vote id), read as numbers, not Python rows.

    Counted = storage's `counted_votes` view: each voter's first judgement of each pair of answers
    (several annotators' votes on one battle each count once), and nothing forgotten with `python app.py forget` (docs/architecture.md, "Judging rules").

    Contestant labels: model (`left_model`), mode (empty mode -> '(no mode)') or 'model + mode'
    (empty mode -> just the model). `tstamp` is the vote's time (when the judgement was made),
    which is also what `since`/`until` filter on. Answer lengths are `length(output)` in
    characters; `with_lengths=False` skips the generations join when length control is not needed.

    Why it is shaped like this (1M battles in about a second): small DISTINCT queries list the
    models and modes; the main query maps each to its integer code in SQL (a binary search
    written as nested CASE) and packs left, right and winner into one integer, so SQLite hands
    back four numbers per battle that `np.fromiter` stores directly. The main query scans votes
    in rowid order (no sort in SQLite) and a stable numpy argsort puts it in time order. All
    queries run in one read transaction, so a vote arriving in between cannot go unlabelled.
    """
    if by not in _GROUP_COLUMNS:
        raise RankingError(f"unknown grouping {by!r}: choose one of {', '.join(GROUPINGS)}")
    columns = _GROUP_COLUMNS[by]
    where, params = vote_filter_sql(anonymous_only=anonymous_only, since=since, until=until)
    lengths = "coalesce(length(gl.output), 0), coalesce(length(gr.output), 0)" if with_lengths else "0, 0"
    joins = (
        "LEFT JOIN generations gl ON gl.id = b.left_generation_id "
        "LEFT JOIN generations gr ON gr.id = b.right_generation_id"
        if with_lengths
        else ""
    )
    with _read_snapshot(db):
        values = {column: _distinct_values(db, column) for column in columns}
        packed, packed_params = _packed_code_sql(columns, values)
        sql = (
            f"SELECT coalesce({packed}, -1), v.tstamp, {lengths} "
            f"FROM counted_votes v JOIN battles b ON b.id = v.battle_id {joins} {where} ORDER BY v.id"
        )
        table = np.fromiter(db.execute(sql, packed_params + params), dtype=_ROW_DTYPE)
    if (table["code"] < 0).any():
        raise RankingError("a battle's contestant changed while reading the votes; load the leaderboard again")
    order = np.argsort(table["tstamp"], kind="stable")
    if np.any(order != np.arange(len(order))):
        table = table[order]
    return _battles_from_table(table, by, columns, values, with_lengths)


_GROUP_COLUMNS: dict[str, tuple[str, ...]] = {"model": ("model",), "mode": ("mode",), "model+mode": ("model", "mode")}


def _column_sql(column: str, side: str) -> str:
    return f"b.{side}_model" if column == "model" else f"coalesce(b.{side}_mode, '')"


def _distinct_values(db: Database, column: str) -> list[str]:
    """Sorted distinct values of a contestant column over both sides (the model one uses an index)."""
    rows = db.execute(f"SELECT DISTINCT {_column_sql(column, 'left')}, {_column_sql(column, 'right')} FROM battles b")
    return sorted({value for row in rows for value in row})


@contextmanager
def _read_snapshot(db: Database) -> Iterator[None]:
    """One read transaction (a WAL snapshot) unless the caller already holds one."""
    if db.conn.in_transaction:
        yield
        return
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.conn.rollback()


def _packed_code_sql(columns: tuple[str, ...], values: dict[str, list[str]]) -> tuple[str, list[str]]:
    """SQL for (((left digits) ... right digits) * 4 + winner), each digit a value's index."""
    expr, params = "0", []
    for side in ("left", "right"):
        for column in columns:
            digit, digit_params = _code_sql(_column_sql(column, side), values[column])
            expr = f"({expr}) * {max(len(values[column]), 1)} + ({digit})"
            params += digit_params
    return f"({expr}) * 4 + {_WINNER_CODE_SQL}", params


def _code_sql(expr: str, names: list[str]) -> tuple[str, list[str]]:
    """SQL mapping a value to its index in sorted `names`: nested CASE, log2(n) comparisons a row.

    A leaf checks equality and yields NULL otherwise (the whole code becomes -1), so a value
    missing from `names` can never be counted as somebody else.
    """
    if not names:
        return "NULL", []

    def build(lo: int, hi: int) -> tuple[str, list[str]]:
        if hi - lo == 1:
            return f"CASE WHEN {expr} = ? THEN {lo} END", [names[lo]]
        mid = (lo + hi) // 2
        below, below_params = build(lo, mid)
        above, above_params = build(mid, hi)
        return f"CASE WHEN {expr} < ? THEN {below} ELSE {above} END", [names[mid], *below_params, *above_params]

    return build(0, len(names))


def _battles_from_table(
    table: np.ndarray, by: str, columns: tuple[str, ...], values: dict[str, list[str]], with_lengths: bool
) -> Battles:
    """Unpack the codes, build labels for the (model, mode) combinations that occur, drop the rest."""
    code, winner = np.divmod(table["code"], 4)
    digits: dict[tuple[str, str], np.ndarray] = {}
    for side in ("right", "left"):
        for column in reversed(columns):
            code, digits[side, column] = np.divmod(code, max(len(values[column]), 1))
    keys = {side: _combined_key(digits, side, columns, values) for side in ("left", "right")}
    used, inverse = np.unique(np.concatenate([keys["left"], keys["right"]]), return_inverse=True)
    labels = [_label(by, _key_values(int(key), columns, values)) for key in used]
    names, label_code = np.unique(np.asarray(labels, dtype=object), return_inverse=True)  # merges equal labels
    contestant = label_code[inverse]
    n = len(table)
    lengths = {"left_len": table["left_len"], "right_len": table["right_len"]} if with_lengths else {}
    return Battles.from_codes(list(names), contestant[:n], contestant[n:], winner, table["tstamp"], **lengths)


def _combined_key(digits, side: str, columns: tuple[str, ...], values: dict[str, list[str]]) -> np.ndarray:
    key = np.zeros(len(digits[side, columns[0]]), np.int64)
    for column in columns:
        key = key * max(len(values[column]), 1) + digits[side, column]
    return key


def _key_values(key: int, columns: tuple[str, ...], values: dict[str, list[str]]) -> dict[str, str]:
    found = {}
    for column in reversed(columns):
        key, digit = divmod(key, max(len(values[column]), 1))
        found[column] = values[column][digit]
    return found


def _label(by: str, parts: dict[str, str]) -> str:
    """The contestant's name: the model, the mode, or 'model + mode' (the model alone when mode is empty)."""
    if by == "model":
        return parts["model"]
    if by == "mode":
        return parts["mode"] or NO_MODE
    return f"{parts['model']} + {parts['mode']}" if parts["mode"] else parts["model"]


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class LeaderboardRow:
    """One contestant. `rating`/CI: Bradley-Terry (Elo scale, bootstrap percentile CI); `elo`:
    online Elo; `ties` include both_bad votes; `win_rate` = (wins + ties/2) / battles. The `_lc`
    fields are the length-controlled rating and its rank, when asked for."""

    rank: int | None
    contestant: str
    rating: float
    ci_low: float
    ci_high: float
    elo: float
    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float
    rating_lc: float | None = None
    ci_low_lc: float | None = None
    ci_high_lc: float | None = None
    rank_lc: int | None = None


@dataclass(frozen=True)
class Leaderboard:
    """Rows best first, the reader's warnings, diagnostics, and matrices in row order."""

    rows: list[LeaderboardRow]
    warnings: list[str]
    position_bias: PositionBias
    names: tuple[str, ...]
    win_rate: np.ndarray  # observed score of row vs column, ties half; NaN where they never met
    battle_counts: np.ndarray
    predicted: np.ndarray  # P(row beats column) from the ratings
    length_control: LengthControl | None
    n_battles: int
    rounds: int
    seed: int | None
    both_bad: str
    prior: float


def build_leaderboard(
    battles: Battles,
    *,
    rounds: int = 1000,
    seed: int | None = 0,
    both_bad: BothBad = "tie",
    length_control: bool = False,
    prior: float = DEFAULT_PRIOR,
) -> Leaderboard:
    """Rank by Bradley-Terry with Arena's CI-aware rank (1 + contestants whose CI is entirely above)."""
    if len(battles) == 0:
        raise RankingError(NO_BATTLES)
    battles, self_battles = drop_self_battles(battles)
    if len(battles) == 0:
        raise RankingError(f"all {self_battles} battle(s) compare a contestant with itself under this grouping "
                           "(e.g. two prompting modes of one model, grouped by model): group by mode or "
                           "model+mode to rank them")
    bt = fit_bradley_terry(battles, both_bad=both_bad, prior=prior, rounds=rounds, seed=seed)
    elo = online_elo(battles, both_bad=both_bad)
    tally = tally_battles(battles)
    totals = contestant_totals(tally)
    lc = fit_length_controlled(battles, both_bad=both_bad, prior=prior, rounds=rounds, seed=seed) if length_control else None
    order = sorted(range(len(bt.names)), key=lambda k: (-_or_minus_inf(bt.rating[k]), bt.names[k]))
    ranks = _ranks(bt.rating, bt.ci_low, bt.ci_high)
    ranks_lc = _ranks(lc.rating, lc.ci_low, lc.ci_high) if lc else None
    rows = [_row(k, bt, elo, totals, ranks, lc, ranks_lc) for k in order]
    idx = np.array(order, dtype=np.intp)
    bias = position_bias(battles)
    return Leaderboard(
        rows=rows,
        warnings=_self_battle_warning(self_battles) + _warnings(bt, tally, both_bad, prior, bias, lc),
        position_bias=bias,
        names=tuple(bt.names[k] for k in order),
        win_rate=win_rate_matrix(tally, both_bad)[np.ix_(idx, idx)],
        battle_counts=battle_count_matrix(tally)[np.ix_(idx, idx)],
        predicted=predicted_win_matrix(bt.rating[idx]),
        length_control=lc,
        n_battles=len(battles),
        rounds=rounds,
        seed=seed,
        both_bad=both_bad,
        prior=prior,
    )


def drop_self_battles(battles: Battles) -> tuple[Battles, int]:
    """Battles whose two sides are the same contestant carry no information about the ranking
    (they appear when, say, two modes of one model are grouped by model); returns the rest and
    how many were dropped."""
    keep = battles.left != battles.right
    dropped = int((~keep).sum())
    if dropped == 0:
        return battles, 0
    lengths = (battles.left_len[keep], battles.right_len[keep]) if battles.has_lengths else (None, None)
    return Battles(battles.left[keep], battles.right[keep], battles.winner[keep], battles.tstamp[keep],
                   *lengths), dropped


def _self_battle_warning(dropped: int) -> list[str]:
    if not dropped:
        return []
    return [f"{dropped} battle(s) compared a contestant with itself under this grouping and were left out "
            "(group by mode or model+mode to rank prompting modes of one model)"]


def _or_minus_inf(value: float) -> float:
    return -math.inf if math.isnan(value) else value


def _ranks(rating: np.ndarray, low: np.ndarray, high: np.ndarray) -> list[int | None]:
    """CI-aware ranks among rated contestants; None for a contestant without counted battles."""
    valid = ~np.isnan(rating)
    ranks: list[int | None] = [None] * len(rating)
    for k, rank in zip(np.flatnonzero(valid), ci_rank(low[valid], high[valid])):
        ranks[k] = int(rank)
    return ranks


def _row(k, bt, elo, totals, ranks, lc, ranks_lc) -> LeaderboardRow:
    name = bt.names[k]
    extra = {}
    if lc is not None:
        extra = {"rating_lc": float(lc.rating[k]), "ci_low_lc": float(lc.ci_low[k]),
                 "ci_high_lc": float(lc.ci_high[k]), "rank_lc": ranks_lc[k]}
    return LeaderboardRow(
        rank=ranks[k],
        contestant=name,
        rating=float(bt.rating[k]),
        ci_low=float(bt.ci_low[k]),
        ci_high=float(bt.ci_high[k]),
        elo=float(elo[name]),
        battles=int(totals.battles[k]),
        wins=int(totals.wins[k]),
        losses=int(totals.losses[k]),
        ties=int(totals.ties[k]),
        win_rate=float(totals.win_rate[k]),
        **extra,
    )


def _warnings(bt, tally, both_bad: str, prior: float, bias: PositionBias, lc: LengthControl | None) -> list[str]:
    """What a reader must know before trusting the table."""
    notes = []
    games, scores = tally.games(both_bad).sum(1), tally.scores(both_bad).sum(1)
    for k, name in enumerate(tally.names):
        if games[k] == 0:
            notes.append(f"{name} has no counted battle (only both_bad votes, excluded): not rated.")
        elif scores[k] == 0 or scores[k] == games[k]:
            verb, side = ("never won", "below") if scores[k] == 0 else ("never lost", "above")
            notes.append(
                f"{name} {verb} in {int(games[k])} battles: its rating is finite only because of the prior "
                f"({prior:g} virtual tied battle per pair that met); read it as '{side} its opponents', "
                "not as a measurement."
            )
    rated_groups = [g for g in bt.groups if any(games[tally.names.index(n)] > 0 for n in g)]
    if len(rated_groups) > 1:
        listed = " | ".join(", ".join(g) for g in rated_groups)
        notes.append(
            f"The contestants form {len(rated_groups)} groups that never met each other: {listed}. Ratings are "
            "anchored to a mean of 1000 within each group and are not comparable across groups."
        )
    if bias.significant:
        notes.append(
            f"Position bias: the left answer won {bias.rate:.1%} of {bias.decisive} decisive votes "
            f"(95% CI {bias.ci_low:.1%}-{bias.ci_high:.1%}); keep left/right randomised."
        )
    if bt.failed_rounds:
        notes.append(f"{bt.failed_rounds} of {bt.rounds} bootstrap rounds did not converge and were left out of the CIs.")
    if lc is not None and math.isnan(lc.coef):
        notes.append("Length control: the two answers of a battle never differ in length, so there is no length "
                     "effect to estimate; the '_lc' columns equal the plain ratings.")
    elif lc is not None:
        notes.append(
            f"Length control: +{lc.coef:.1f} rating points per standard deviation of relative length difference "
            f"(95% CI {lc.coef_ci_low:.1f} to {lc.coef_ci_high:.1f}); '_lc' columns are strengths at equal length."
        )
    return notes


# ----------------------------------------------------------------------------- output formats


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
                     "rating": "Bradley-Terry, Elo scale (400 points = 10x odds), mean 1000, 95% bootstrap CI"},
    }
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
    lines.append(f"{board.n_battles} battles; Bradley-Terry ratings (mean 1000) with 95% bootstrap CIs "
                 f"({board.rounds} rounds); rank = 1 + contestants whose CI lies entirely above.")
    lines += [""] + [f"- {w}" for w in board.warnings] if board.warnings else []
    return "\n".join(lines) + "\n"


def _fmt(value: float | None, digits: int, sign: bool = False) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _fmt_int(value: int | None) -> str:
    return "-" if value is None else str(value)


# ----------------------------------------------------------------------------- figures


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)  # explicit Agg canvas: savefig/draw never touch pyplot or a GUI backend
    return fig


def ratings_figure(board: Leaderboard) -> Figure:
    """Ratings with their 95% CIs as horizontal error bars, best at the top."""
    rows = [r for r in board.rows if not math.isnan(r.rating)][::-1]
    fig = _new_figure(7, max(2.5, 0.35 * len(rows) + 1.2))
    ax = fig.add_subplot()
    y = np.arange(len(rows))
    rating = np.array([r.rating for r in rows])
    err = np.array([[r.rating - r.ci_low for r in rows], [r.ci_high - r.rating for r in rows]])
    ax.errorbar(rating, y, xerr=err, fmt="o", capsize=3, color="tab:blue", label="Bradley-Terry (95% CI)")
    if board.length_control is not None:
        ax.plot([r.rating_lc for r in rows], y + 0.2, "D", color="tab:orange", markersize=4, zorder=3,
                label="length-controlled")
        ax.legend(loc="best", fontsize=8)
    ax.set_yticks(y, [r.contestant for r in rows])
    ax.set_xlabel("rating (Elo scale)")
    ax.set_title(f"Ratings from {board.n_battles} battles")
    ax.grid(axis="x", alpha=0.3)
    return fig


def _heatmap(board: Leaderboard, matrix: np.ndarray, title: str, fmt: str, cmap: str, vmin=None, vmax=None) -> Figure:
    n = len(board.names)
    fig = _new_figure(max(4.5, 0.55 * n + 2.5), max(4.0, 0.5 * n + 2))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xticks(range(n), board.names, rotation=45, ha="right")
    ax.set_yticks(range(n), board.names)
    ax.set_xlabel("opponent")
    ax.set_title(title)
    if n <= 15:
        for i in range(n):
            for j in range(n):
                if not math.isnan(matrix[i, j]) and i != j:
                    ax.text(j, i, format(matrix[i, j], fmt), ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, shrink=0.8)
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
