"""Assembles the Gradio Blocks from the tab modules; tabs that are not built yet are skipped."""
from __future__ import annotations

import importlib

from typing import Any

import gradio as gr

from playground.context import AppContext
from playground.ui.common import model_choices

# (tab title, module under playground.ui); each module has build(ctx)
TABS: tuple[tuple[str, str], ...] = (
    ("Chat", "chat"),
    ("Playground", "grid"),
    ("Arena", "arena_tab"),
    ("Leaderboard", "leaderboard_tab"),
    ("Lab", "lab_tab"),
    ("Train", "train_tab"),
    ("Models", "models_tab"),
)

CSS = """
.pane-answer .final-answer { background: #fff3bf; padding: 0 .2em; border-radius: 3px; }
#app-header h1 { margin-bottom: 0; }
"""


def build_ui(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="LLM playground") as demo:
        gr.Markdown("# LLM playground\nLocal models side by side: prompting modes, blind battles, "
                    "rankings and training data.", elem_id="app-header")
        if ctx.preset_errors:
            with gr.Accordion(f"⚠️ {len(ctx.preset_errors)} preset file(s) were skipped", open=False):
                gr.Markdown("\n".join(f"- {e}" for e in ctx.preset_errors), elem_id="preset-errors")
        for title, module_name in TABS:
            try:
                module = importlib.import_module(f"playground.ui.{module_name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"playground.ui.{module_name}":
                    raise
                continue
            with gr.Tab(title, id=module_name, elem_id=f"tab-{module_name}"):
                module.build(ctx)
        _refresh_model_pickers_on_load(ctx, demo)
    return demo


def _refresh_model_pickers_on_load(ctx: AppContext, demo: gr.Blocks) -> None:
    """Every model picker (elem_id ending in '-model' or '-models') gets the current catalog on page
    load, so a model downloaded or dropped into ./models shows up after a reload."""
    pickers = [b for b in demo.blocks.values()
               if isinstance(b, gr.Dropdown) and (b.elem_id or "").endswith(("-model", "-models"))]
    if not pickers:
        return

    def choices() -> list[Any]:
        options = model_choices(ctx)
        return [gr.update(choices=options) for _ in pickers]

    demo.load(choices, None, pickers, queue=False)
