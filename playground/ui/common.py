"""Small pieces the tabs share: model choices, metrics lines, safe text for HTML."""
from __future__ import annotations

import html
import uuid

import gradio as gr

from playground.context import AppContext
from playground.engine import PaneResult


def new_session_id() -> str:
    return uuid.uuid4().hex


def login_name(request: "gr.Request | None") -> str | None:
    """The user name under --auth, else None (Gradio sets request.username after login)."""
    return getattr(request, "username", None) or None


def model_choices(ctx: AppContext, chat_only: bool = False) -> list[tuple[str, str]]:
    """(label, id) pairs for a model dropdown; only models whose files are on disk or on the Hub."""
    out = []
    for spec in ctx.catalog:
        if chat_only and spec.is_chat is False:
            continue
        status = "" if spec.available else " — download"
        out.append((f"{spec.display_name} · {spec.params_label()} · {spec.kind}{status}", spec.id))
    return out


def backend_choices(ctx: AppContext, model_id: str | None) -> list[str]:
    if not model_id or model_id not in ctx.catalog.models:
        return ["llama_cpp"]
    return list(ctx.catalog.models[model_id].backends)


def device_choices(backend: str) -> list[tuple[str, str]]:
    """(label, value) pairs; a device this machine or build cannot use says so in its label."""
    from playground.devices import device_menu

    return device_menu(backend)


def format_metrics(result: PaneResult) -> str:
    """One line of figures under an answer."""
    if not result.exact_prompt and not result.error:
        return ""
    parts = [f"prompt {result.n_prompt_tokens} tok", f"output {result.n_output_tokens} tok"]
    if result.ttft_s is not None:
        parts.append(f"first token {result.ttft_s * 1000:.0f} ms")
    if result.tokens_per_s:
        parts.append(f"{result.tokens_per_s:.1f} tok/s")
    parts.append(f"{result.total_s:.2f} s")
    if result.finish_reason:
        parts.append(f"finish: {result.finish_reason}")
    elif not result.done:
        parts.append("generating…")
    if result.ran_on:
        parts.append(f"ran on {result.ran_on}")
    return " · ".join(parts)


def notices_markdown(result: PaneResult) -> str:
    lines = [f"⚠️ {html.escape(n)}" for n in result.notices]
    if result.error:
        lines.append(f"❌ **Error:** {html.escape(result.error)}")
    return "\n\n".join(lines)
