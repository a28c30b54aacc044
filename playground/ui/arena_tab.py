"""The Arena tab: blind battles between two contestants drawn from a pool, judged, then revealed.

The battle logic is in `playground.arena`; the handlers here (`arena_send`, `arena_new_round`,
`arena_vote`, `arena_judge`) turn it into views and are what tests call without a browser.
"Judge this battle too" appears only after the person's vote, and `arena_judge`
refuses before it too (the person must not see a judge's opinion first); it is for admins only
(a judge run takes the server's CPU for minutes; `playground/auth/policy.py` hides and refuses it
for annotators, who still vote and see the reveal). `build` only lays
out components and wires them. Per-user state (session uuid, the round) lives in gr.State.
"""
from __future__ import annotations

import html
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import gradio as gr

from playground.arena import (SIDE_NAMES, SIDES, ArenaError, Contestant, Revealed, Round,
                              begin_turn, build_pool, can_vote, cast_vote, draw_round, record_answer, reveal,
                              same_answers, saved_pool, session_id_for)
from playground.assigned import assigned_round
from playground.compare import PaneSpec, run_panes
from playground.context import AppContext
from playground.engine import PaneResult
from playground.errors import PlaygroundError
from playground.judge.live import BattleJudgement, judge_voted_battle
from playground.judge.prompts import load_judge_prompts
from playground.prompting.plan import MODE_TITLES, MODES
from playground.recording import MAX_NOTE, save_generation
from playground.ui.arena_stream import AlignedStart
from playground.ui.common import format_metrics, model_choices, new_session_id, notices_markdown
from playground.verdicts import WINNER_LABELS
from storage.pairs import SAME_ANSWER_NOTICE, SAME_ANSWER_VERDICTS

DEFAULT_MODES = ("zero_shot", "instruction")
DEFAULT_FAMILY = "general"
DEFAULT_SAMPLING = "balanced"
DEFAULT_MAX_TOKENS = 256
VOTE_BUTTONS = {"left": "← A is better", "right": "B is better →", "tie": "Tie", "both_bad": "Both are bad"}
STREAM_INTERVAL_S = 0.1   # s between looks at the two streams: a readable rate, not one update per token
WAITING = "⏳ Both models are answering… (their answers appear together, so neither side's speed gives it away)"
ANSWERING = "⏳ Both models are answering…"
HELLO = "Ask a question: two anonymous models answer side by side. Vote, and see who was who."
JUDGE_MAX_TOKENS = 256   # the judge's default token budget here (at most its prompt's)
VERDICT_WORDS = {**WINNER_LABELS, "inconsistent": "no clear verdict: the two orders disagree",
                 "unparseable": "no verdict: an order's output had no [[A]], [[B]], [[C]] or [[D]] marker"}
ORDER_WORDS = {**WINNER_LABELS, "unparseable": "no marker"}


@dataclass(frozen=True)
class PoolChoice:
    """The pool controls: which models and modes compete, and the settings both sides share."""

    models: tuple[str, ...]
    modes: tuple[str, ...] = ()
    family: str = DEFAULT_FAMILY
    max_new_tokens: int = DEFAULT_MAX_TOKENS
    sampling: str | None = DEFAULT_SAMPLING


@dataclass
class ArenaView:
    """What the tab shows; `None` chat/metrics mean "leave as is"."""

    status: str
    reveal: str = ""
    can_vote: bool = False
    chats: list[list[dict[str, Any]]] | None = None
    metrics: list[str] | None = None
    notices: list[str] | None = None
    voted: bool = False    # the round is voted: the judge controls may appear
    same_answer: bool = False  # both answers are the same text: only Tie / Both are bad are offered


def new_arena_state() -> dict[str, Any]:
    """A session's arena state: its uuid (stored on every row) and the current round."""
    return {"session_uuid": new_session_id(), "round": None, "run_id": None}


def _round(state: dict[str, Any]) -> Round | None:
    return Round.from_dict(state["round"]) if state.get("round") else None


def pool_summary(models: Sequence[str] | None, modes: Sequence[str] | None) -> str:
    """One line about the pool, or why it cannot make a battle."""
    try:
        pool = build_pool(models or (), modes or ())
    except ArenaError as exc:
        return f"⚠️ {exc}"
    n = len(pool)
    names = ", ".join(f"`{c.key}`" for c in pool)
    rule = "" if modes else f" (models only, each in {MODE_TITLES['zero_shot'].lower()})"
    return f"**Pool:** {n} contestants{rule}, {n * (n - 1) // 2} possible pairs: {names}"


def current_pool(ctx: AppContext, choice: PoolChoice) -> list[Contestant]:
    """The saved pool when one is set (`arena pool`, the Train tab's "Battle it"), else the user's choice."""
    return _saved_pool(ctx) or build_pool(choice.models, choice.modes)


def _saved_pool(ctx: AppContext) -> list[Contestant] | None:
    """`saved_pool`; a model the catalog does not know yet (trained by `python app.py train` while the app
    ran) gets one re-scan of the models folder before the pool is refused."""
    try:
        return saved_pool(ctx.settings.db_path, ctx.catalog.ids())
    except ArenaError:
        return saved_pool(ctx.settings.db_path, ctx.refresh_catalog().ids())


def pool_text(ctx: AppContext, models: Sequence[str] | None, modes: Sequence[str] | None) -> str:
    """`pool_summary`, or the saved pool that replaces the user's choice while it is set."""
    try:
        saved = _saved_pool(ctx)
    except ArenaError as exc:
        return f"⚠️ {exc}"
    if saved is None:
        return pool_summary(models, modes)
    names = " vs ".join(f"`{c.key}`" for c in saved)
    return (f"**Saved pool:** {names} (models only, zero-shot), set by `arena pool` or the Train tab; it replaces "
            "the models and modes picked above until cleared (`python app.py arena pool --clear`).")


def contestant_pane(ctx: AppContext, contestant: Contestant, choice: PoolChoice) -> PaneSpec:
    """How a contestant runs: its mode with the family's preset, the sampling both sides share."""
    mode = contestant.run_mode
    preset = next((p.id for p in ctx.presets.prompting.values() if p.mode == mode and p.family == choice.family),
                  None)
    sampling = ctx.sampling(choice.sampling or None, max_new_tokens=int(choice.max_new_tokens))
    return PaneSpec(model_id=contestant.model_id, mode=mode, device=ctx.settings.device, preset_id=preset,
                    sampling=sampling)


# ---------------------------------------------------------------- views


def blind_answer(result: PaneResult, followup: str | None = None) -> str:
    """The answer as a blind side shows it: only what the model wrote.

    Zero-shot CoT's second step starts with the preset's trigger ("Therefore, the answer is"),
    which is prompt text and would name the mode: it is left out, the model's continuation kept.
    """
    if result.followup_output and followup and result.followup_output.startswith(followup):
        tail = result.followup_output[len(followup):].strip()
        return f"{result.output.rstrip()}\n\n{tail}" if tail else result.output
    return result.answer_text


def reveal_markdown(revealed: Sequence[Revealed]) -> str:
    """Who was who, each with the exact prompts it was sent (one per turn); the figures and notices held
    back until the vote appear under each side."""
    lines = ["### Who was who"]
    for r in revealed:
        title = MODE_TITLES.get(r.mode, r.mode)
        lines.append(f"- **{r.name}** was **{html.escape(r.model_id)}** · {html.escape(title)} (`{r.mode}`)")
    for r in revealed:
        turns = len(r.prompts)
        body = "\n\n".join(_fenced(f"turn {i}", p) for i, p in enumerate(r.prompts, 1)) or "(no prompt was sent)"
        lines.append(f"<details><summary>Exact prompt{'s' if turns != 1 else ''} {r.name} sent "
                     f"({html.escape(r.key)}, {turns} turn{'s' if turns != 1 else ''})</summary>\n\n{body}\n\n</details>")
    return "\n\n".join(lines)


def _fenced(caption: str, text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"*{caption}*\n\n{fence}text\n{text}\n{fence}"


def round_view(rnd: Round | None, status: str) -> ArenaView:
    """Everything the tab shows for a round between turns (a turn being answered is `streaming_view`).
    Before the vote the two sides show the answers and nothing else (no token counts, speeds or
    notices: they give away the mode or the model's size); after it, those appear together with
    who was who."""
    if rnd is None:
        return ArenaView(status=status, chats=[[], []], metrics=["", ""], notices=["", ""])
    chats = [[dict(m) for m in rnd.side(s).transcript] for s in SIDES]
    metrics, notices = side_extras(rnd)
    return ArenaView(status=status, reveal=_reveal_text(rnd), can_vote=can_vote(rnd)[0], chats=chats,
                     metrics=metrics, notices=notices, voted=rnd.status == "voted", same_answer=same_answers(rnd))


def side_extras(rnd: Round) -> tuple[list[str], list[str]]:
    """Figures and notices under each side: after the vote only; before it just a failure, if any
    (a failed round cannot be judged, so saying so gives nothing away)."""
    if rnd.status == "voted":
        return [rnd.side(s).figures for s in SIDES], [rnd.side(s).notices for s in SIDES]
    notices = []
    for s in SIDES:
        error = rnd.side(s).error
        notices.append(f"❌ **Error:** {html.escape(error)}" if error and rnd.status == "failed" else "")
    return ["", ""], notices


def message_view(rnd: Round | None, status: str) -> ArenaView:
    """A message about the round that leaves the answers on screen as they are (figures after a vote)."""
    metrics, notices = side_extras(rnd) if rnd is not None else (None, None)
    return ArenaView(status=status, reveal=_reveal_text(rnd), can_vote=can_vote(rnd)[0], metrics=metrics,
                     notices=notices, voted=rnd is not None and rnd.status == "voted", same_answer=same_answers(rnd))


def _reveal_text(rnd: Round | None) -> str:
    return reveal_markdown(reveal(rnd)) if rnd is not None and rnd.status == "voted" else ""


# ---------------------------------------------------------------- handlers


def arena_new_round(ctx: AppContext, state: dict[str, Any], choice: PoolChoice,
                    rng: random.Random | None = None, username: str | None = None) -> tuple[dict[str, Any], ArenaView]:
    """Abandon the current round (stopping its answers); serve the user's next assigned battle
    (playground/assigned.py), else draw a new pair from the pool."""
    ctx.runs.cancel(state.get("run_id"))
    state = {**state, "round": None, "run_id": None}
    try:
        assigned = assigned_round(ctx.settings.db_path, username)
        if assigned is not None:
            state["round"] = assigned[0].to_dict()
            same = f" ⚠️ {SAME_ANSWER_NOTICE}" if same_answers(assigned[0]) else ""
            return state, round_view(assigned[0], f"📋 Assigned battle ({assigned[1]} open for you): judge these "
                                                  f"two answers.{same}")
        rnd = draw_round(ctx.settings.db_path, current_pool(ctx, choice), rng or random.Random())
    except PlaygroundError as exc:
        return state, round_view(None, f"⚠️ {exc}")
    state["round"] = rnd.to_dict()
    return state, round_view(rnd, "New round: two new anonymous contestants are ready. Ask a question.")


def arena_send(ctx: AppContext, state: dict[str, Any], question: str, choice: PoolChoice,
               username: str | None = None, rng: random.Random | None = None
               ) -> Iterator[tuple[dict[str, Any], ArenaView]]:
    """One turn: both contestants answer at once (a new pair is drawn if there is no round).

    Yields (state, view) while streaming; each finished answer is stored with the session id.
    """
    question = (question or "").strip()
    rnd = _round(state)
    if not question:
        yield state, message_view(rnd, "⚠️ Type a question first.")
        return
    try:
        if rnd is None:
            rnd = draw_round(ctx.settings.db_path, current_pool(ctx, choice), rng or random.Random())
        specs = [contestant_pane(ctx, rnd.side(s).contestant, choice) for s in SIDES]
        followups = [_followup(ctx, spec) for spec in specs]
        histories = [list(rnd.side(s).history) for s in SIDES]
        rnd = begin_turn(rnd, question)
    except PlaygroundError as exc:
        yield state, message_view(_round(state), f"⚠️ {exc}")
        return
    session_id = session_id_for(state["session_uuid"], username)
    run_id, cancel = ctx.runs.start()
    # Until both answers are on screen the session keeps the round as it was when the turn began
    # ("running"): a vote cannot land on an answer still being replayed, whatever the request says.
    running = {**state, "round": rnd.to_dict(), "run_id": run_id}
    before = [list(rnd.side(s).transcript) for s in SIDES]
    aligned = AlignedStart(len(SIDES))
    shown: list[str] | None = None
    yield running, streaming_view(before, question, None)
    try:
        for results in run_panes(ctx, specs, question, histories, cancel, min_interval_s=STREAM_INTERVAL_S):
            for side, spec, history, result, followup in zip(SIDES, specs, histories, results, followups,
                                                              strict=True):
                if result.done and not rnd.side(side).done:
                    _finish_side(ctx, rnd, side, spec, history, question, result, session_id, followup)
            texts = [blind_answer(r, f) for r, f in zip(results, followups, strict=True)]
            aligned.feed(time.monotonic(), texts, [r.done for r in results])
            now_shown = aligned.shown(time.monotonic())
            if now_shown != shown:
                shown = now_shown
                yield running, streaming_view(before, question, shown)
        while (left := aligned.remaining(time.monotonic())):     # the early side's replay catches up
            time.sleep(min(STREAM_INTERVAL_S, left))
            now_shown = aligned.shown(time.monotonic())
            if now_shown != shown:
                shown = now_shown
                yield running, streaming_view(before, question, shown)
    finally:
        ctx.runs.finish(run_id)
    # one update carries the final answers, the status and the vote buttons
    state = {**state, "round": rnd.to_dict(), "run_id": None}
    yield state, round_view(rnd, _after_turn_status(rnd))


def streaming_view(before: Sequence[list[dict[str, Any]]], question: str, shown: Sequence[str] | None) -> ArenaView:
    """A turn being answered: the question on both sides, then each side's text as `AlignedStart`
    shows it (nothing on either side until both have begun). The status says the same thing until
    both answers are complete (no count: "1/2 complete" would say which side wrote less), the vote
    buttons stay off, and figures and notices stay hidden."""
    chats = []
    for i, transcript in enumerate(before):
        chat = [dict(m) for m in transcript] + [{"role": "user", "content": question}]
        if shown is not None and shown[i]:
            chat.append({"role": "assistant", "content": shown[i]})
        chats.append(chat)
    status = ANSWERING if shown is not None else WAITING
    return ArenaView(status=status, can_vote=False, chats=chats, metrics=["", ""], notices=["", ""])


def _followup(ctx: AppContext, spec: PaneSpec) -> str | None:
    """The preset's second-step trigger (zero-shot CoT), which a blind side must not show."""
    preset = ctx.presets.prompting.get(spec.preset_id) if spec.preset_id else None
    return getattr(preset, "followup", None)


def _finish_side(ctx: AppContext, rnd: Round, side: str, spec: PaneSpec, history: list[dict[str, str]],
                 question: str, result: PaneResult, session_id: str, followup: str | None = None) -> None:
    """Store a side's finished answer (unless it failed empty) and record it in the round."""
    generation_id, error = None, result.error
    if result.answer_text or not result.error:
        try:
            model = ctx.catalog.get(spec.model_id)
            generation_id = save_generation(
                ctx.settings.db_path, session_id=session_id, spec=model, backend=spec.backend or model.backends[0],
                device=spec.device, mode=spec.mode, preset=spec.preset_id,
                conversation=history + [{"role": "user", "content": question}], result=result,
                sampling=spec.sampling)
        except PlaygroundError as exc:
            error = error or f"the answer could not be saved: {exc}"
    record_answer(rnd, side, question, blind_answer(result, followup), result.exact_prompt, generation_id, error,
                  figures=format_metrics(result), notices=notices_markdown(result))


def _after_turn_status(rnd: Round) -> str:
    ok, why = can_vote(rnd)
    if ok and same_answers(rnd):
        return (f"✅ Both answers are complete. ⚠️ {SAME_ANSWER_NOTICE} Vote below, press New round for another "
                "pair, or ask a follow-up.")
    if ok:
        return "✅ Both answers are complete. Vote below, or ask a follow-up (the vote covers the conversation)."
    return f"⚠️ {why[0].upper()}{why[1:]}."


def arena_vote(ctx: AppContext, state: dict[str, Any], winner: str, note: str = "",
               username: str | None = None, tag: str = "") -> tuple[dict[str, Any], ArenaView]:
    """Judge the round: store battle + vote (once, with the optional category tag), then reveal who was who."""
    rnd = _round(state)
    if rnd is None:
        return state, message_view(None, "⚠️ Ask a question first: both models answer, then you vote.")
    try:
        rnd, result = cast_vote(ctx.settings.db_path, rnd, winner, session_id_for(state["session_uuid"], username),
                                (note or "").strip() or None, tag)
    except PlaygroundError as exc:
        return state, message_view(rnd, f"⚠️ Vote not saved: {exc}")
    state = {**state, "round": rnd.to_dict()}
    if result.duplicate:
        message = (f"You already voted in this round ({WINNER_LABELS[result.winner]}, vote #{result.vote_id}): "
                   "not counted twice. Press New round for a new pair.")
    else:
        message = (f"✅ Vote saved: {WINNER_LABELS[result.winner]} (vote #{result.vote_id}). "
                   "Press New round for a new pair.")
    return state, message_view(rnd, message)


def judgement_markdown(j: BattleJudgement) -> str:
    """The judge's verdict (both orders combined, then each order) next to the person's vote."""
    lines = [f"**You:** {WINNER_LABELS[j.person]}"]
    if j.verdict is None:
        lines.append(f"**Judge** `{j.judge}`: no verdict" + (f" ({j.problem})" if j.problem else "") + ".")
        return "\n\n".join(lines)
    orders = (f"with the answers in the order you saw them: {ORDER_WORDS.get(j.ab, j.ab)}; swapped: "
              f"{ORDER_WORDS.get(j.ba, j.ba)}")
    lines.append(f"**Judge** `{j.judge}`: **{VERDICT_WORDS.get(j.verdict, j.verdict)}** ({orders}).")
    if j.vote is not None:
        agree = "✅ agrees with you" if j.vote == j.person else "❌ differs from you"
        lines.append(f"Stored as the judge's vote: {WINNER_LABELS[j.vote]} ({agree}); the leaderboard counts it "
                     "only under *Votes from: judge models* or *both*.")
    else:
        lines.append("Not stored as a vote (an order gave no verdict, or inconsistent pairs are dropped).")
    return "\n\n".join(lines)


def arena_judge(ctx: AppContext, state: dict[str, Any], judge_model: str | None, prompt_id: str | None,
                max_tokens: float | None = JUDGE_MAX_TOKENS) -> str:
    """"Judge this battle too": a judge model on the voted battle, both orders; refused before the vote."""
    rnd = _round(state)
    if rnd is None or rnd.status != "voted":
        return "⚠️ Vote first: a judge's opinion is shown only after yours."
    if not judge_model:
        return "⚠️ Pick a judge model first."
    try:
        judgement = judge_voted_battle(ctx, rnd, judge_model, prompt_id or "general",
                                       max_tokens=int(max_tokens or JUDGE_MAX_TOKENS))
    except PlaygroundError as exc:
        return f"⚠️ The judge could not run: {exc}"
    return judgement_markdown(judgement)


def judge_box_update(view: ArenaView) -> Any:
    """The judge controls exist on screen only once the round is voted."""
    return gr.update(visible=view.voted)


# ---------------------------------------------------------------- layout


def build(ctx: AppContext) -> None:
    """Lay out the Arena tab and wire it to the handlers."""
    state = gr.State(new_arena_state)
    default_models = [ctx.settings.default_model] if ctx.settings.default_model in ctx.catalog.models else []
    families = sorted({p.family for p in ctx.presets.prompting.values()}) or [DEFAULT_FAMILY]
    gr.Markdown("Blind battle: two contestants are drawn from your pool (pairs with fewer battles first) "
                "and shown as **Model A** and **Model B**. Who was who is revealed after your vote.")
    # folded: the pool names the contestants, and over a one-pair pool only left/right is unknown, so it
    # stays out of the way of a blind battle (opened on purpose, it says what the battles are drawn from)
    with gr.Accordion("Settings: contestant pool, sampling, answer length", open=False, elem_id="arena-settings"):
        with gr.Row():
            models = gr.Dropdown(model_choices(ctx), value=default_models, multiselect=True, label="Models",
                                 elem_id="arena-models", scale=3)
            modes = gr.CheckboxGroup([(MODE_TITLES[m], m) for m in MODES], value=list(DEFAULT_MODES),
                                     label="Prompting modes (none checked: models only, zero-shot)",
                                     elem_id="arena-modes", scale=4)
        with gr.Row():
            family = gr.Dropdown(families, value=DEFAULT_FAMILY if DEFAULT_FAMILY in families else families[0],
                                 label="Task family (prompting presets)", elem_id="arena-family")
            sampling = gr.Dropdown(list(ctx.sampling_presets), label="Sampling preset (both sides)",
                                   value=DEFAULT_SAMPLING if DEFAULT_SAMPLING in ctx.sampling_presets else None,
                                   elem_id="arena-sampling")
            max_tokens = gr.Slider(8, 1024, value=DEFAULT_MAX_TOKENS, step=8, label="Max new tokens",
                                   elem_id="arena-max-tokens")
        pool_info = gr.Markdown(lambda: pool_text(ctx, default_models, DEFAULT_MODES), elem_id="arena-pool")
    with gr.Row(equal_height=False):
        sides = []
        for side in SIDES:
            with gr.Column(min_width=320, elem_id=f"arena-{side}"):
                chat = gr.Chatbot(label=SIDE_NAMES[side], height=380, elem_id=f"arena-{side}-chat",
                                  buttons=["copy"])
                metrics = gr.Markdown(elem_id=f"arena-{side}-metrics")
                notices = gr.Markdown(elem_id=f"arena-{side}-notices")
                sides.append((chat, metrics, notices))
    with gr.Row():
        question = gr.Textbox(placeholder="Ask both anonymous models… (Enter sends; follow-ups keep the pair)",
                              show_label=False, scale=6, elem_id="arena-input")
        send = gr.Button("Send", variant="primary", scale=1, elem_id="arena-send")
        new_round = gr.Button("New round", scale=1, elem_id="arena-new-round")
    status = gr.Markdown(HELLO, elem_id="arena-status")
    with gr.Row():
        note = gr.Textbox(label="Note (optional, saved with your vote)", elem_id="arena-note", scale=3,
                          max_length=MAX_NOTE)
        tag = gr.Textbox(label="Category tag (optional)", placeholder="e.g. coding, maths, poetry",
                         elem_id="arena-tag", scale=1, max_length=40,
                         info="the leaderboard can rank each category; empty = the task family")
    with gr.Row():
        buttons = {w: gr.Button(label, interactive=False, elem_id=f"arena-vote-{w}") for w, label in VOTE_BUTTONS.items()}
    revealed = gr.Markdown(elem_id="arena-reveal")
    judge_prompts = sorted(load_judge_prompts(ctx.settings.presets_dir).prompts) or ["general"]
    # admins only (playground/auth/policy.py hides this column from annotators): a judge run costs the
    # server minutes of CPU; inside it, the box appears after the vote only
    with gr.Column(elem_id="arena-judge-controls"):
        with gr.Group(visible=False, elem_id="arena-judge-box") as judge_box:
            with gr.Row(equal_height=True):
                judge_model = gr.Dropdown(model_choices(ctx), value=default_models[0] if default_models else None,
                                          label="Judge model", elem_id="arena-judge-with", scale=3)
                judge_prompt = gr.Dropdown(judge_prompts,
                                           value="general" if "general" in judge_prompts else judge_prompts[0],
                                           label="Judge prompt", elem_id="arena-judge-prompt", scale=1)
                judge_tokens = gr.Slider(16, 512, value=JUDGE_MAX_TOKENS, step=16, label="Judge's max tokens",
                                         elem_id="arena-judge-max-tokens", scale=2)
                judge_btn = gr.Button("Judge this battle too", elem_id="arena-judge-run", scale=1)
            judge_result = gr.Markdown(elem_id="arena-judge-result")

    chats = [s[0] for s in sides]
    metric_boxes = [s[1] for s in sides]
    notice_boxes = [s[2] for s in sides]
    pool_inputs = [models, modes, family, max_tokens, sampling]
    round_outputs = [state, *chats, *metric_boxes, *notice_boxes, status, revealed, *buttons.values(), judge_box,
                     judge_result]

    def on_send(st: dict[str, Any], question: str, models: list[str], modes: list[str], family: str,
                max_new_tokens: float, sampling: str, request: gr.Request) -> Iterator[list[Any]]:
        cleared = False
        pool = _choice(models, modes, family, max_new_tokens, sampling)
        for st2, view in arena_send(ctx, st, question, pool, _username(request)):
            clear = not cleared and st2.get("run_id") is not None   # the turn started: empty the box
            cleared |= clear
            yield [*_view_outputs(st2, view), *_judge_outputs(view), "" if clear else gr.skip()]

    def on_new_round(st: dict[str, Any], models: list[str], modes: list[str], family: str, max_new_tokens: float,
                     sampling: str, request: gr.Request) -> list[Any]:
        st2, view = arena_new_round(ctx, st, _choice(models, modes, family, max_new_tokens, sampling),
                                    username=_username(request))
        return [*_view_outputs(st2, view), *_judge_outputs(view)]

    send_event = gr.on([send.click, question.submit], on_send, [state, question, *pool_inputs],
                       [*round_outputs, question], api_name="arena_send")
    new_round.click(on_new_round, [state, *pool_inputs], round_outputs, api_name="arena_new_round",
                    cancels=[send_event])
    for winner, button in buttons.items():
        button.click(_vote_handler(ctx, winner), [state, note, tag],
                     [state, status, revealed, *metric_boxes, *notice_boxes, *buttons.values(), judge_box],
                     api_name=f"arena_vote_{winner}")
    judge_btn.click(lambda st, m, p, t: arena_judge(ctx, st, m, p, t), [state, judge_model, judge_prompt, judge_tokens],
                    [judge_result], api_name="arena_judge")
    gr.on([models.change, modes.change], lambda m, d: pool_text(ctx, m, d), [models, modes], [pool_info],
          queue=False, api_visibility="private")


def _vote_handler(ctx: AppContext, winner: str):
    """A click handler for one verdict button (gets the login name through gr.Request)."""
    def on_vote(st: dict[str, Any], note: str, tag: str, request: gr.Request) -> list[Any]:
        st2, view = arena_vote(ctx, st, winner, note, _username(request), tag)
        extras = [*(view.metrics or [gr.skip()] * 2), *(view.notices or [gr.skip()] * 2)]
        return [st2, view.status, view.reveal, *extras, *_vote_buttons(view.can_vote, view.same_answer),
                judge_box_update(view)]
    return on_vote


def _username(request: gr.Request | None) -> str | None:
    return getattr(request, "username", None) or None


def _choice(models: Sequence[str] | None, modes: Sequence[str] | None, family: str | None,
            max_tokens: float | None, sampling: str | None) -> PoolChoice:
    return PoolChoice(models=tuple(models or ()), modes=tuple(modes or ()), family=family or DEFAULT_FAMILY,
                      max_new_tokens=int(max_tokens or DEFAULT_MAX_TOKENS), sampling=sampling or None)


def _judge_outputs(view: ArenaView) -> list[Any]:
    """The judge box (shown only once voted) and its result, emptied for a new round or turn."""
    return [judge_box_update(view), ""]


def _vote_buttons(enabled: bool, same_answer: bool = False) -> list[Any]:
    """Verdict buttons: greyed out until voting opens; on identical answers only Tie and Both are bad."""
    return [gr.update(interactive=enabled and (not same_answer or w in SAME_ANSWER_VERDICTS)) for w in VOTE_BUTTONS]


def _view_outputs(state: dict[str, Any], view: ArenaView) -> list[Any]:
    def kept(values: list[Any] | None) -> list[Any]:
        return values if values is not None else [gr.skip(), gr.skip()]
    return [state, *kept(view.chats), *kept(view.metrics), *kept(view.notices), view.status, view.reveal,
            *_vote_buttons(view.can_vote, view.same_answer)]
