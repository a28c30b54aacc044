"""The Chat tab: multi-turn chat with one model, streaming, Stop, Regenerate, Clear."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import gradio as gr

from playground.compare import PaneSpec, run_pane
from playground.context import AppContext
from playground.engine import PaneResult
from playground.errors import PlaygroundError
from playground.ui.common import (backend_choices, device_choices, format_metrics, model_choices,
                                  new_session_id, notices_markdown)


def new_chat_state() -> dict[str, Any]:
    return {"history": [], "run_id": None, "session_id": new_session_id()}


# Shown under the message box (one click fills it); each gets a sensible answer from the default
# model (tests/test_first_answers.py asks them all through the default path).
EXAMPLES: tuple[str, ...] = (
    "What is the capital of France?",
    "Name three colours.",
    "A cafeteria had 23 apples. If they used 20 to make lunch and bought 6 more, how many apples do they have?",
)


def _chat_pane(ctx: AppContext, model_id: str, backend: str, device: str, preset: str, system: str,
               temperature: float | None, max_tokens: int | None) -> PaneSpec:
    sampling = ctx.sampling(preset, temperature=temperature, max_new_tokens=int(max_tokens) if max_tokens else None)
    return PaneSpec(model_id=model_id, mode="zero_shot", backend=backend or None, device=device or "cpu",
                    preset_id="general-zero-shot" if "general-zero-shot" in ctx.presets.prompting else None,
                    system_prompt=(system or "").strip() or None, sampling=sampling)


def preset_slider_values(ctx: AppContext, preset: str | None) -> tuple[float, int]:
    """(temperature, max new tokens) of a sampling preset: what the sliders show until moved."""
    params = ctx.sampling(preset or None)
    return params.temperature, params.max_new_tokens


def on_preset_change(ctx: AppContext, preset: str | None) -> tuple:
    """A new preset: the sliders show its values and no longer override it."""
    temperature, max_tokens = preset_slider_values(ctx, preset)
    return gr.update(value=temperature), gr.update(value=max_tokens), {}


def slider_moved(name: str, touched: dict[str, bool] | None) -> dict[str, bool]:
    """The user moved a slider (a `.input` event, never fired by code): it now overrides the preset."""
    return {**(touched or {}), name: True}


def stream_reply(ctx: AppContext, state: dict[str, Any], message: str, model_id: str, backend: str,
                 device: str, preset: str, system: str, temperature: float | None,
                 max_tokens: int | None, touched: dict[str, bool] | None = None) -> Iterator[tuple]:
    """Stream one assistant turn. Yields (chatbot, state, metrics, notices, prompt, textbox).

    `touched` names the sliders the user moved since the preset was picked: only those override
    the preset (None: both values are taken as given, for API callers)."""
    if touched is not None:
        temperature = temperature if touched.get("temperature") else None
        max_tokens = max_tokens if touched.get("max_tokens") else None
    message = (message or "").strip()
    history = list(state["history"])
    if not message:
        yield history, state, "", "⚠️ Type a message first.", gr.skip(), gr.skip()
        return
    run_id, cancel = ctx.runs.start()
    state = {**state, "run_id": run_id}
    shown = history + [{"role": "user", "content": message}, {"role": "assistant", "content": ""}]
    yield shown, state, "starting…", "", gr.skip(), ""
    result = PaneResult()
    try:
        pane = _chat_pane(ctx, model_id, backend, device, preset, system, temperature, max_tokens)
        for result in run_pane(ctx, pane, message, history, cancel):
            shown[-1] = {"role": "assistant", "content": result.answer_text}
            yield shown, state, format_metrics(result), notices_markdown(result), result.exact_prompt, ""
    except PlaygroundError as exc:
        result.error = str(exc)
    except Exception as exc:  # a bug must show up in the page, not as a silent spinner
        result.error = f"internal error: {type(exc).__name__}: {exc}"
    finally:
        ctx.runs.finish(run_id)
    if result.error:
        yield history + [{"role": "user", "content": message}], {**state, "run_id": None}, "", \
            notices_markdown(result), result.exact_prompt, message
        return
    state = {**state, "run_id": None, "history": history + [{"role": "user", "content": message},
                                                            {"role": "assistant", "content": result.answer_text}]}
    yield state["history"], state, format_metrics(result), notices_markdown(result), result.exact_prompt, ""


def stop(ctx: AppContext, state: dict[str, Any]) -> None:
    ctx.runs.cancel(state.get("run_id"))


def pop_last_turn(state: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """For Regenerate: drop the last exchange and hand back its question."""
    history = list(state["history"])
    if len(history) >= 2 and history[-1]["role"] == "assistant":
        question = history[-2]["content"]
        return {**state, "history": history[:-2]}, question
    return state, ""


def clear(state: dict[str, Any]) -> tuple:
    return [], {**new_chat_state(), "session_id": state["session_id"]}, "", "", ""


def on_model_change(ctx: AppContext, model_id: str) -> tuple:
    backends = backend_choices(ctx, model_id)
    return gr.update(choices=backends, value=backends[0]), gr.update(choices=device_choices(backends[0]), value="cpu")


def build(ctx: AppContext) -> None:
    """Lay out the Chat tab (call inside a gr.Tab)."""
    state = gr.State(new_chat_state)
    default = ctx.settings.default_model
    with gr.Row():
        model = gr.Dropdown(model_choices(ctx), value=default if default in ctx.catalog.models else None,
                            label="Model", elem_id="chat-model", scale=3,
                            min_width=300)   # a row of its own on a phone: the name tells F16 from Q4_1
        backend = gr.Dropdown(backend_choices(ctx, default), value=backend_choices(ctx, default)[0],
                              label="Backend", elem_id="chat-backend", scale=1, min_width=120)
        device = gr.Dropdown(device_choices("llama_cpp"), value="cpu", label="Device", elem_id="chat-device", scale=1,
                             min_width=90)
        first_preset = "deterministic" if "deterministic" in ctx.sampling_presets else None
        preset = gr.Dropdown(list(ctx.sampling_presets), value=first_preset, label="Sampling preset",
                             elem_id="chat-preset", scale=1)
    shown_temperature, shown_max_tokens = preset_slider_values(ctx, first_preset)
    with gr.Accordion("System prompt and sampling", open=False):
        system = gr.Textbox(label="System prompt (empty: the model's default)", lines=2, elem_id="chat-system")
        with gr.Row():
            temperature = gr.Slider(0, 2, value=shown_temperature, step=0.05, elem_id="chat-temperature",
                                    label="Temperature (the preset's; moving it overrides the preset)")
            max_tokens = gr.Slider(16, 2048, value=shown_max_tokens, step=16, elem_id="chat-max-tokens",
                                   label="Max new tokens (the preset's; moving it overrides the preset)")
    # None until the preset is changed: the sliders then show the preset's own values, and an API
    # caller's temperature and max_tokens (it has no sliders to move) are taken as given
    touched = gr.State(None)
    # grows with the conversation up to 420 px, then scrolls: an empty chat does not push the input
    # box a screen down on a phone
    chatbot = gr.Chatbot(label="Chat", elem_id="chat-bot", height="auto", min_height=160, max_height=420,
                         buttons=["copy"])
    metrics = gr.Markdown(elem_id="chat-metrics")
    notices = gr.Markdown(elem_id="chat-notices")
    with gr.Row():
        box = gr.Textbox(placeholder="Ask something… (Enter sends)", show_label=False, scale=6, min_width=220,
                         elem_id="chat-input")
        send = gr.Button("Send", variant="primary", scale=1, min_width=70, elem_id="chat-send")
    gr.Examples([[q] for q in EXAMPLES], inputs=[box], label="Try one", elem_id="chat-examples")
    with gr.Row():
        stop_btn = gr.Button("Stop", elem_id="chat-stop")
        regen = gr.Button("Regenerate", elem_id="chat-regenerate")
        clear_btn = gr.Button("Clear", elem_id="chat-clear")
    with gr.Accordion("Exact prompt sent", open=False):
        prompt = gr.Code(label="Rendered prompt (chat template and special tokens)", language=None,
                         elem_id="chat-prompt", interactive=False)

    inputs = [state, box, model, backend, device, preset, system, temperature, max_tokens, touched]
    outputs = [chatbot, state, metrics, notices, prompt, box]
    handler = partial(stream_reply, ctx)
    gr.on([send.click, box.submit], handler, inputs, outputs, concurrency_limit=None, api_name="chat_send")
    stop_btn.click(partial(stop, ctx), [state], None, queue=False)
    hidden_question = gr.State("")
    regen.click(pop_last_turn, [state], [state, hidden_question]).then(
        handler, [state, hidden_question, model, backend, device, preset, system, temperature, max_tokens, touched],
        outputs)
    clear_btn.click(clear, [state], [chatbot, state, metrics, notices, prompt])
    # the chat box's own trash icon: clear the conversation too, not just its picture (else the next
    # message would go on with turns the person no longer sees)
    chatbot.clear(clear, [state], [chatbot, state, metrics, notices, prompt])
    model.change(partial(on_model_change, ctx), [model], [backend, device])
    preset.change(partial(on_preset_change, ctx), [preset], [temperature, max_tokens, touched])
    temperature.input(partial(slider_moved, "temperature"), [touched], [touched])
    max_tokens.input(partial(slider_moved, "max_tokens"), [touched], [touched])
    backend.change(lambda b: gr.update(choices=device_choices(b), value="cpu"), [backend], [device])
