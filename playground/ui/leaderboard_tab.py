"""The Leaderboard tab's layout: the components, their wiring, and the views turned into updates.

The work is in ui/leaderboard_handlers.py (plain functions, no Gradio): this module only lays out
the components, calls those handlers from its event functions and turns their views into
component updates (`refresh_outputs`, `download_updates`).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.context import Context
from plotly.graph_objects import Figure

from playground.context import AppContext
from playground.ui import judges_panel
from playground.ui.leaderboard_handlers import (ANY, BOARD_FILES, BOTH_BAD_CHOICES, CATEGORY_HEADERS, DATA_FILES,
                                                DEFAULT_ROUNDS, HEATMAPS, MAX_ROUNDS, PLOTS, TABLE_HEADERS,
                                                BoardFilters, ExportFilters, TabView, board_files, category_choices,
                                                category_view, empty_table, export_view, leaderboard_view,
                                                preset_families, refresh, request_dir)

TIE_CHOICES = [("tie = half a win", "half"), ("Davidson tie model", "davidson")]
GROUPING_CHOICES = [("auto", "auto"), ("model", "model"), ("mode", "mode"), ("model + mode", "model+mode")]
VOTER_CHOICES = [("people", "people"), ("judge models", "judges"), ("both", "both")]  # whose votes count
TABLE_TYPES = ["number", "str", "number", "str", "number", "number", "str", "number"]
LC_TYPES = ["number", "str", "number"]
HEATMAP_GUIDE = (
    "**Reading the heatmaps.** Each cell is the row contestant against the column contestant. *Observed win "
    "rate* is the share of points the row took in their battles (a tie counts half; blank where they never "
    "met); *predicted win rate* is what the ratings imply for that pair. Where the two disagree strongly, the "
    "pair either met only a few times (see *battle counts*) or their results do not fit a single strength "
    "scale (e.g. A beats B, B beats C, C beats A)."
)


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
    """No label badge: it would cover the figure's own title. Plotly: hover for the interval."""
    return gr.Plot(label=label, show_label=False, elem_id=elem_id, min_width=300)


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


def table_update(table: pd.DataFrame) -> Any:
    """The table with a column type each, so the browser sorts numbers as numbers."""
    types = TABLE_TYPES + (LC_TYPES if len(table.columns) > len(TABLE_HEADERS) else [])
    return gr.update(value=table, datatype=types)
