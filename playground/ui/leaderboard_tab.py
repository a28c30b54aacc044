"""The Leaderboard tab: ratings with CIs, diagnostics, plots and downloads, straight from the votes.

The logic is in plain functions that tests call without a browser:
`leaderboard_view` (filters -> table, diagnostics, figures and the leaderboard files),
`export_view` (export filters -> DPO JSONL, sidecars and Arena battles files) and `refresh`,
which runs both. Every call opens its own database connection and writes its files to a fresh
temporary folder, deleted as soon as Gradio has copied the files into its cache (see `request_dir`).
`build` lays out the components and wires them to these functions.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
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
from playground.export import export_arena_battles, export_dpo
from playground.leaderboard import (
    GROUPINGS,
    Leaderboard,
    battle_count_figure,
    build_leaderboard,
    load_battles,
    predicted_win_rate_figure,
    ratings_figure,
    to_csv,
    to_json,
    to_markdown,
    win_rate_figure,
)
from playground.ranking import PositionBias
from storage import count_votes, open_database

DEFAULT_ROUNDS = 1000
MAX_ROUNDS = 10_000
BOTH_BAD_CHOICES = ("tie", "exclude")
ANY = ""  # the export filters' "no filter" choice
NO_BATTLES_MESSAGE = (
    "**No battles yet.** Vote on answer pairs in the **Playground** or **Arena** tab, or import Arena "
    "battles with `python app.py import battles FILE`, then press **Refresh**."
)
TABLE_HEADERS = ["Rank", "Contestant", "Rating", "95% CI", "Elo", "Battles", "W / L / T", "Win rate %"]
TABLE_TYPES = ["number", "str", "number", "str", "number", "number", "str", "number"]
LC_HEADERS = ["Rating (LC)", "95% CI (LC)", "Rank (LC)"]
LC_TYPES = ["number", "str", "number"]
PLOTS = ("ratings", "winrate", "counts", "predicted")
BOARD_FILES = {"csv": "leaderboard.csv", "json": "leaderboard.json", "md": "leaderboard.md"}
DATA_FILES = ("dpo", "dpo_meta", "dpo_conv", "dpo_conv_meta", "battles")
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

    by: str = "model"
    anonymous_only: bool = False
    since: str = ""
    until: str = ""
    both_bad: str = "tie"
    rounds: float | int | None = DEFAULT_ROUNDS
    length_control: bool = False


@dataclass(frozen=True)
class ExportFilters:
    """Filters only the data exports use; the date range and anonymous-only come from BoardFilters."""

    model: str = ANY
    mode: str = ANY
    dedupe: bool = True


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
    files: dict[str, Path | None] = field(default_factory=lambda: dict.fromkeys(BOARD_FILES))
    board: Leaderboard | None = None


@dataclass
class ExportView:
    """The data export files (None = nothing to offer) and what to tell the user about them."""

    message: str
    files: dict[str, Path | None] = field(default_factory=lambda: dict.fromkeys(DATA_FILES))


@dataclass
class TabView:
    """Everything one Refresh produces."""

    board: BoardView
    exports: ExportView
    models: list[str]
    modes: list[str]

    @property
    def message(self) -> str:
        return "\n\n".join(m for m in (self.board.message, self.exports.message) if m)


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


# ----------------------------------------------------------------------------- the leaderboard


def leaderboard_view(db_path: str | Path, filters: BoardFilters, out_dir: str | Path) -> BoardView:
    """Rank the contestants under `filters`; write the CSV/JSON/Markdown of what is shown to `out_dir`.

    Never raises for things a user can cause: bad filters, an empty database or filters that
    match nothing come back as a message.
    """
    try:
        window = parse_window(filters.since, filters.until)
        rounds = parse_rounds(filters.rounds)
        by = check_choice("Contestant", filters.by, GROUPINGS)
        both_bad = check_choice("'Both bad' votes", filters.both_bad, BOTH_BAD_CHOICES)
    except InvalidFilter as exc:
        return BoardView(message=f"⚠️ {exc}", valid=False)
    try:
        with closing(open_database(db_path)) as db:
            if count_votes(db) == 0:
                return BoardView(message=NO_BATTLES_MESSAGE)
            battles = load_battles(db, by=by, anonymous_only=filters.anonymous_only, since=window.since,
                                   until=window.until, with_lengths=filters.length_control)
        if len(battles) == 0:
            return BoardView(message="**No battles match these filters.** Widen the date range or untick "
                                     "'Anonymous battles only'.", table=empty_table(filters.length_control))
        board = build_leaderboard(battles, rounds=rounds, both_bad=both_bad, length_control=filters.length_control)
        files = write_board_files(board, Path(out_dir))
    except PlaygroundError as exc:
        return BoardView(message=f"❌ {exc}")
    except OSError as exc:  # the temporary folder is full or gone
        return BoardView(message=f"❌ Cannot write the leaderboard files to {out_dir}: {exc.strerror or exc}.")
    return BoardView(
        message=f"Ranked {len(board.rows)} contestants from {board.n_battles} battles.",
        table=board_table(board),
        diagnostics=diagnostics_markdown(board),
        figures=board_figures(board),
        files=files,
        board=board,
    )


def empty_table(length_control: bool) -> pd.DataFrame:
    return pd.DataFrame(columns=table_headers(length_control))


def board_table(board: Leaderboard) -> pd.DataFrame:
    """One row per contestant, best first. Numbers stay numbers (the table sorts by them), rounded
    for reading; an unrated contestant has empty rating cells (the warnings say why)."""
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
    lines = [f"**{board.n_battles} battles, {len(board.rows)} contestants.** Rating = Bradley-Terry on the Elo "
             f"scale (mean 1000) with a 95% bootstrap CI over {board.rounds} rounds; rank = 1 + contestants "
             f"whose CI lies entirely above; Elo = online Elo in vote order; 'both bad' votes {both_bad}.",
             position_bias_line(board.position_bias)]
    if board.length_control is not None:
        lines.append(length_control_line(board))
    warnings = [w for w in board.warnings if not w.startswith(_OWN_LINES)]
    if warnings:
        lines.append("**⚠️ Before trusting the table:**\n" + "\n".join(f"- {w}" for w in warnings))
    return "\n\n".join(lines)


def position_bias_line(bias: PositionBias) -> str:
    """The left-side win rate with its Wilson interval; 50% is what randomised sides should give."""
    if bias.decisive == 0:
        return "**Position bias:** no decisive (left or right) votes yet, nothing to check."
    verdict = ("⚠️ voters favour one side; keep left/right randomised" if bias.significant
               else "no clear bias (50% lies inside the interval)")
    return (f"**Position bias:** the left answer won {bias.left_wins} of {bias.decisive} decisive votes "
            f"({bias.rate:.1%}, 95% Wilson CI {bias.ci_low:.1%} – {bias.ci_high:.1%}): {verdict}.")


def length_control_line(board: Leaderboard) -> str:
    lc = board.length_control
    if lc is None or math.isnan(lc.coef):
        return ("**Length control:** the two answers of a battle never differ in length, so there is no length "
                "effect to estimate; the (LC) columns equal the plain ratings.")
    return (f"**Length control:** {lc.coef:+.1f} rating points per standard deviation of relative length "
            f"difference (95% CI {lc.coef_ci_low:+.1f} to {lc.coef_ci_high:+.1f}); the (LC) columns are "
            "strengths at equal answer length.")


def board_figures(board: Leaderboard) -> dict[str, Figure]:
    figures = {"ratings": ratings_figure(board), "winrate": win_rate_figure(board),
               "counts": battle_count_figure(board), "predicted": predicted_win_rate_figure(board)}
    return {name: readable(figure) for name, figure in figures.items()}


def readable(figure: Figure, min_width: float = 5.5) -> Figure:
    """Fit the figures to the tab: with few contestants a heatmap is narrower than its title, and
    black cell labels vanish on the darkest colours, so titles get 10 pt and labels a contrasting colour."""
    figure.set_figwidth(max(figure.get_figwidth(), min_width))
    for ax in figure.axes:
        ax.title.set_fontsize(10)
        if ax.images:
            _contrast_cell_labels(ax)
    return figure


def _contrast_cell_labels(ax: Any) -> None:
    image = ax.images[0]
    for text in ax.texts:
        try:
            value = float(text.get_text())
        except ValueError:
            continue
        red, green, blue, _ = image.cmap(image.norm(value))
        text.set_color("white" if 0.299 * red + 0.587 * green + 0.114 * blue < 0.5 else "black")
        text.set_fontsize(8)


def write_board_files(board: Leaderboard, out_dir: Path) -> dict[str, Path | None]:
    """The shown leaderboard as files (rendered from the same fit, so they match the table exactly)."""
    render = {"csv": to_csv, "json": to_json, "md": to_markdown}
    files: dict[str, Path | None] = {}
    for key, name in BOARD_FILES.items():
        path = out_dir / name
        path.write_text(render[key](board), encoding="utf-8")
        files[key] = path
    return files


# ----------------------------------------------------------------------------- data exports


def export_view(db_path: str | Path, filters: BoardFilters, export_filters: ExportFilters,
                out_dir: str | Path) -> ExportView:
    """DPO pairs (standard and conversational, each with its sidecar) and Arena battles under the filters.

    Uses the leaderboard's date range and anonymous-only setting plus the export-only filters;
    a file that would be empty is not offered, and the message says why.
    """
    try:
        window = parse_window(filters.since, filters.until)
    except InvalidFilter as exc:
        return ExportView(message=f"⚠️ Downloads not prepared. {exc}")
    out_dir = Path(out_dir)
    common = {"model": export_filters.model or None, "mode": export_filters.mode or None,
              "since": window.since, "until": window.until, "anonymous_only": filters.anonymous_only}
    try:
        with closing(open_database(db_path)) as db:
            if count_votes(db) == 0:
                return ExportView(message="")  # the leaderboard's message already says how to get battles
            standard = export_dpo(db, out_dir / "dpo-standard.jsonl", format="standard",
                                  dedupe=export_filters.dedupe, **common)
            conversational = export_dpo(db, out_dir / "dpo-conversational.jsonl", format="conversational",
                                        dedupe=export_filters.dedupe, **common)
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
    if battles.written:
        files["battles"] = battles.path
    else:
        notes.append("**No battles to export:** no voted battle matches the filters.")
    return ExportView(message="\n\n".join(notes), files=files)


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


def refresh(db_path: str | Path, filters: BoardFilters, export_filters: ExportFilters, out_dir: str | Path) -> TabView:
    """One Refresh: the leaderboard, then the downloads (skipped when the filters are invalid)."""
    board = leaderboard_view(db_path, filters, out_dir)
    exports = export_view(db_path, filters, export_filters, out_dir) if board.valid else ExportView(message="")
    models, modes = contestant_options(db_path)
    return TabView(board=board, exports=exports, models=models, modes=modes)


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


# ----------------------------------------------------------------------------- layout


def build(ctx: AppContext) -> None:
    """Lay out the Leaderboard tab and compute it whenever the tab is opened."""
    gr.Markdown("Ratings from every stored vote. Change a filter, then press **Refresh** "
                "(the table is also recomputed each time this tab is opened).")
    with gr.Row(equal_height=True):
        by = gr.Radio(list(GROUPINGS), value="model", label="Contestant", elem_id="lb-by", scale=2)
        both_bad = gr.Radio(list(BOTH_BAD_CHOICES), value="tie", label="'Both bad' votes", elem_id="lb-both-bad",
                            scale=1)
        with gr.Column(scale=1, min_width=200):
            anonymous = gr.Checkbox(label="Anonymous battles only", elem_id="lb-anonymous")
            length = gr.Checkbox(label="Length control", elem_id="lb-length-control",
                                 info="Also rate at equal answer length")
    with gr.Row(equal_height=True):
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
    downloads = _download_section()  # above the plots: near the table and the message it reports to
    with gr.Column(visible=False, elem_id="lb-plots") as plot_area:  # shown once there is something to draw
        plot_ratings = _plot("Ratings with 95% CI", "lb-plot-ratings")
        with gr.Row():  # two per row: with ten contestants three in a row would be unreadable
            plot_winrate = _plot("Observed win rate", "lb-plot-winrate")
            plot_predicted = _plot("Predicted win rate", "lb-plot-predicted")
        with gr.Row():
            plot_counts = _plot("Battle counts", "lb-plot-counts")
            gr.Markdown(HEATMAP_GUIDE, elem_id="lb-heatmap-guide")
    judges_panel.build(ctx)   # issue 15: judge models' agreement with people

    board_inputs = [by, anonymous, since, until, both_bad, rounds, length]
    export_inputs = [downloads.model, downloads.mode, downloads.dedupe]
    plots = [plot_ratings, plot_winrate, plot_counts, plot_predicted]

    def on_refresh(*values: Any) -> Iterator[list[Any]]:
        export_filters = ExportFilters(*values[7:])
        with request_dir() as out_dir:
            view = refresh(ctx.settings.db_path, BoardFilters(*values[:7]), export_filters, out_dir)
            yield refresh_outputs(view, export_filters)

    def on_export(*values: Any) -> Iterator[list[Any]]:
        with request_dir() as out_dir:
            view = export_view(ctx.settings.db_path, BoardFilters(*values[:7]), ExportFilters(*values[7:]), out_dir)
            yield [view.message or "Downloads updated for the new export filters.",
                   *download_updates(view.files, DATA_FILES)]

    board_outputs = [table, diagnostics, plot_area, *plots, *downloads.board_buttons]
    triggers = _refresh_triggers(refresh_btn, [since.submit, until.submit, rounds.submit, by.input, both_bad.input,
                                               anonymous.input, length.input])
    gr.on(triggers, on_refresh, [*board_inputs, *export_inputs],
          [message, *board_outputs, downloads.model, downloads.mode, *downloads.data_buttons],
          trigger_mode="always_last", api_name="leaderboard_refresh")
    gr.on([downloads.model.input, downloads.mode.input, downloads.dedupe.input], on_export,
          [*board_inputs, *export_inputs], [message, *downloads.data_buttons],
          trigger_mode="always_last", api_visibility="private")


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
    board_buttons: list[gr.DownloadButton]
    data_buttons: list[gr.DownloadButton]


def _download_section() -> _Downloads:
    """Download buttons; they stay disabled until a Refresh has written their files."""
    with gr.Accordion("Downloads", open=True, elem_id="lb-downloads"):
        gr.Markdown("**Leaderboard** as shown above:")
        with gr.Row():
            board_buttons = [_button("Leaderboard CSV", "lb-download-csv"),
                             _button("Leaderboard JSON", "lb-download-json"),
                             _button("Leaderboard Markdown", "lb-download-md")]
        gr.Markdown("**Training data and battles** (same date range and anonymous-only setting; DPO pairs come "
                    "from decisive votes, in TRL's format, with per-pair metadata in the `.meta.jsonl` sidecar):",
                    elem_id="lb-data-note")
        with gr.Row(equal_height=True):  # ids must not end in '-model': ui/app.py fills those with the catalog
            model = gr.Dropdown([("any model", ANY)], value=ANY, label="Model (either side)",
                                elem_id="lb-model-filter")
            mode = gr.Dropdown([("any mode", ANY)], value=ANY, label="Mode (either side)", elem_id="lb-mode-filter")
            dedupe = gr.Checkbox(value=True, label="Drop duplicate pairs", elem_id="lb-dedupe")
        with gr.Row():
            data_buttons = [_button("DPO JSONL (standard)", "lb-download-dpo"),
                            _button("standard sidecar (.meta.jsonl)", "lb-download-dpo-meta"),
                            _button("DPO JSONL (conversational)", "lb-download-dpo-conv"),
                            _button("conversational sidecar (.meta.jsonl)", "lb-download-dpo-conv-meta"),
                            _button("Arena battles JSON", "lb-download-battles")]
    return _Downloads(model, mode, dedupe, board_buttons, data_buttons)


def _plot(label: str, elem_id: str) -> gr.Plot:
    """No label badge: it would cover the figure's own title."""
    return gr.Plot(label=label, show_label=False, format="png", elem_id=elem_id, min_width=300)


def _button(label: str, elem_id: str) -> gr.DownloadButton:
    return gr.DownloadButton(label, interactive=False, size="sm", elem_id=elem_id, min_width=120)


def refresh_outputs(view: TabView, export_filters: ExportFilters) -> list[Any]:
    """Component updates in `build`'s output order."""
    board = view.board
    updates = [
        table_update(board.table),
        board.diagnostics,
        gr.update(visible=any(f is not None for f in board.figures.values())),
        *(board.figures[name] for name in PLOTS),
        *download_updates(board.files, tuple(BOARD_FILES)),
        _choices_update("any model", view.models, export_filters.model),
        _choices_update("any mode", view.modes, export_filters.mode),
        *download_updates(view.exports.files, DATA_FILES),
    ]
    if not board.valid:  # a typo in a box: keep the last good table and files, say what to fix
        updates = [gr.skip()] * len(updates)
    return [view.message, *updates]


def download_updates(files: dict[str, Path | None], keys: tuple[str, ...]) -> list[Any]:
    """A button per file: enabled with its file, or disabled and empty when there is nothing to offer."""
    return [gr.update(value=str(files[k]), interactive=True) if files.get(k)
            else gr.update(value=None, interactive=False) for k in keys]


def _choices_update(any_label: str, values: list[str], current: str) -> Any:
    """New choices from the database; the current pick survives if it still exists."""
    return gr.update(choices=[(any_label, ANY), *((v, v) for v in values)],
                     value=current if current in values else ANY)
