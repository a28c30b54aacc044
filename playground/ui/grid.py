"""The Playground tab: one question, 2-6 panes answering at once, each showing what it sent.

The logic is in plain functions (`pane_view`, `grid_run`, `vote_on_pair`) that tests call
without a browser; `build` only lays out components and wires them to those functions.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from functools import partial
from typing import Any, Iterator, Sequence

import gradio as gr

from playground.compare import PaneSpec, run_panes
from playground.context import AppContext
from playground.engine import PaneResult
from playground.errors import PlaygroundError
from playground.prompting.extract import split_reasoning
from playground.prompting.plan import MODES
from playground.recording import save_generation, save_vote, session_id_for
from playground.ui.common import (backend_choices, device_choices, format_metrics, login_name, model_choices,
                                  new_session_id, notices_markdown)

MAX_PANES = 6
DEFAULT_PANES = 2
COMPARE_MODES_ORDER = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "instruction", "self_consistency")
MODE_TITLES = {
    "zero_shot": "Zero-shot", "few_shot": "Few-shot (in-context)", "zero_shot_cot": "Zero-shot CoT",
    "few_shot_cot": "Few-shot CoT", "instruction": "Instruction", "self_consistency": "Self-consistency",
}
DEFAULT_PRESET = "(mode default)"
WINNER_LABELS = {"left": "A is better", "right": "B is better", "tie": "Tie", "both_bad": "Both are bad"}


@dataclass(frozen=True)
class PaneConfig:
    """What the user picked in one pane's controls."""

    model_id: str
    backend: str
    device: str
    mode: str
    preset: str
    shots: int
    samples: int
    sampling: str


@dataclass
class PaneView:
    """What one pane shows."""

    messages: list[dict[str, Any]]
    answer: str
    metrics: str
    notices: str
    prompt: str
    paths: str


def new_grid_state() -> dict[str, Any]:
    return {"session_id": new_session_id(), "run_id": None,
            "histories": [[] for _ in range(MAX_PANES)],
            "generations": [None] * MAX_PANES, "busy": [False] * MAX_PANES,
            "views": [None] * MAX_PANES}


def pane_spec(ctx: AppContext, cfg: PaneConfig, family: str) -> PaneSpec:
    preset_id = cfg.preset if cfg.preset and cfg.preset != DEFAULT_PRESET else None
    if preset_id is None:
        preset_id = _family_preset(ctx, cfg.mode, family)
    shots = int(cfg.shots) if cfg.mode in ("few_shot", "few_shot_cot", "self_consistency") else None
    samples = int(cfg.samples) if cfg.mode == "self_consistency" else None
    return PaneSpec(model_id=cfg.model_id, mode=cfg.mode, backend=cfg.backend or None, device=cfg.device or "cpu",
                    preset_id=preset_id, shots=shots, samples=samples, sampling=ctx.sampling(cfg.sampling or None))


def _family_preset(ctx: AppContext, mode: str, family: str) -> str | None:
    for preset in ctx.presets.prompting.values():
        if preset.mode == mode and preset.family == family:
            return preset.id
    return None


def highlight_answer(text: str, result: PaneResult) -> str:
    """The extracted answer, highlighted, as Markdown-safe HTML."""
    if result.error:
        return ""
    if result.extracted is None:
        return "Extracted answer: — (none found)" if result.done else ""
    return f"Extracted answer: <mark class='final-answer'>{html.escape(result.extracted.value)}</mark>"


def answer_messages(text: str) -> list[dict[str, Any]]:
    """Reasoning in a collapsible bubble, the final answer sentence in its own bubble."""
    reasoning, final = split_reasoning(text)
    if reasoning.strip() and final.strip():
        return [{"role": "assistant", "content": reasoning.strip(), "metadata": {"title": "🧠 Reasoning"}},
                {"role": "assistant", "content": final.strip()}]
    return [{"role": "assistant", "content": text}]


def paths_markdown(result: PaneResult) -> str:
    if not result.samples:
        return ""
    tally = ", ".join(f"**{html.escape(a or 'no answer')}**: {n}" for a, n in result.tally)
    lines = [f"Tally: {tally}" if tally else "Tally: —"]
    for i, path in enumerate(result.samples, 1):
        body = html.escape(path.text.strip()) or "…"
        lines.append(f"<details><summary>Path {i}: answer {html.escape(path.answer or '—')}</summary>\n\n"
                     f"{body}\n\n</details>")
    return "\n\n".join(lines)


def pane_view(history: Sequence[dict[str, Any]], question: str, result: PaneResult) -> PaneView:
    messages = list(history) + [{"role": "user", "content": question}]
    messages += answer_messages(result.answer_text) if result.answer_text else []
    return PaneView(messages=messages, answer=highlight_answer(result.answer_text, result),
                    metrics=format_metrics(result), notices=notices_markdown(result),
                    prompt=result.exact_prompt, paths=paths_markdown(result))


def _record(ctx: AppContext, state: dict[str, Any], index: int, spec: PaneSpec, question: str,
            result: PaneResult) -> int | None:
    """Store a finished answer; the id lets any two panes be judged afterwards."""
    if result.error and not result.answer_text:
        return None
    model = ctx.catalog.get(spec.model_id)
    backend = spec.backend or model.backends[0]
    conversation = list(state["histories"][index]) + [{"role": "user", "content": question}]
    return save_generation(ctx.settings.db_path, session_id=_session(state), spec=model, backend=backend,
                           device=spec.device, mode=spec.mode, preset=spec.preset_id, conversation=conversation,
                           result=result, sampling=spec.sampling)


def grid_run(ctx: AppContext, state: dict[str, Any], question: str, n_panes: int, family: str,
             configs: Sequence[PaneConfig]) -> Iterator[tuple[dict[str, Any], list[PaneView | None], str]]:
    """Send one question to the first n panes at once. Yields (state, views, status)."""
    question = (question or "").strip()
    n = max(2, min(MAX_PANES, int(n_panes)))
    if not question:
        yield state, [None] * MAX_PANES, "⚠️ Type a question first."
        return
    state = {**state, "histories": [list(h) for h in state["histories"]], "generations": list(state["generations"])}
    specs: list[PaneSpec] = []
    for cfg in configs[:n]:
        specs.append(pane_spec(ctx, cfg, family))
    run_id, cancel = ctx.runs.start()
    state["run_id"] = run_id
    state["busy"] = [i < n for i in range(MAX_PANES)]
    state["generations"] = [None if i < n else g for i, g in enumerate(state["generations"])]
    histories = [state["histories"][i] for i in range(n)]
    recorded: set[int] = set()
    views: list[PaneView | None] = [None] * MAX_PANES
    try:
        for results in run_panes(ctx, specs, question, histories, cancel):
            for i, result in enumerate(results):
                views[i] = pane_view(histories[i], question, result)
                if result.done and i not in recorded:
                    recorded.add(i)
                    try:
                        state["generations"][i] = _record(ctx, state, i, specs[i], question, result)
                    except PlaygroundError as exc:
                        result.notices.append(f"not saved: {exc}")
                        views[i] = pane_view(histories[i], question, result)
                    if not result.error:
                        state["histories"][i] = histories[i] + [{"role": "user", "content": question},
                                                                {"role": "assistant", "content": result.answer_text}]
                    state["busy"][i] = False
            done = sum(1 for r in results if r.done)
            yield state, list(views), f"{done}/{n} panes finished"
    finally:
        ctx.runs.finish(run_id)
        state["run_id"] = None
        state["busy"] = [False] * MAX_PANES
    yield state, list(views), "All panes finished. Judge any two panes below."


def vote_on_pair(ctx: AppContext, state: dict[str, Any], pane_a: int, pane_b: int, winner: str,
                 note: str = "") -> str:
    """Judge pane A against pane B (named comparison). Returns the message to show."""
    a, b = int(pane_a) - 1, int(pane_b) - 1
    if a == b:
        return "⚠️ Pick two different panes."
    if winner not in WINNER_LABELS:
        return f"⚠️ Unknown verdict '{winner}'."
    if state.get("run_id") or state["busy"][a] or state["busy"][b]:
        return "⚠️ Wait until both answers are complete before voting."
    left, right = state["generations"][a], state["generations"][b]
    if left is None or right is None:
        return "⚠️ Both panes need a finished answer (ask a question first)."
    try:
        vote = save_vote(ctx.settings.db_path, left_generation_id=left, right_generation_id=right,
                         winner=winner, session_id=_session(state), anonymous=False,
                         source="playground", note=note)
    except PlaygroundError as exc:
        return f"❌ Vote not saved: {exc}"
    if vote.duplicate:
        return f"This pair was already judged ({WINNER_LABELS[vote.winner]}, vote #{vote.vote_id}): not counted twice."
    return f"✅ Saved: pane {a + 1} vs pane {b + 1} — {WINNER_LABELS[winner]} (vote #{vote.vote_id})."


def _session(state: dict[str, Any]) -> str:
    """The id on stored rows: the session's uuid, with the login name under --auth."""
    return session_id_for(state["session_id"], state.get("user"))


def stop(ctx: AppContext, state: dict[str, Any]) -> None:
    ctx.runs.cancel(state.get("run_id"))


def compare_modes_layout(ctx: AppContext, model_id: str) -> tuple[int, list[str], list[str]]:
    """One model, every mode: (pane count, models, modes)."""
    modes = list(COMPARE_MODES_ORDER)
    return len(modes), [model_id] * len(modes), modes


def compare_models_layout(ctx: AppContext, mode: str) -> tuple[int, list[str], list[str]]:
    """One mode, the models that are on disk (up to MAX_PANES)."""
    ids = [s.id for s in ctx.catalog if s.available][:MAX_PANES]
    ids = ids if len(ids) >= 2 else (ids * 2)[:2]
    return len(ids), ids, [mode] * len(ids)


def preset_choices(ctx: AppContext, mode: str) -> list[str]:
    return [DEFAULT_PRESET] + [p.id for p in ctx.presets.prompting.values() if p.mode == mode]


def build(ctx: AppContext) -> None:
    """Lay out the Playground tab."""
    state = gr.State(new_grid_state)
    default_model = ctx.settings.default_model if ctx.settings.default_model in ctx.catalog.models else None
    families = sorted({p.family for p in ctx.presets.prompting.values()}) or ["general"]
    with gr.Row():
        n_panes = gr.Radio([str(i) for i in range(2, MAX_PANES + 1)], value=str(DEFAULT_PANES),
                           label="Panes", elem_id="grid-n-panes", scale=2)
        family = gr.Dropdown(families, value="arithmetic" if "arithmetic" in families else families[0],
                             label="Task family (default presets)", elem_id="grid-family", scale=2)
        modes_btn = gr.Button("Compare modes (one model, every mode)", elem_id="grid-compare-modes", scale=2)
        models_btn = gr.Button("Compare models (one mode)", elem_id="grid-compare-models", scale=2)
    with gr.Row():
        question = gr.Textbox(placeholder="One question for every pane… (Enter sends)", show_label=False,
                              scale=6, elem_id="grid-input")
        send = gr.Button("Send to all", variant="primary", scale=1, elem_id="grid-send")
        stop_btn = gr.Button("Stop all", scale=1, elem_id="grid-stop")
        clear_btn = gr.Button("Clear", scale=1, elem_id="grid-clear")
    status = gr.Markdown(elem_id="grid-status")

    controls: list[list[gr.components.Component]] = []
    outputs: list[list[gr.components.Component]] = []
    columns: list[gr.Column] = []
    for row_start in range(0, MAX_PANES, 3):
        with gr.Row(equal_height=False):
            for i in range(row_start, min(row_start + 3, MAX_PANES)):
                with gr.Column(visible=i < DEFAULT_PANES, elem_id=f"pane-{i + 1}", min_width=320) as col:
                    columns.append(col)
                    gr.Markdown(f"### Pane {i + 1}")
                    model = gr.Dropdown(model_choices(ctx), value=default_model, label="Model", elem_id=f"pane-{i + 1}-model")
                    with gr.Row():
                        backend = gr.Dropdown(backend_choices(ctx, default_model), value=backend_choices(ctx, default_model)[0],
                                              label="Backend", elem_id=f"pane-{i + 1}-backend")
                        device = gr.Dropdown(device_choices("llama_cpp"), value="cpu", label="Device",
                                             elem_id=f"pane-{i + 1}-device")
                    default_mode = ("zero_shot", "few_shot_cot")[i % 2]
                    mode = gr.Dropdown([(MODE_TITLES[m], m) for m in MODES], value=default_mode, label="Mode",
                                       elem_id=f"pane-{i + 1}-mode")
                    with gr.Accordion("Preset and sampling", open=False):
                        preset = gr.Dropdown(preset_choices(ctx, default_mode), value=DEFAULT_PRESET,
                                             label="Prompting preset", elem_id=f"pane-{i + 1}-preset")
                        shots = gr.Slider(0, 8, value=4, step=1, label="Shots (k exemplars)", elem_id=f"pane-{i + 1}-shots")
                        samples = gr.Slider(2, 20, value=5, step=1, label="Self-consistency samples",
                                            elem_id=f"pane-{i + 1}-samples")
                        sampling = gr.Dropdown(list(ctx.sampling_presets), value="deterministic"
                                               if "deterministic" in ctx.sampling_presets else None,
                                               label="Sampling preset", elem_id=f"pane-{i + 1}-sampling")
                    chat = gr.Chatbot(label=f"Pane {i + 1}", height=320, elem_id=f"pane-{i + 1}-chat",
                                      buttons=["copy"], elem_classes=["pane-answer"])
                    answer = gr.Markdown(elem_id=f"pane-{i + 1}-answer", elem_classes=["pane-answer"])
                    metrics = gr.Markdown(elem_id=f"pane-{i + 1}-metrics")
                    notices = gr.Markdown(elem_id=f"pane-{i + 1}-notices")
                    with gr.Accordion("Exact prompt sent", open=False):
                        prompt = gr.Code(language=None, interactive=False, show_label=False,
                                         elem_id=f"pane-{i + 1}-prompt")
                    with gr.Accordion("Self-consistency paths", open=False):
                        paths = gr.Markdown(elem_id=f"pane-{i + 1}-paths")
                    controls.append([model, backend, device, mode, preset, shots, samples, sampling])
                    outputs.append([chat, answer, metrics, notices, prompt, paths])
                    model.change(lambda m: _backend_update(ctx, m), [model], [backend, device])
                    backend.change(lambda b: gr.update(choices=device_choices(b), value="cpu"), [backend], [device])
                    mode.change(lambda m: gr.update(choices=preset_choices(ctx, m), value=DEFAULT_PRESET), [mode], [preset])

    with gr.Group():
        gr.Markdown("### Judge two panes")
        with gr.Row():
            pane_a = gr.Dropdown([str(i) for i in range(1, MAX_PANES + 1)], value="1", label="A = pane", elem_id="vote-a")
            pane_b = gr.Dropdown([str(i) for i in range(1, MAX_PANES + 1)], value="2", label="B = pane", elem_id="vote-b")
            note = gr.Textbox(label="Note (optional)", elem_id="vote-note", scale=3)
        with gr.Row():
            vote_buttons = {w: gr.Button(label, elem_id=f"vote-{w}") for w, label in WINNER_LABELS.items()}
        vote_status = gr.Markdown(elem_id="vote-status")

    flat_controls = [c for pane in controls for c in pane]
    flat_outputs = [c for pane in outputs for c in pane]

    def on_send(request: gr.Request, st: dict[str, Any], q: str, n: str, fam: str, *values: Any) -> Iterator[list[Any]]:
        configs = [PaneConfig(*values[i * 8:(i + 1) * 8]) for i in range(MAX_PANES)]
        st = {**st, "user": login_name(request)}
        for st2, views, msg in grid_run(ctx, st, q, int(n), fam, configs):
            yield [st2, msg, ""] + _flatten_views(views)

    send_inputs = [state, question, n_panes, family, *flat_controls]
    gr.on([send.click, question.submit], on_send, send_inputs, [state, status, vote_status, *flat_outputs],
          api_name="grid_send")
    stop_btn.click(partial(stop, ctx), [state], None, queue=False)
    clear_btn.click(lambda st: [{**new_grid_state(), "session_id": st["session_id"]}, "", ""] +
                    [[] if j % 6 == 0 else "" for j in range(MAX_PANES * 6)],
                    [state], [state, status, vote_status, *flat_outputs])
    n_panes.change(lambda n: [gr.update(visible=i < int(n)) for i in range(MAX_PANES)], [n_panes], columns)
    for winner, button in vote_buttons.items():
        button.click(_vote_handler(ctx, winner), [state, pane_a, pane_b, note], [vote_status],
                     api_name=f"grid_vote_{winner}")

    pane_models = [c[0] for c in controls]
    pane_modes = [c[3] for c in controls]

    def apply_layout(layout: tuple[int, list[str], list[str]]) -> list[Any]:
        n, models, modes = layout
        return ([str(n)] + [gr.update(visible=i < n) for i in range(MAX_PANES)]
                + [models[i] if i < n else gr.skip() for i in range(MAX_PANES)]
                + [modes[i] if i < n else gr.skip() for i in range(MAX_PANES)])

    layout_outputs = [n_panes, *columns, *pane_models, *pane_modes]
    modes_btn.click(lambda m: apply_layout(compare_modes_layout(ctx, m or ctx.settings.default_model)),
                    [pane_models[0]], layout_outputs)
    models_btn.click(lambda m: apply_layout(compare_models_layout(ctx, m or "zero_shot")), [pane_modes[0]],
                     layout_outputs)


def _vote_handler(ctx: AppContext, winner: str):
    """A click handler for one verdict (a closure: Gradio sees gr.Request only on plain functions)."""
    def on_vote(state: dict[str, Any], a: str, b: str, note: str, request: gr.Request) -> str:
        return vote_on_pair(ctx, {**state, "user": login_name(request)}, int(a), int(b), winner, note)
    return on_vote


def _backend_update(ctx: AppContext, model_id: str) -> tuple:
    backends = backend_choices(ctx, model_id)
    return gr.update(choices=backends, value=backends[0]), gr.update(choices=device_choices(backends[0]), value="cpu")


def _flatten_views(views: Sequence[PaneView | None]) -> list[Any]:
    out: list[Any] = []
    for view in views:
        if view is None:
            out += [gr.skip()] * 6
        else:
            out += [view.messages, view.answer, view.metrics, view.notices, view.prompt, view.paths]
    return out
