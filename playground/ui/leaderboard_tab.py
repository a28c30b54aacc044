"""The Leaderboard tab: ratings with CIs, diagnostics, categories, plots and downloads, from the votes.

One piece on purpose (past 500 lines): the handlers below share the filter types and messages,
and the download handlers are wrapped with role checks, which is easier in one place.

The logic is in plain functions that tests call without a browser: `refresh` (filters -> table,
diagnostics, figures, the category and contestant choices), `category_view` (per-category
ratings), and the download handlers `board_files` and `export_view`, which write files only
when the user asks for them (a Refresh builds none). Every call opens its own database
connection; download files go to a fresh temporary folder, deleted as soon as Gradio has copied
them into its cache (see `request_dir`). `build` lays out the components and wires them.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.context import Context
from matplotlib.figure import Figure

from playground.context import AppContext
from playground.ui import judges_panel
from playground.errors import PlaygroundError
from playground.export import export_arena_battles, export_dpo, export_kto
from playground.leaderboard import (GROUPINGS, Leaderboard, battle_count_figure, battles_shown, build_leaderboard,
                                    category_counts, has_anonymous_votes, predicted_win_rate_figure, ratings_figure,
                                    select_battles, tie_model_text, to_csv, to_json, to_markdown, win_rate_figure)
from playground.ranking import TIE_MODELS, PositionBias
from storage import count_votes, open_database
from storage.voters import VOTER_GROUPS

DEFAULT_ROUNDS = 1000
MAX_ROUNDS = 10_000
CATEGORY_ROUNDS = 200  # per-category boards: enough for a 95% interval, five times faster
BOTH_BAD_CHOICES = ("tie", "exclude")
TIE_CHOICES = [("tie = half a win", "half"), ("Davidson tie model", "davidson")]
GROUPING_CHOICES = [("auto", "auto"), ("model", "model"), ("mode", "mode"), ("model + mode", "model+mode")]
VOTER_CHOICES = [("people", "people"), ("judge models", "judges"), ("both", "both")]  # whose votes count
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
TABLE_TYPES = ["number", "str", "number", "str", "number", "number", "str", "number"]
LC_HEADERS = ["Rating (LC)", "95% CI (LC)", "Rank (LC)"]
LC_TYPES = ["number", "str", "number"]
CATEGORY_HEADERS = ["Category", "Rank", "Contestant", "Rating", "95% CI", "Battles"]
PLOTS = ("ratings", "winrate", "counts", "predicted")
HEATMAPS = ("winrate", "counts", "predicted")  # drawn when their accordion is open: ~0.5 s each at 40 contestants
BOARD_FILES = {"csv": "leaderboard.csv", "json": "leaderboard.json", "md": "leaderboard.md"}
DATA_FILES = ("dpo", "dpo_meta", "dpo_conv", "dpo_conv_meta", "kto", "battles")
HEATMAP_GUIDE = (
    "**Reading the heatmaps.** Each cell is the row contestant against the column contestant. *Observed win "
    "rate* is the share of points the row took in their battles (a tie counts half; blank where they never "
    "met); *predicted win rate* is what the ratings imply for that pair. Where the two disagree strongly, the "
    "pair either met only a few times (see *battle counts*) or their results do not fit a single strength "
    "scale (e.g. A beats B, B beats C, C beats A)."
)
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
    """An ISO date (or date-time) typed in a box -> epoch seconds; naive means UTC, empty means no limit.

    With `end_of_day` a bare date means the end of that day, so 'until 2025-01-31' includes the 31st
    (the same rule as the CLI's --until).
    """
    text = (text or "").strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidFilter(f"**{label}:** cannot read {text!r} as a date. Type an ISO date such as "
                            "`2025-01-31` (optionally with a time, `2025-01-31T14:30`; UTC unless a zone "
                            "is given), or leave the box empty for no limit.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment.timestamp()


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
    with closing(open_database(db_path)) as db:
        total = count_votes(db)
        if total == 0:
            return BoardView(message=NO_BATTLES_MESSAGE)
        chosen = select_battles(db, by=by, include_named=filters.include_named, since=window.since,
                                until=window.until, with_lengths=filters.length_control,
                                category=filters.category or None, families=families, voters=voters)
        battles = chosen.battles
        if len(battles) == 0 and not filters.include_named and not has_anonymous_votes(db, voters):
            return BoardView(message=ONLY_NAMED_MESSAGE.format(n=total), table=empty_table(filters.length_control))
    if len(battles) == 0:
        return BoardView(message="**No battles match these filters.** Widen the date range, pick another category, "
                                 "tick 'Include named comparisons' or change 'Votes from'.",
                         table=empty_table(filters.length_control))
    board = build_leaderboard(battles, rounds=rounds, both_bad=both_bad, length_control=filters.length_control,
                              tie_model=tie_model, shows=shown_battles(filters.include_named, voters),
                              blind=chosen.blind, grouping=chosen.grouping)
    return _Ranked(board, chosen.note)


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


def table_update(table: pd.DataFrame) -> Any:
    """The table with a column type each, so the browser sorts numbers as numbers."""
    types = TABLE_TYPES + (LC_TYPES if len(table.columns) > len(TABLE_HEADERS) else [])
    return gr.update(value=table, datatype=types)


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
    """The ratings plot, and the three heatmaps when asked for (None otherwise: left as shown)."""
    figures: dict[str, Figure | None] = {"ratings": ratings_figure(board), **dict.fromkeys(HEATMAPS)}
    if heatmaps:
        figures.update(heatmap_figures(board))
    return figures


def heatmap_figures(board: Leaderboard) -> dict[str, Figure]:
    return {"winrate": win_rate_figure(board), "counts": battle_count_figure(board),
            "predicted": predicted_win_rate_figure(board)}


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
            standard = export_dpo(db, out_dir / "dpo-standard.jsonl", format="standard",
                                  dedupe=export_filters.dedupe, **common)
            conversational = export_dpo(db, out_dir / "dpo-conversational.jsonl", format="conversational",
                                        dedupe=export_filters.dedupe, **common)
            kto = export_kto(db, out_dir / "kto.jsonl", format="standard", dedupe=export_filters.dedupe, **common)
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


# ----------------------------------------------------------------------------- layout


def build(ctx: AppContext) -> None:
    """Lay out the Leaderboard tab and compute it whenever the tab is opened."""
    families = preset_families(ctx)
    gr.Markdown("Ratings from the stored votes: blind Arena battles by default. Change a filter, or press "
                "**Refresh** (the table is also recomputed each time this tab is opened).")
    with gr.Row(equal_height=True):
        by = gr.Radio(GROUPING_CHOICES, value="auto", label="Contestant", elem_id="lb-by", scale=2,
                      info="auto: by model, or model + mode when battles compare modes of one model")
        both_bad = gr.Radio(list(BOTH_BAD_CHOICES), value="tie", label="'Both bad' votes", elem_id="lb-both-bad",
                            scale=1)
        ties = gr.Radio(TIE_CHOICES, value="half", label="Ties", elem_id="lb-ties", scale=1)
        with gr.Column(scale=1, min_width=220):
            named = gr.Checkbox(label="Include named comparisons", elem_id="lb-include-named",
                                info="Playground votes, where you knew the models")
            length = gr.Checkbox(label="Length control", elem_id="lb-length-control",
                                 info="Also rate at equal answer length")
        voters = gr.Radio(VOTER_CHOICES, value="people", label="Votes from", elem_id="lb-voters", scale=1,
                          info="judge models: python app.py judge (kept apart from people's votes)")
    with gr.Row(equal_height=True):
        category = gr.Dropdown([("all categories", ANY)], value=ANY, label="Category (tag or task family)",
                               elem_id="lb-category", scale=2)
        since = gr.Textbox(label="Since (UTC date)", placeholder="YYYY-MM-DD", elem_id="lb-since", scale=1)
        until = gr.Textbox(label="Until (UTC date, inclusive)", placeholder="YYYY-MM-DD", elem_id="lb-until",
                           scale=1)
        rounds = gr.Number(DEFAULT_ROUNDS, precision=0, minimum=0, maximum=MAX_ROUNDS, label="Bootstrap rounds",
                           elem_id="lb-rounds", scale=1)
        refresh_btn = gr.Button("Refresh", variant="primary", elem_id="lb-refresh", scale=1)
    message = gr.Markdown(elem_id="lb-message")
    table = gr.Dataframe(empty_table(False), datatype=TABLE_TYPES, interactive=False, wrap=True, label="Leaderboard",
                         elem_id="lb-table", max_height=520)
    diagnostics = gr.Markdown(elem_id="lb-warnings")
    with gr.Accordion("Ratings by category", open=False, elem_id="lb-categories"):
        category_btn = gr.Button("Rank each category", size="sm", elem_id="lb-category-rank")
        category_note = gr.Markdown(elem_id="lb-category-note")
        category_table = gr.Dataframe(pd.DataFrame(columns=CATEGORY_HEADERS), interactive=False, wrap=True,
                                      elem_id="lb-category-table", max_height=420)
    downloads = _download_section()  # above the plots: near the table and the message it reports to
    with gr.Column(visible=False, elem_id="lb-plots") as plot_area:  # shown once there is something to draw
        plot_ratings = _plot("Ratings with 95% CI", "lb-plot-ratings")
        with gr.Accordion("Heatmaps: observed and predicted win rates, battle counts", open=False,
                          elem_id="lb-heatmaps") as heatmap_box:
            with gr.Row():  # two per row: with ten contestants three in a row would be unreadable
                plot_winrate = _plot("Observed win rate", "lb-plot-winrate")
                plot_predicted = _plot("Predicted win rate", "lb-plot-predicted")
            with gr.Row():
                plot_counts = _plot("Battle counts", "lb-plot-counts")
                gr.Markdown(HEATMAP_GUIDE, elem_id="lb-heatmap-guide")
    judges_panel.build(ctx)   # judge models' agreement with people
    heatmaps_open = gr.State(False)

    board_inputs = [by, named, since, until, both_bad, rounds, length, ties, category, voters]
    export_inputs = [downloads.model, downloads.mode, downloads.dedupe, downloads.anonymous]
    plots = [plot_ratings, plot_winrate, plot_counts, plot_predicted]

    def on_refresh(*values: Any) -> list[Any]:
        filters = BoardFilters(*values[:-1])
        return refresh_outputs(refresh(ctx.settings.db_path, filters, families, heatmaps=values[-1]), filters)

    def on_heatmaps(*values: Any) -> list[Any]:
        view = leaderboard_view(ctx.settings.db_path, BoardFilters(*values), families, heatmaps=True)
        figures = view.figures if view.board is not None else dict.fromkeys(HEATMAPS)
        return [True, *(figures[name] for name in ("winrate", "counts", "predicted"))]

    def on_board_files(*values: Any) -> Iterator[list[Any]]:
        with request_dir() as out_dir:
            view = board_files(ctx.settings.db_path, BoardFilters(*values), out_dir, families)
            yield [view.message, *download_updates(view.files, tuple(BOARD_FILES))]

    def on_data_files(*values: Any) -> Iterator[list[Any]]:
        with request_dir() as out_dir:
            n = len(board_inputs)
            view = export_view(ctx.settings.db_path, BoardFilters(*values[:n]), ExportFilters(*values[n:]), out_dir)
            yield [view.message, *download_updates(view.files, DATA_FILES)]

    def on_categories(*values: Any) -> list[Any]:
        return list(category_view(ctx.settings.db_path, BoardFilters(*values), families))

    triggers = _refresh_triggers(refresh_btn, [since.submit, until.submit, rounds.submit, by.input, both_bad.input,
                                               named.input, length.input, ties.input, category.input,
                                               voters.input])
    gr.on(triggers, on_refresh, [*board_inputs, heatmaps_open],
          [message, table, diagnostics, plot_area, *plots, category, downloads.model, downloads.mode,
           *downloads.board_buttons, *downloads.data_buttons],
          trigger_mode="always_last", api_name="leaderboard_refresh")
    downloads.board_prepare.click(on_board_files, board_inputs, [downloads.status, *downloads.board_buttons],
                                  api_name="leaderboard_prepare_files")
    downloads.data_prepare.click(on_data_files, [*board_inputs, *export_inputs],
                                 [downloads.status, *downloads.data_buttons], api_name="leaderboard_prepare_data")
    category_btn.click(on_categories, board_inputs, [category_note, category_table], api_visibility="private")
    heatmap_box.expand(on_heatmaps, board_inputs, [heatmaps_open, plot_winrate, plot_counts, plot_predicted],
                       api_visibility="private")
    heatmap_box.collapse(lambda: False, None, [heatmaps_open], queue=False, api_visibility="private")


def _refresh_triggers(refresh_btn: gr.Button, triggers: list[Any]) -> list[Any]:
    """Refresh and filter changes, plus opening the tab (or loading the page when not inside a tab)."""
    parent = Context.block
    if isinstance(parent, gr.Tab):
        return [refresh_btn.click, parent.select, *triggers]
    if Context.root_block is not None:
        return [refresh_btn.click, Context.root_block.load, *triggers]
    return [refresh_btn.click, *triggers]


@dataclass
class _Downloads:
    model: gr.Dropdown
    mode: gr.Dropdown
    dedupe: gr.Checkbox
    anonymous: gr.Checkbox
    status: gr.Markdown
    board_prepare: gr.Button
    data_prepare: gr.Button
    board_buttons: list[gr.DownloadButton]
    data_buttons: list[gr.DownloadButton]


def _download_section() -> _Downloads:
    """Download buttons: files are built when the user presses a Prepare button, not on every Refresh."""
    with gr.Accordion("Downloads", open=False, elem_id="lb-downloads"):
        status = gr.Markdown(elem_id="lb-download-status")
        with gr.Row(equal_height=True):
            board_prepare = gr.Button("Prepare leaderboard files", size="sm", elem_id="lb-prepare-board",
                                      min_width=180)
            board_buttons = [_button("Leaderboard CSV", "lb-download-csv"),
                             _button("Leaderboard JSON", "lb-download-json"),
                             _button("Leaderboard Markdown", "lb-download-md")]
        gr.Markdown("**Training data and battles** (same date range; DPO pairs come from decisive votes, in "
                    "TRL's format, with per-pair metadata in the `.meta.jsonl` sidecar; KTO rows: a decisive "
                    "vote gives one desirable and one undesirable row, both bad two undesirable, a tie none):",
                    elem_id="lb-data-note")
        with gr.Row(equal_height=True):  # ids must not end in '-model': ui/app.py fills those with the catalog
            model = gr.Dropdown([("any model", ANY)], value=ANY, label="Model (either side)",
                                elem_id="lb-model-filter")
            mode = gr.Dropdown([("any mode", ANY)], value=ANY, label="Mode (either side)", elem_id="lb-mode-filter")
            with gr.Column(min_width=200):
                dedupe = gr.Checkbox(value=True, label="Drop duplicate pairs", elem_id="lb-dedupe")
                anonymous = gr.Checkbox(value=False, label="Anonymous battles only", elem_id="lb-anonymous")
        with gr.Row():
            data_prepare = gr.Button("Prepare training data files", size="sm", elem_id="lb-prepare-data",
                                     min_width=180)
            data_buttons = [_button("DPO JSONL (standard)", "lb-download-dpo"),
                            _button("standard sidecar (.meta.jsonl)", "lb-download-dpo-meta"),
                            _button("DPO JSONL (conversational)", "lb-download-dpo-conv"),
                            _button("conversational sidecar (.meta.jsonl)", "lb-download-dpo-conv-meta"),
                            _button("KTO JSONL", "lb-download-kto"),
                            _button("Arena battles JSON", "lb-download-battles")]
    return _Downloads(model, mode, dedupe, anonymous, status, board_prepare, data_prepare, board_buttons,
                      data_buttons)


def _plot(label: str, elem_id: str) -> gr.Plot:
    """No label badge: it would cover the figure's own title."""
    return gr.Plot(label=label, show_label=False, format="png", elem_id=elem_id, min_width=300)


def _button(label: str, elem_id: str) -> gr.DownloadButton:
    return gr.DownloadButton(label, interactive=False, size="sm", elem_id=elem_id, min_width=120)


def refresh_outputs(view: TabView, filters: BoardFilters) -> list[Any]:
    """Component updates in `build`'s output order. The download buttons are emptied: their files
    described the previous table."""
    board = view.board
    updates = [
        table_update(board.table),
        board.diagnostics,
        gr.update(visible=board.figures.get("ratings") is not None),
        *(_figure_update(board.figures[name], name) for name in PLOTS),
        gr.update(choices=category_choices(view.categories),
                  value=filters.category if filters.category in view.categories else ANY),
        _choices_update("any model", view.models, None),
        _choices_update("any mode", view.modes, None),
        *download_updates({}, tuple(BOARD_FILES)),
        *download_updates({}, DATA_FILES),
    ]
    if not board.valid:  # a typo in a box: keep the last good table and files, say what to fix
        updates = [gr.skip()] * len(updates)
    return [view.message, *updates]


def _figure_update(figure: Figure | None, name: str) -> Any:
    """A heatmap not drawn (its section closed) stays as it is; the ratings plot always updates."""
    return gr.skip() if figure is None and name in HEATMAPS else figure


def download_updates(files: dict[str, Path | None], keys: tuple[str, ...]) -> list[Any]:
    """A button per file: enabled with its file, or disabled and empty when there is nothing to offer."""
    return [gr.update(value=str(files[k]), interactive=True) if files.get(k)
            else gr.update(value=None, interactive=False) for k in keys]


def _choices_update(any_label: str, values: list[str], current: str | None) -> Any:
    """New choices from the database; the current pick is kept by Gradio when it still exists."""
    choices = [(any_label, ANY), *((v, v) for v in values)]
    return gr.update(choices=choices) if current is None else gr.update(choices=choices, value=current)
