"""The Playground tab: one question, 2-6 panes answering at once, each showing what it sent.

The answers are what the page is for, so each pane is a one-line header (model, mode) whose
settings fold away, the answers sit side by side (one row up to 4 panes, 3 + 3 for 5-6) and the
judge bar sits right under them. The logic is in plain functions (`pane_view`, `grid_run`,
`vote_on_pair`, the layouts) that tests call without a browser; the turn and judging rules are
in `grid_rounds`; `build` only lays out components and wires them to those functions.
"""
from __future__ import annotations

import html
import re
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
from playground.recording import MAX_NOTE, save_generation
from playground.ui.common import (backend_choices, device_choices, format_metrics, login_name, model_choices,
                                  notices_markdown)
from playground.ui.grid_rounds import (DEFAULT_PANES, MAX_PANES, followup_problem, judge_summary,
                                       judgeable_panes, new_grid_state, session_of, start_round, vote_on_pair)
from playground.verdicts import WINNER_LABELS

__all__ = ["MAX_PANES", "PaneConfig", "PaneView", "build", "compare_models_layout", "compare_modes_layout",
           "grid_run", "new_grid_state", "pane_view", "vote_on_pair"]

COMPARE_MODES_ORDER = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "instruction", "self_consistency")
MODE_TITLES = {
    "zero_shot": "Zero-shot", "few_shot": "Few-shot (in-context)", "zero_shot_cot": "Zero-shot CoT",
    "few_shot_cot": "Few-shot CoT", "instruction": "Instruction", "self_consistency": "Self-consistency",
}
DEFAULT_PRESET = "(mode default)"
STREAM_INTERVAL_S = 0.2     # browser updates per pane: a readable rate, not one per token
ANSWER_HEIGHT = 230         # px: 4 panes, their judge bar, the question and the page header fit in 1440x900

GRID_CSS = """
#pane-grid { gap: 10px; }
#pane-grid > .pane { flex: 1 1 0; gap: 6px; }
#pane-grid.panes-5 > .pane, #pane-grid.panes-6 > .pane { flex: 1 1 calc(33.3% - 10px); }
@media (max-width: 760px) { #pane-grid > .pane { flex: 1 1 100% !important; } }
#pane-grid .pane > .gr-accordion { padding: 4px 10px; }
#pane-grid .pane > .gr-accordion > .label-wrap > span:first-child {
  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; text-align: left; font-size: var(--text-sm); }
#pane-grid .pane-meta p, #grid-status p, #judge-hint p { font-size: var(--text-sm); margin: 0; }
#grid-toolbar { align-items: center; }
#judge-bar { align-items: end; }
#vote-a input, #vote-b input { text-overflow: ellipsis; padding-right: 28px; }
"""


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


EMPTY_VIEW = PaneView([], "", "", "", "", "")


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


def pane_label(ctx: AppContext, model_id: str | None, mode: str | None) -> str:
    """'<mode> · <model>': what a pane runs, in a few words (the mode first: it is short)."""
    spec = ctx.catalog.models.get(model_id or "")
    return f"{MODE_TITLES.get(mode or '', mode)} · {spec.display_name if spec else model_id or 'no model'}"


def picker_labels(ctx: AppContext, configs: Sequence[PaneConfig]) -> list[str]:
    """What the judge pickers call each pane, after its number: only what tells the panes apart (the
    mode when every pane runs one model, the model when every pane runs one mode), the model's name
    without its parenthesised remark. Short enough to read whole in a picker on a phone."""
    def model_name(model_id: str) -> str:
        spec = ctx.catalog.models.get(model_id or "")
        return re.sub(r"\s*\([^()]*\)$", "", spec.display_name) if spec else model_id or "no model"
    same_model = len({c.model_id for c in configs}) == 1
    same_mode = len({c.mode for c in configs}) == 1
    out = []
    for c in configs:
        mode, model = MODE_TITLES.get(c.mode, c.mode), model_name(c.model_id)
        out.append(mode if same_model else model if same_mode else f"{mode} · {model}")
    return out


def pane_header(ctx: AppContext, index: int, model_id: str | None, mode: str | None) -> str:
    """The folded settings' label, the one line a pane shows above its answer."""
    return f"{index + 1} · {pane_label(ctx, model_id, mode)}"


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


def judge_note(result: PaneResult) -> str:
    """A line under an answer that cannot be judged, saying why (a token-limit cut can be)."""
    if result.finish_reason == "cancelled":
        return "⛔ Stopped before it finished: this answer cannot be judged."
    if result.error or result.finish_reason == "error":
        return "⛔ Failed: this answer cannot be judged."
    if result.finish_reason == "length":
        return "✂️ Cut at the token limit (it can still be judged)."
    return ""


def pane_view(history: Sequence[dict[str, Any]], question: str, result: PaneResult) -> PaneView:
    messages = list(history) + [{"role": "user", "content": question}]
    messages += answer_messages(result.answer_text) if result.answer_text else []
    notices = "\n\n".join(x for x in (judge_note(result) if result.done else "", notices_markdown(result)) if x)
    return PaneView(messages=messages, answer=highlight_answer(result.answer_text, result),
                    metrics=format_metrics(result), notices=notices,
                    prompt=result.exact_prompt, paths=paths_markdown(result))


def _record(ctx: AppContext, state: dict[str, Any], index: int, spec: PaneSpec, question: str,
            result: PaneResult) -> int | None:
    """Store a finished answer (also a stopped one: it was seen); the id is what a vote names."""
    if result.error and not result.answer_text:
        return None
    model = ctx.catalog.get(spec.model_id)
    backend = spec.backend or model.backends[0]
    conversation = list(state["histories"][index]) + [{"role": "user", "content": question}]
    return save_generation(ctx.settings.db_path, session_id=session_of(state), spec=model, backend=backend,
                           device=spec.device, mode=spec.mode, preset=spec.preset_id, conversation=conversation,
                           result=result, sampling=spec.sampling)


def _finish_of(result: PaneResult) -> str:
    return "error" if result.error else (result.finish_reason or "stop")


def grid_run(ctx: AppContext, state: dict[str, Any], question: str, n_panes: int, family: str,
             configs: Sequence[PaneConfig], followup: bool = False
             ) -> Iterator[tuple[dict[str, Any], list[PaneView | None], str]]:
    """Send one question to the first n panes at once. Yields (state, views, status); a view is
    None where a pane has not changed since the previous yield (the last yield has them all).

    Each Send starts every pane afresh unless `followup`: then each pane continues its own
    conversation of the last round, and all get the same new user turn.
    """
    question = (question or "").strip()
    n = max(2, min(MAX_PANES, int(n_panes)))
    if not question:
        yield state, [None] * MAX_PANES, "⚠️ Type a question first."
        return
    problem = followup_problem(state, n) if followup else None
    if problem:
        yield state, [None] * MAX_PANES, f"⚠️ {problem}"
        return
    try:
        specs = [pane_spec(ctx, cfg, family) for cfg in configs[:n]]
    except PlaygroundError as exc:
        yield state, [None] * MAX_PANES, f"❌ {exc}"
        return
    run_id, cancel = ctx.runs.start()
    labels = picker_labels(ctx, configs[:n])
    state, histories = start_round(state, question, n, labels, followup, run_id)
    shown: list[PaneView] = [pane_view(histories[i], question, PaneResult()) if i < n else EMPTY_VIEW
                             for i in range(MAX_PANES)]
    last_progress = f"0/{n} panes finished"
    yield state, list(shown), last_progress
    recorded: set[int] = set()
    try:
        for results in run_panes(ctx, specs, question, histories, cancel, min_interval_s=STREAM_INTERVAL_S):
            changed: list[PaneView | None] = [None] * MAX_PANES
            for i, result in enumerate(results):
                if result.done and i not in recorded:
                    recorded.add(i)
                    try:
                        state["generations"][i] = _record(ctx, state, i, specs[i], question, result)
                    except PlaygroundError as exc:
                        result.notices.append(f"not saved: {exc}")
                    state["finish"][i] = _finish_of(result)
                    state["histories"][i] = histories[i] + [{"role": "user", "content": question},
                                                            {"role": "assistant", "content": result.answer_text}]
                    state["busy"][i] = False
                view = pane_view(histories[i], question, result)
                if view != shown[i]:
                    shown[i] = changed[i] = view
            done = sum(1 for r in results if r.done)
            progress = f"{done}/{n} panes finished"
            if progress == last_progress and not any(changed):
                continue                   # nothing new on screen: send nothing (a slow model polls idle)
            last_progress = progress
            yield state, changed, progress
    finally:
        ctx.runs.finish(run_id)
        state["run_id"] = None
        state["busy"] = [False] * MAX_PANES
        for i in range(n):
            if i not in recorded:          # ended without a final result (closed page, error)
                state["finish"][i] = "cancelled"
    yield state, list(shown), f"All panes finished (question {state['round']} of this session). Judge two of them below."


def stop(ctx: AppContext, state: dict[str, Any]) -> None:
    ctx.runs.cancel(state.get("run_id"))


def compare_modes_layout(ctx: AppContext, model_id: str) -> tuple[int, list[str], list[str]]:
    """One model, every mode: (pane count, models, modes)."""
    modes = list(COMPARE_MODES_ORDER)
    return len(modes), [model_id] * len(modes), modes


def compare_models_layout(ctx: AppContext, mode: str) -> tuple[int, list[str], list[str], str]:
    """One mode, the models that are on disk (up to MAX_PANES): (pane count, models, modes, message).

    With fewer than two models there is nothing to compare: the count is 0 and the message says
    how to add a model, instead of building panes that would all run the same model.
    """
    ids = [s.id for s in ctx.catalog if s.available][:MAX_PANES]
    if len(ids) < 2:
        return 0, [], [], one_model_message(ctx, ids)
    title = MODE_TITLES.get(mode, mode)
    return len(ids), ids, [mode] * len(ids), f"{len(ids)} models side by side, each in {title}."


def one_model_message(ctx: AppContext, ids: Sequence[str]) -> str:
    name = ctx.catalog.models[ids[0]].display_name if ids else "none"
    listed = [s for s in ctx.catalog if s.source == "hub" and not s.available]
    hub = (f"pick one of the {len(listed)} Hugging Face models listed in the **Models** tab "
           f"(from `presets/hub_models.yaml`; downloaded once, on first use)" if listed else
           "add a Hugging Face model to `presets/hub_models.yaml` (see the **Models** tab)")
    return (f"⚠️ Only one model is installed ({html.escape(name)}), so there is nothing to compare it with. "
            f"To add another, {hub}, or put a `.gguf` file or a model folder into "
            f"`{html.escape(str(ctx.settings.models_dir))}` and reload the page. Meanwhile **Compare modes** "
            f"shows this model under every prompting mode.")


def preset_choices(ctx: AppContext, mode: str) -> list[str]:
    return [DEFAULT_PRESET] + [p.id for p in ctx.presets.prompting.values() if p.mode == mode]


def followup_message(on: bool) -> str:
    """What the Follow-up switch means, said when it is flipped."""
    if on:
        return ("Follow-up on: the next Send continues each pane's own conversation, every pane with the "
                "same new question.")
    return "Follow-up off: each Send starts every pane afresh (one question, no earlier turns)."


def judge_updates(state: dict[str, Any], visible: int, keep_picks: bool = False) -> list[Any]:
    """The judge bar after a round, a pane-count change or a pane that finished: pickers list only
    judgeable panes, verdict buttons are greyed out when fewer than two answers can be judged.

    `keep_picks` leaves the pickers' values alone (only their choices change): while a round runs,
    finished panes join the choices one by one and a pick the person made must not move under
    their cursor (it stays valid: a finished answer stays finished).
    """
    panes = judgeable_panes(state, visible)
    choices = [(f"{p}: {state['labels'][p - 1]}", str(p)) for p in panes]
    ready = len(choices) >= 2
    if keep_picks:
        pickers = [gr.update(choices=choices), gr.update(choices=choices)]
    else:
        a = choices[0][1] if choices else None
        b = choices[1][1] if len(choices) > 1 else None
        pickers = [gr.update(choices=choices, value=a), gr.update(choices=choices, value=b)]
    return pickers + [gr.update(interactive=ready) for _ in WINNER_LABELS] + [judge_summary(state, visible)]


def judge_bar_stream(state: dict[str, Any], visible: int, offered: list[int] | None) -> tuple[list[Any] | None,
                                                                                            list[int]]:
    """The judge bar's update for one yield of a round, or None when it has not changed.

    `offered` is what the pickers offer now (None before the round's first yield). The bar
    changes only when a pane finishes or the round ends, so a streamed token costs nothing here.
    Picks are kept once two or more answers were on offer (the person may have chosen already).
    """
    panes = judgeable_panes(state, visible)
    running = bool(state.get("run_id"))
    if offered is not None and panes == offered and running:
        return None, offered
    keep = offered is not None and len(offered) >= 2
    return judge_updates(state, visible, keep_picks=keep), panes


def grid_classes(n: int) -> list[str]:
    return ["pane-grid", f"panes-{n}"]


def build(ctx: AppContext) -> None:
    """Lay out the Playground tab: question, then the panes' answers, then the judge bar."""
    state = gr.State(new_grid_state)
    default_model = ctx.settings.default_model if ctx.settings.default_model in ctx.catalog.models else None
    families = sorted({p.family for p in ctx.presets.prompting.values()}) or ["general"]
    with gr.Row(equal_height=True):
        question = gr.Textbox(placeholder="One question for every pane… (Enter sends)", show_label=False,
                              scale=6, elem_id="grid-input", lines=1, container=False, min_width=200)
        send = gr.Button("Send to all", variant="primary", scale=1, elem_id="grid-send", min_width=90)
        stop_btn = gr.Button("Stop all", scale=1, elem_id="grid-stop", min_width=80)
        clear_btn = gr.Button("Clear", scale=1, elem_id="grid-clear", min_width=80)
    with gr.Row(elem_id="grid-toolbar"):
        n_panes = gr.Radio([(f"{i} panes", str(i)) for i in range(2, MAX_PANES + 1)], value=str(DEFAULT_PANES),
                           show_label=False, elem_id="grid-n-panes", scale=4, min_width=520, container=False)
        followup = gr.Checkbox(False, label="Follow-up", elem_id="grid-followup", scale=1, min_width=120,
                               container=False)
        family = gr.Dropdown([(f"Presets: {f}", f) for f in families],
                             value="arithmetic" if "arithmetic" in families else families[0], show_label=False,
                             elem_id="grid-family", scale=2, min_width=180, container=False)
        modes_btn = gr.Button("Compare modes", elem_id="grid-compare-modes", size="sm", scale=1, min_width=135)
        models_btn = gr.Button("Compare models", elem_id="grid-compare-models", size="sm", scale=1, min_width=135)
    status = gr.Markdown(elem_id="grid-status")

    controls: list[list[gr.components.Component]] = []
    outputs: list[list[gr.components.Component]] = []
    columns: list[gr.Column] = []
    with gr.Row(equal_height=False, elem_id="pane-grid", elem_classes=grid_classes(DEFAULT_PANES)) as grid_row:
        for i in range(MAX_PANES):
            with gr.Column(visible=i < DEFAULT_PANES, elem_id=f"pane-{i + 1}", elem_classes=["pane"],
                           min_width=240) as col:
                columns.append(col)
                default_mode = ("zero_shot", "few_shot_cot")[i % 2]
                with gr.Accordion(pane_header(ctx, i, default_model, default_mode), open=False,
                                  elem_id=f"pane-{i + 1}-settings") as header:
                    model = gr.Dropdown(model_choices(ctx), value=default_model, label="Model",
                                        elem_id=f"pane-{i + 1}-model")
                    mode = gr.Dropdown([(MODE_TITLES[m], m) for m in MODES], value=default_mode, label="Mode",
                                       elem_id=f"pane-{i + 1}-mode")
                    with gr.Row():
                        backend = gr.Dropdown(backend_choices(ctx, default_model),
                                              value=backend_choices(ctx, default_model)[0],
                                              label="Backend", elem_id=f"pane-{i + 1}-backend", min_width=100)
                        device = gr.Dropdown(device_choices("llama_cpp"), value="cpu", label="Device",
                                             elem_id=f"pane-{i + 1}-device", min_width=100)
                    preset = gr.Dropdown(preset_choices(ctx, default_mode), value=DEFAULT_PRESET,
                                         label="Prompting preset", elem_id=f"pane-{i + 1}-preset")
                    shots = gr.Slider(0, 8, value=4, step=1, label="Shots (k exemplars)", elem_id=f"pane-{i + 1}-shots")
                    samples = gr.Slider(2, 20, value=5, step=1, label="Self-consistency samples",
                                        elem_id=f"pane-{i + 1}-samples")
                    sampling = gr.Dropdown(list(ctx.sampling_presets), value="deterministic"
                                           if "deterministic" in ctx.sampling_presets else None,
                                           label="Sampling preset", elem_id=f"pane-{i + 1}-sampling")
                chat = gr.Chatbot(show_label=False, height=ANSWER_HEIGHT, elem_id=f"pane-{i + 1}-chat",
                                  buttons=["copy"], elem_classes=["pane-answer"])
                answer = gr.Markdown(elem_id=f"pane-{i + 1}-answer", elem_classes=["pane-answer", "pane-meta"])
                metrics = gr.Markdown(elem_id=f"pane-{i + 1}-metrics", elem_classes=["pane-meta"])
                notices = gr.Markdown(elem_id=f"pane-{i + 1}-notices", elem_classes=["pane-meta"])
                with gr.Accordion("Exact prompt sent", open=False):
                    prompt = gr.Code(language=None, interactive=False, show_label=False,
                                     elem_id=f"pane-{i + 1}-prompt")
                with gr.Accordion("Self-consistency paths", open=False, visible=default_mode == "self_consistency") \
                        as paths_box:
                    paths = gr.Markdown(elem_id=f"pane-{i + 1}-paths")
                controls.append([model, backend, device, mode, preset, shots, samples, sampling])
                outputs.append([chat, answer, metrics, notices, prompt, paths])
                model.change(partial(_backend_update, ctx), [model], [backend, device])
                backend.change(lambda b: gr.update(choices=device_choices(b), value="cpu"), [backend], [device])
                mode.change(lambda m: (gr.update(choices=preset_choices(ctx, m), value=DEFAULT_PRESET),
                                       gr.update(visible=m == "self_consistency")), [mode], [preset, paths_box])
                gr.on([model.change, mode.change], partial(_header_update, ctx, i), [model, mode], [header])

    with gr.Row(elem_id="judge-bar"):
        # wide enough to read a choice whole (its text must not run under the arrow): on a phone each
        # picker takes the full width; on a desktop they take the room the verdict buttons leave
        pane_a = gr.Dropdown([], value=None, label="A = pane", elem_id="vote-a", scale=3, min_width=220)
        pane_b = gr.Dropdown([], value=None, label="B = pane", elem_id="vote-b", scale=3, min_width=220)
        vote_buttons = {w: gr.Button(label, elem_id=f"vote-{w}", interactive=False, scale=1, min_width=112, size="md")
                        for w, label in WINNER_LABELS.items()}
        note = gr.Textbox(label="Note (optional)", elem_id="vote-note", scale=2, min_width=140, max_length=MAX_NOTE)
    judge_hint = gr.Markdown(judge_summary(new_grid_state(), DEFAULT_PANES), elem_id="judge-hint")
    vote_status = gr.Markdown(elem_id="vote-status")

    flat_controls = [c for pane in controls for c in pane]
    flat_outputs = [c for pane in outputs for c in pane]
    judge_outputs = [pane_a, pane_b, *vote_buttons.values(), judge_hint]

    def on_send(request: gr.Request, st: dict[str, Any], q: str, n: str, fam: str, *values: Any) -> Iterator[list[Any]]:
        *controls_flat, follow = values          # the follow-up switch comes last (API order is stable)
        configs = [PaneConfig(*controls_flat[i * 8:(i + 1) * 8]) for i in range(MAX_PANES)]
        st = {**st, "user": login_name(request)}
        offered: list[int] | None = None
        for st2, views, msg in grid_run(ctx, st, q, int(n), fam, configs, bool(follow)):
            judge, offered = judge_bar_stream(st2, int(n), offered)
            yield [st2, msg, ""] + _flatten_views(views) + (judge or [gr.skip()] * len(judge_outputs))

    # inputs: question, pane count, family, 8 controls per pane, follow-up; outputs: status, vote
    # status, 6 per pane, then the judge bar (tests/test_load.py drives this API by position)
    send_inputs = [state, question, n_panes, family, *flat_controls, followup]
    gr.on([send.click, question.submit], on_send, send_inputs,
          [state, status, vote_status, *flat_outputs, *judge_outputs], api_name="grid_send")
    stop_btn.click(partial(stop, ctx), [state], None, queue=False)

    def on_clear(st: dict[str, Any], n: str) -> list[Any]:
        fresh = {**new_grid_state(), "session_id": st["session_id"]}
        return [fresh, "", ""] + _flatten_views([EMPTY_VIEW] * MAX_PANES) + judge_updates(fresh, int(n))

    clear_btn.click(on_clear, [state, n_panes], [state, status, vote_status, *flat_outputs, *judge_outputs])

    def on_pane_count(n: str, st: dict[str, Any]) -> list[Any]:
        k = int(n)
        return ([gr.update(elem_classes=grid_classes(k))] + [gr.update(visible=i < k) for i in range(MAX_PANES)]
                + judge_updates(st, k))

    n_panes.change(on_pane_count, [n_panes, state], [grid_row, *columns, *judge_outputs])
    followup.change(followup_message, [followup], [status])
    for winner, button in vote_buttons.items():
        button.click(_vote_handler(ctx, winner), [state, pane_a, pane_b, note, n_panes], [state, vote_status],
                     api_name=f"grid_vote_{winner}")

    pane_models = [c[0] for c in controls]
    pane_modes = [c[3] for c in controls]

    def apply_layout(n: int, models: list[str], modes: list[str], message: str) -> list[Any]:
        if n == 0:
            return [message, gr.skip()] + [gr.skip()] * (2 * MAX_PANES)
        return ([message, str(n)] + [models[i] if i < n else gr.skip() for i in range(MAX_PANES)]
                + [modes[i] if i < n else gr.skip() for i in range(MAX_PANES)])

    layout_outputs = [status, n_panes, *pane_models, *pane_modes]
    modes_btn.click(lambda m: apply_layout(*compare_modes_layout(ctx, m or ctx.settings.default_model),
                                           "One model under every prompting mode."),
                    [pane_models[0]], layout_outputs)
    models_btn.click(lambda m: apply_layout(*compare_models_layout(ctx, m or "zero_shot")), [pane_modes[0]],
                     layout_outputs)


def _vote_handler(ctx: AppContext, winner: str):
    """A click handler for one verdict (a closure: Gradio sees gr.Request only on plain functions).
    `visible` is the pane count on screen: a hidden pane is refused even if a request names it.

    While a round runs, the Send handler owns the tab's state (it writes each pane that finishes):
    a vote then leaves the state alone, since writing back the copy it read would undo a pane that
    finished meanwhile. Storage still refuses a second vote on the pair."""
    def on_vote(state: dict[str, Any], a: str | None, b: str | None, note: str, visible: str,
                request: gr.Request) -> tuple[Any, str]:
        if not a or not b:
            return gr.skip(), "⚠️ Pick two panes (A and B)."
        new_state, message = vote_on_pair(ctx, {**state, "user": login_name(request)}, int(a), int(b), winner, note,
                                          visible=int(visible))
        return (gr.skip() if state.get("run_id") else new_state), message
    return on_vote


def _backend_update(ctx: AppContext, model_id: str) -> tuple:
    backends = backend_choices(ctx, model_id)
    return gr.update(choices=backends, value=backends[0]), gr.update(choices=device_choices(backends[0]), value="cpu")


def _header_update(ctx: AppContext, index: int, model_id: str, mode: str) -> Any:
    return gr.update(label=pane_header(ctx, index, model_id, mode))


def _flatten_views(views: Sequence[PaneView | None]) -> list[Any]:
    out: list[Any] = []
    for view in views:
        if view is None:
            out += [gr.skip()] * 6
        else:
            out += [view.messages, view.answer, view.metrics, view.notices, view.prompt, view.paths]
    return out
