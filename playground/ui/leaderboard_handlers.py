"""The Leaderboard tab's handlers: filters in, ratings, diagnostics, figures and files out.

Plain functions that tests call without a browser (no Gradio here; ui/leaderboard_tab.py lays out
the tab and turns these views into component updates): `refresh` (filters -> table, diagnostics,
figures, the category and contestant choices), `category_view` (per-category ratings), and the
download handlers `board_files` and `export_view`, which write files only when the user asks for
them (a Refresh builds none). Every call opens its own database connection; download files go to
a fresh temporary folder, deleted as soon as Gradio has copied them into its cache (see
`request_dir`). One piece (just past 500 lines): the handlers share the filter types and messages.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from plotly.graph_objects import Figure

from playground.dates import parse_when
from playground.errors import PlaygroundError
from playground.export import PreferenceFilters, export_arena_battles, export_dpo, export_kto
from playground.leaderboard import (GROUPINGS, BoardOptions, Leaderboard, battles_shown, category_counts, rank_votes,
                                    tie_model_text, to_csv, to_json, to_markdown)
from playground.leaderboard.interactive import battle_count_plot, predicted_win_rate_plot, ratings_plot, win_rate_plot
from playground.ranking import TIE_MODELS, PositionBias
from storage import count_votes, open_database
from storage.voters import VOTER_GROUPS

DEFAULT_ROUNDS = 1000
MAX_ROUNDS = 10_000
CATEGORY_ROUNDS = 200  # per-category boards: enough for a 95% interval, five times faster
BOTH_BAD_CHOICES = ("tie", "exclude")
ANY = ""  # the "no filter" choice of the category and export dropdowns
NO_BATTLES_MESSAGE = (
    "**No battles yet.** Ask a question in the **Arena** tab and vote on the two answers (or judge two panes "
    "in the **Playground**), or import Arena battles with `python app.py import battles FILE`, then press "
    "**Refresh**."
)
ONLY_NAMED_MESSAGE = (
    "**No anonymous battles yet.** The leaderboard ranks blind **Arena** battles by default (as Chatbot Arena "
    "does); your {n} vote(s) are named Playground comparisons. Tick **Include named comparisons** to rank "
    "them too, or vote in the **Arena** tab."
)
TABLE_HEADERS = ["Rank", "Contestant", "Rating", "95% CI", "Elo", "Battles", "W / L / T", "Win rate %"]
LC_HEADERS = ["Rating (LC)", "95% CI (LC)", "Rank (LC)"]
CATEGORY_HEADERS = ["Category", "Rank", "Contestant", "Rating", "95% CI", "Battles"]
PLOTS = ("ratings", "winrate", "counts", "predicted")
HEATMAPS = ("winrate", "counts", "predicted")  # drawn when their accordion is open: ~0.5 s each at 40 contestants
BOARD_FILES = {"csv": "leaderboard.csv", "json": "leaderboard.json", "md": "leaderboard.md"}
DATA_FILES = ("dpo", "dpo_meta", "dpo_conv", "dpo_conv_meta", "kto", "battles")
_OWN_LINES = ("Position bias:", "Length control:")  # warnings shown as their own diagnostic lines


class InvalidFilter(PlaygroundError):
    """A filter the user typed cannot be used (bad date, rounds out of range)."""


@dataclass(frozen=True)
class BoardFilters:
    """The leaderboard's filters as the UI hands them over (text dates, a float from gr.Number)."""

    by: str = "auto"
    include_named: bool = False
    since: str = ""
    until: str = ""
    both_bad: str = "tie"
    rounds: float | int | None = DEFAULT_ROUNDS
    length_control: bool = False
    tie_model: str = "half"
    category: str = ANY
    voters: str = "people"   # whose votes: people's, judge models' or both (storage/voters.py)


@dataclass(frozen=True)
class ExportFilters:
    """Filters only the data exports use; the date range comes from BoardFilters. Exports take named
    comparisons too unless `anonymous_only` (DPO pairs from the Playground are as good as blind ones)."""

    model: str = ANY
    mode: str = ANY
    dedupe: bool = True
    anonymous_only: bool = False


@dataclass(frozen=True)
class Window:
    """A validated vote-time window, epoch seconds: since <= t < until."""

    since: float | None
    until: float | None


@dataclass
class BoardView:
    """What the leaderboard part of the tab shows. `valid=False`: bad input, keep what is shown."""

    message: str
    valid: bool = True
    table: pd.DataFrame = field(default_factory=lambda: empty_table(False))
    diagnostics: str = ""
    figures: dict[str, Figure | None] = field(default_factory=lambda: dict.fromkeys(PLOTS))
    board: Leaderboard | None = None


@dataclass
class ExportView:
    """Download files (None = nothing to offer) and what to tell the user about them."""

    message: str
    files: dict[str, Path | None] = field(default_factory=lambda: dict.fromkeys(DATA_FILES))


@dataclass
class TabView:
    """Everything one Refresh produces: the board, and the choices of the category and export filters."""

    board: BoardView
    models: list[str]
    modes: list[str]
    categories: dict[str, int]

    @property
    def message(self) -> str:
        return self.board.message


# ----------------------------------------------------------------------------- input


def parse_date(label: str, text: str | None, *, end_of_day: bool = False) -> float | None:
    """A date box -> epoch seconds (playground/dates.py: the CLI reads the same); empty means no limit."""
    try:
        return parse_when(text, end_of_day=end_of_day)
    except PlaygroundError as exc:
        raise InvalidFilter(f"**{label}:** {exc}, or leave the box empty for no limit.") from None


def parse_window(since: str | None, until: str | None) -> Window:
    """Both date boxes, validated together (the range must not be empty)."""
    window = Window(parse_date("Since", since), parse_date("Until", until, end_of_day=True))
    if window.since is not None and window.until is not None and window.since >= window.until:
        raise InvalidFilter(f"**Date range is empty:** 'Since' ({since.strip()}) must be before "
                            f"'Until' ({until.strip()}).")
    return window


def parse_rounds(value: float | int | str | None) -> int:
    """gr.Number hands over a float (or None when cleared); the bootstrap needs a whole count."""
    try:
        rounds = float(value) if value not in (None, "") else float("nan")
    except (TypeError, ValueError):
        rounds = float("nan")
    if math.isnan(rounds) or rounds != int(rounds) or not 0 <= rounds <= MAX_ROUNDS:
        raise InvalidFilter(f"**Bootstrap rounds:** use a whole number from 0 to {MAX_ROUNDS} "
                            f"(default {DEFAULT_ROUNDS}; 0 skips the confidence intervals).")
    return int(rounds)


def check_choice(label: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise InvalidFilter(f"**{label}:** {value!r} is not one of {', '.join(choices)}.")
    return value


def shown_battles(include_named: bool, voters: str = "people") -> str:
    """Which battles and whose votes the table ranks, in words (the table says it, the files too)."""
    return battles_shown(include_named, "'Include named comparisons'", voters)


# ----------------------------------------------------------------------------- the leaderboard


@dataclass(frozen=True)
class _Ranked:
    board: Leaderboard
    note: str  # what 'auto' chose, or ""


def rank(db_path: str | Path, filters: BoardFilters, families: Mapping[str, str] | None = None,
         rounds: int | None = None) -> _Ranked | BoardView:
    """The fit behind the table (and behind its files); a BoardView when there is nothing to rank."""
    try:
        window = parse_window(filters.since, filters.until)
        rounds = parse_rounds(filters.rounds) if rounds is None else rounds
        by = check_choice("Contestant", filters.by, GROUPINGS)
        both_bad = check_choice("'Both bad' votes", filters.both_bad, BOTH_BAD_CHOICES)
        tie_model = check_choice("Ties", filters.tie_model, TIE_MODELS)
        voters = check_choice("Votes from", filters.voters, VOTER_GROUPS)
    except InvalidFilter as exc:
        return BoardView(message=f"⚠️ {exc}", valid=False)
    options = BoardOptions(by=by, include_named=filters.include_named, since=window.since, until=window.until,
                           both_bad=both_bad, length_control=filters.length_control, tie_model=tie_model,
                           category=filters.category or None, voters=voters, rounds=rounds)
    with closing(open_database(db_path)) as db:
        total = count_votes(db)
        if total == 0:
            return BoardView(message=NO_BATTLES_MESSAGE)
        ranked = rank_votes(db, options, families, shows=shown_battles(filters.include_named, voters))
    if ranked.board is None and ranked.named_only:
        return BoardView(message=ONLY_NAMED_MESSAGE.format(n=total), table=empty_table(filters.length_control))
    if ranked.board is None:
        return BoardView(message="**No battles match these filters.** Widen the date range, pick another category, "
                                 "tick 'Include named comparisons' or change 'Votes from'.",
                         table=empty_table(filters.length_control))
    return _Ranked(ranked.board, ranked.note)


def leaderboard_view(db_path: str | Path, filters: BoardFilters,
                     families: Mapping[str, str] | None = None, heatmaps: bool = True) -> BoardView:
    """Rank the contestants under `filters`: the table, the diagnostics and the figures; no files.
    The heatmaps are drawn only with `heatmaps` (the tab asks for them when their section is open).

    Never raises for things a user can cause: bad filters, an empty database or filters that
    match nothing come back as a message that says what to do next.
    """
    try:
        ranked = rank(db_path, filters, families)
    except PlaygroundError as exc:
        return BoardView(message=f"❌ {exc}")
    if isinstance(ranked, BoardView):
        return ranked
    board = ranked.board
    message = (f"Ranked {len(board.rows)} contestants from {board.n_battles} battle{_s(board.n_battles)} "
               f"({board.shows}).")
    if filters.category:
        message += f" Category: **{filters.category}**."
    return BoardView(
        message=(ranked.note + "\n\n" + message) if ranked.note else message,
        table=board_table(board),
        diagnostics=diagnostics_markdown(board),
        figures=board_figures(board, heatmaps),
        board=board,
    )


def empty_table(length_control: bool) -> pd.DataFrame:
    return pd.DataFrame(columns=table_headers(length_control))


def board_table(board: Leaderboard) -> pd.DataFrame:
    """One row per contestant in rank order (then rating). Numbers stay numbers (the table sorts by
    them), rounded for reading; an unrated contestant has empty rating cells (the warnings say why)."""
    has_lc = board.length_control is not None
    rows = []
    for r in board.rows:
        row = [r.rank, r.contestant, _round(r.rating), _ci(r.ci_low, r.ci_high), _round(r.elo), r.battles,
               f"{r.wins} / {r.losses} / {r.ties}", _round(100 * r.win_rate, 1)]
        if has_lc:
            row += [_round(r.rating_lc), _ci(r.ci_low_lc, r.ci_high_lc), r.rank_lc]
        rows.append(row)
    return pd.DataFrame(rows, columns=table_headers(has_lc), dtype=object)


def table_headers(length_control: bool) -> list[str]:
    return TABLE_HEADERS + (LC_HEADERS if length_control else [])


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _round(value: float | None, digits: int = 0) -> int | float | None:
    if _missing(value):
        return None
    return round(value, digits) if digits else int(round(value))


def _ci(low: float | None, high: float | None) -> str:
    return "–" if _missing(low) or _missing(high) else f"{low:.0f} – {high:.0f}"


def diagnostics_markdown(board: Leaderboard) -> str:
    """How to read the table, the position-bias check, the length effect, then the warnings."""
    both_bad = "counted as ties" if board.both_bad == "tie" else "left out"
    lines = [f"**{board.n_battles} battle{_s(board.n_battles)}, {len(board.rows)} contestants** ({board.shows}). Rating = "
             f"Bradley-Terry on the Elo scale (mean 1000, no prior) with a 95% bootstrap CI over {board.rounds} "
             f"rounds; rank = 1 + contestants whose CI lies entirely above; Elo = online Elo in vote order; "
             f"'both bad' votes {both_bad}; {tie_model_text(board)}.",
             position_bias_line(board.position_bias)]
    if board.length_control is not None:
        lines.append(length_control_line(board))
    warnings = [w for w in board.warnings if not w.startswith(_OWN_LINES)]
    if warnings:
        lines.append("**⚠️ Before trusting the table:**\n" + "\n".join(f"- {w}" for w in warnings))
    return "\n\n".join(lines)


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def position_bias_line(bias: PositionBias) -> str:
    """The left-side win rate with its Wilson interval; 50% is what randomised sides should give."""
    if bias.decisive == 0:
        return "**Position bias:** no decisive (left or right) anonymous votes yet, nothing to check."
    verdict = ("⚠️ voters favour one side; keep left/right randomised" if bias.significant
               else "no clear bias (50% lies inside the interval)")
    return (f"**Position bias** (anonymous battles): the left answer won {bias.left_wins} of {bias.decisive} decisive votes "
            f"({bias.rate:.1%}, 95% Wilson CI {bias.ci_low:.1%} – {bias.ci_high:.1%}): {verdict}.")


def length_control_line(board: Leaderboard) -> str:
    lc = board.length_control
    if lc is None or math.isnan(lc.coef):
        return ("**Length control:** the two answers of a battle never differ in length, so there is no length "
                "effect to estimate; the (LC) columns equal the plain ratings.")
    return (f"**Length control:** {lc.coef:+.1f} rating points per standard deviation of relative length "
            f"difference (95% CI {lc.coef_ci_low:+.1f} to {lc.coef_ci_high:+.1f}); the (LC) columns are "
            "strengths at equal answer length.")


def board_figures(board: Leaderboard, heatmaps: bool = True) -> dict[str, Figure | None]:
    """The ratings plot, and the three heatmaps when asked for (None otherwise: left as shown);
    plotly, so a hover shows each rating's interval and each cell's figure (the matplotlib versions
    in leaderboard/figures.py are for files)."""
    figures: dict[str, Figure | None] = {"ratings": ratings_plot(board), **dict.fromkeys(HEATMAPS)}
    if heatmaps:
        figures.update(heatmap_figures(board))
    return figures


def heatmap_figures(board: Leaderboard) -> dict[str, Figure]:
    return {"winrate": win_rate_plot(board), "counts": battle_count_plot(board),
            "predicted": predicted_win_rate_plot(board)}


# ----------------------------------------------------------------------------- categories


def category_view(db_path: str | Path, filters: BoardFilters, families: Mapping[str, str] | None = None
                  ) -> tuple[str, pd.DataFrame]:
    """Per-category ratings with intervals (Arena's category boards, on the local votes).

    A category is a battle's tag, else its prompting preset's task family. Each category is
    ranked on its own battles with CATEGORY_ROUNDS bootstrap rounds; a category where nothing
    can be ranked is listed in the message instead.
    """
    empty = pd.DataFrame(columns=CATEGORY_HEADERS)
    try:
        with closing(open_database(db_path)) as db:
            counts = category_counts(db, families or {}, include_named=filters.include_named,
                                     voters=filters.voters)
    except PlaygroundError as exc:
        return f"❌ {exc}", empty
    rows, skipped = [], []
    for category in counts:
        try:
            ranked = rank(db_path, replace(filters, category=category, length_control=False), families,
                          rounds=CATEGORY_ROUNDS)
        except PlaygroundError as exc:
            skipped.append(f"{category} ({exc})")
            continue
        if isinstance(ranked, BoardView):
            if not ranked.valid:
                return ranked.message, empty
            skipped.append(category)
            continue
        rows += [[category, r.rank, r.contestant, _round(r.rating), _ci(r.ci_low, r.ci_high), r.battles]
                 for r in ranked.board.rows]
    if not counts:
        return "**No categories yet:** no battle matches the filters.", empty
    note = f"{len(counts)} categories ({', '.join(f'{c}: {n}' for c, n in counts.items())} battles); " \
           f"{CATEGORY_ROUNDS} bootstrap rounds each."
    if skipped:
        note += f" Nothing to rank in: {', '.join(skipped)}."
    return note, pd.DataFrame(rows, columns=CATEGORY_HEADERS, dtype=object)


def category_choices(counts: Mapping[str, int]) -> list[tuple[str, str]]:
    return [("all categories", ANY), *((f"{c} ({n})", c) for c, n in counts.items())]


# ----------------------------------------------------------------------------- downloads (built on request)


def board_files(db_path: str | Path, filters: BoardFilters, out_dir: str | Path,
                families: Mapping[str, str] | None = None) -> ExportView:
    """The leaderboard as shown (same filters and seed, so the same numbers) as CSV, JSON and Markdown."""
    try:
        ranked = rank(db_path, filters, families)
    except PlaygroundError as exc:
        return ExportView(message=f"❌ Leaderboard files not prepared: {exc}", files=dict.fromkeys(BOARD_FILES))
    if isinstance(ranked, BoardView):
        return ExportView(message=ranked.message, files=dict.fromkeys(BOARD_FILES))
    try:
        files = write_board_files(ranked.board, Path(out_dir))
    except OSError as exc:  # the temporary folder is full or gone
        return ExportView(message=f"❌ Cannot write the leaderboard files to {out_dir}: {exc.strerror or exc}.",
                          files=dict.fromkeys(BOARD_FILES))
    return ExportView(message="Leaderboard files ready: CSV, JSON and Markdown of the table above.", files=files)


def write_board_files(board: Leaderboard, out_dir: Path) -> dict[str, Path | None]:
    """The leaderboard as files (rendered from one fit, so they match the table exactly)."""
    render = {"csv": to_csv, "json": to_json, "md": to_markdown}
    files: dict[str, Path | None] = {}
    for key, name in BOARD_FILES.items():
        path = out_dir / name
        path.write_text(render[key](board), encoding="utf-8")
        files[key] = path
    return files


def export_view(db_path: str | Path, filters: BoardFilters, export_filters: ExportFilters,
                out_dir: str | Path) -> ExportView:
    """DPO pairs (standard and conversational, each with its sidecar) and Arena battles under the filters.

    Uses the leaderboard's date range plus the export-only filters; a file that would be empty
    is not offered, and the message says why.
    """
    try:
        window = parse_window(filters.since, filters.until)
    except InvalidFilter as exc:
        return ExportView(message=f"⚠️ Downloads not prepared. {exc}")
    out_dir = Path(out_dir)
    common = {"model": export_filters.model or None, "mode": export_filters.mode or None,
              "since": window.since, "until": window.until, "anonymous_only": export_filters.anonymous_only,
              "voters": filters.voters}
    try:
        with closing(open_database(db_path)) as db:
            if count_votes(db) == 0:
                return ExportView(message=NO_BATTLES_MESSAGE)
            preferences = PreferenceFilters(**common, include_truncated=True)  # the sidecars flag cut answers
            standard = export_dpo(db, out_dir / "dpo-standard.jsonl", preferences, format="standard",
                                  dedupe=export_filters.dedupe)
            conversational = export_dpo(db, out_dir / "dpo-conversational.jsonl", preferences,
                                        format="conversational", dedupe=export_filters.dedupe)
            kto = export_kto(db, out_dir / "kto.jsonl", preferences, format="standard", dedupe=export_filters.dedupe)
            battles = export_arena_battles(db, out_dir / "arena-battles.json", **common)
    except PlaygroundError as exc:
        return ExportView(message=f"❌ Downloads not prepared: {exc}")
    files: dict[str, Path | None] = dict.fromkeys(DATA_FILES)
    notes = []
    if standard.written:
        files.update(dpo=standard.path, dpo_meta=standard.meta_path,
                     dpo_conv=conversational.path, dpo_conv_meta=conversational.meta_path)
    else:
        notes.append("**Nothing to export as DPO pairs:** only decisive votes (one answer better) with a user "
                     "turn and two non-empty answers become pairs, and none match the filters.")
    if kto.written:
        files["kto"] = kto.path
    else:
        notes.append("**Nothing to export as KTO rows:** decisive and both-bad votes become rows (ties give none), "
                     "and none match the filters.")
    if battles.written:
        files["battles"] = battles.path
    else:
        notes.append("**No battles to export:** no voted battle matches the filters.")
    return ExportView(message="\n\n".join(notes) or "Training data files ready.", files=files)


def contestant_options(db_path: str | Path) -> tuple[list[str], list[str]]:
    """Models and non-empty modes that appear in battles, for the export filters."""
    try:
        with closing(open_database(db_path)) as db:
            models = _distinct_sides(db, "model")
            modes = [m for m in _distinct_sides(db, "mode") if m]
    except PlaygroundError:
        return [], []
    return models, modes


def _distinct_sides(db: Any, column: str) -> list[str]:
    sql = f"SELECT left_{column} FROM battles UNION SELECT right_{column} FROM battles"
    return sorted(value for (value,) in db.execute(sql) if value is not None)


# ----------------------------------------------------------------------------- refresh


def refresh(db_path: str | Path, filters: BoardFilters, families: Mapping[str, str] | None = None,
            heatmaps: bool = True) -> TabView:
    """One Refresh: the leaderboard and the filter choices. No download file is built here."""
    board = leaderboard_view(db_path, filters, families, heatmaps)
    models, modes = contestant_options(db_path)
    try:
        with closing(open_database(db_path)) as db:
            categories = category_counts(db, families or {}, include_named=filters.include_named,
                                         voters=filters.voters)
    except PlaygroundError:
        categories = {}
    return TabView(board=board, models=models, modes=modes, categories=categories)


@contextmanager
def request_dir() -> Iterator[Path]:
    """A fresh folder for one request's files (concurrent users never overwrite each other's), removed
    when the block ends. Handlers yield their outputs inside the block: Gradio copies returned files
    into its own cache before it resumes the generator, so the folder is gone once the response is out,
    for browsers and API clients alike."""
    path = Path(tempfile.mkdtemp(prefix="playground-leaderboard-"))
    try:
        yield path
    finally:
        remove_dir(path)


def remove_dir(path: str | Path | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def preset_families(ctx: Any) -> dict[str, str]:
    """Prompting preset id -> task family, for categories (empty when the context has no presets)."""
    presets = getattr(getattr(ctx, "presets", None), "prompting", {}) or {}
    return {preset_id: preset.family for preset_id, preset in presets.items()}
