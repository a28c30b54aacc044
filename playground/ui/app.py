"""Assembles the Gradio Blocks from the tab modules; tabs that are not built yet are skipped."""
from __future__ import annotations

import importlib

import gradio as gr

from playground.context import AppContext

# (tab title, module under playground.ui); each module has build(ctx)
TABS: tuple[tuple[str, str], ...] = (
    ("Chat", "chat"),
    ("Playground", "grid"),
    ("Arena", "arena_tab"),
    ("Leaderboard", "leaderboard_tab"),
    ("Lab", "lab_tab"),
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
    return demo
