"""The Train tab: DPO or KTO on the stored votes into a new catalog model, with progress, live metrics,
Cancel, and after a run "Battle it against its base" (saves base + tuned as the Arena's pool).

Handlers are plain functions (tested without a browser). Training runs in a worker thread; the
handler generator drains its progress queue and yields a status line (step, ETA) and a figure of
TRL's logged loss, rewards/margins and rewards/accuracies. Cancel sets the run's event in
`ctx.runs`; the trainer stops at the next step and nothing is written.

Admin-only (training is slow and writes into the shared models folder; the pool applies to every
user): the Train, Cancel and Battle buttons are in `playground/auth/policy.py`, which refuses their
events for non-admins server-side.
"""
from __future__ import annotations

import queue
import threading
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gradio as gr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from playground.arena import save_pool
from playground.dates import parse_when
from playground.context import AppContext
from playground.errors import PlaygroundError
from playground.export import PreferenceFilters
from playground.training.dpo import (DPOHyperparameters, TrainProgress, TrainRequest, TrainResult, as_background_work,
                                     train_dpo)

PLOTTED = ("loss", "rewards/margins", "rewards/accuracies")   # DPO; KTO logs "kl" instead of accuracies


@dataclass
class TrainView:
    status: str
    history: list[dict[str, float]] = field(default_factory=list)
    result: TrainResult | None = None

    def figure(self) -> Figure | None:
        return metrics_figure(self.history) if self.history else None


def trainable_choices(ctx: AppContext) -> list[tuple[str, str]]:
    """Catalog models with weights on disk that transformers loads (GGUF files and HF folders)."""
    return [(f"{s.display_name}{' · tuned from ' + s.tuned_from if s.tuned_from else ''}", s.id)
            for s in ctx.catalog if s.format in ("gguf", "hf") and s.available]


def metrics_figure(history: list[dict[str, float]]) -> Figure:
    """One panel per logged metric against the step (a Figure, no pyplot: no shared global state)."""
    fig = Figure(figsize=(9.0, 2.8), dpi=100)
    kto = any("kl" in h for h in history) and not any("rewards/accuracies" in h for h in history)
    plotted = (*PLOTTED[:2], "kl") if kto else PLOTTED
    for k, key in enumerate(plotted):
        ax = fig.add_subplot(1, len(plotted), k + 1)
        points = [(h["step"], h[key]) for h in history if key in h]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))     # steps are whole numbers
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def status_line(p: TrainProgress, notice: str | None = None) -> str:
    warning = f"⚠️ Before you read the results: {notice}\n\n" if notice else ""
    if p.stage != "training":
        return f"{warning}⏳ {p.stage}…"
    eta = f", about {p.eta:.0f} s left" if p.eta is not None else ""
    return f"{warning}⏳ step {p.step} of {p.max_steps} ({p.elapsed:.0f} s so far{eta})"


def result_text(result: TrainResult, objective: str = "dpo") -> str:
    warning = f"⚠️ {result.notice[0].upper()}{result.notice[1:]}\n\n" if result.notice else ""
    return (f"{warning}✅ **{result.model_id}** written to `{result.path}` and added to the catalog "
            f"({result.pairs} {'rows' if objective == 'kto' else 'pairs'}, {result.steps} steps, "
            f"{result.wall_seconds:.0f} s). Model card: "
            f"`{result.path / 'README.md'}`.\n\n"
            f"Held-out preference accuracy: base {result.base_accuracy.label()}; tuned "
            f"{result.tuned_accuracy.label()}; tuned implicit reward prefers the chosen answer "
            f"{result.implicit.label()}.")


def build_request(ctx: AppContext, base: str | None, name: str | None, method: str, contestant: str | None,
                  since: str | None, until: str | None, anonymous_only: bool, include_truncated: bool,
                  beta: float, lr: float | None, epochs: float, max_steps: float | None, batch_size: float,
                  max_length: float, held_out: float, objective: str = "dpo", agreed_only: bool = False
                  ) -> TrainRequest:
    """The form as a TrainRequest; empty or unreadable fields -> PlaygroundError naming the field."""
    if not base:
        raise PlaygroundError("choose a base model")
    if not (name or "").strip():
        raise PlaygroundError("give the tuned model a name (its folder under the models folder)")
    filters = PreferenceFilters(model=contestant or None, since=_when("Votes since", since),
                                until=_when("Votes until", until, end_of_day=True), anonymous_only=bool(anonymous_only),
                                include_truncated=bool(include_truncated), agreed_only=bool(agreed_only))
    hyper = DPOHyperparameters(beta=float(beta), learning_rate=float(lr) if lr else None, epochs=float(epochs),
                               batch_size=int(batch_size), max_length=int(max_length),
                               max_steps=int(max_steps) if max_steps and max_steps > 0 else -1)
    return TrainRequest(base=base, name=name.strip(), models_dir=ctx.settings.models_dir,
                        method="full" if method == "full" else "lora", filters=filters, hyper=hyper,
                        held_out_fraction=float(held_out), device=ctx.settings.device, objective=objective or "dpo")


def _when(field_label: str, text: str | None, end_of_day: bool = False) -> float | None:
    """A date field of the form (playground/dates.py: as `export --since/--until` reads it); an error names the field."""
    try:
        return parse_when(text, end_of_day=end_of_day)
    except PlaygroundError as exc:
        raise PlaygroundError(f"'{field_label}' (under Which votes): {exc}") from None


def run_training_view(ctx: AppContext, state: dict[str, Any], make_request: Callable[[], TrainRequest],
                      ) -> Iterator[tuple[dict[str, Any], TrainView]]:
    """Validate, train in a worker thread, yield (state, view) at every progress report and at the end.
    After a finished run the state's `battle` is [base id, tuned id], for `battle_it`."""
    try:
        request = make_request()
    except PlaygroundError as exc:
        yield state, TrainView(f"❌ {exc}")
        return
    run_id, cancel = ctx.runs.start()
    state = {**state, "run_id": run_id}
    updates: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        as_background_work()   # this thread and torch's threads started from it yield to votes and generations
        try:
            with closing(_open_db(ctx)) as db:
                updates.put(("done", train_dpo(request, ctx.catalog, db, cancel=cancel,
                                               progress=lambda p: updates.put(("progress", p)))))
        except PlaygroundError as exc:
            updates.put(("error", exc))
        except Exception as exc:  # a bug in training must still end the run with a message
            updates.put(("error", PlaygroundError(f"training failed: {type(exc).__name__}: {exc}")))

    view = TrainView("⏳ starting…")
    notice: str | None = None
    yield state, view
    worker = threading.Thread(target=work, name=f"train-{run_id}", daemon=True)
    worker.start()
    try:
        while True:
            kind, payload = updates.get()
            if kind == "progress":
                if payload.logs:
                    view.history.append({"step": payload.step, **payload.logs})
                notice = payload.notice or notice
                view.status = status_line(payload, notice)
                yield state, view
                continue
            if kind == "done":
                view.result, view.status = payload, result_text(payload, request.objective)
                state = {**state, "battle": [request.base, payload.model_id]}
            else:
                view.status = f"❌ {payload}"
            break
    finally:
        worker.join()
        ctx.runs.finish(run_id)
    yield {**state, "run_id": None}, view


def battle_it(ctx: AppContext, state: dict[str, Any]) -> str:
    """Save the last run's base and tuned model as the Arena's pool (what `arena pool --models` does)."""
    pair = state.get("battle")
    if not pair:
        return "⚠️ Train a model first: the button battles the last tuned model against its base."
    try:
        base, tuned = save_pool(ctx.settings.db_path, pair, ctx.catalog, set_by="train tab")
    except PlaygroundError as exc:
        return f"❌ {exc}"
    return (f"⚔️ Arena pool set: **{base}** vs **{tuned}**. Every new battle in the Arena tab is drawn from these "
            "two (blind, zero-shot) until `python app.py arena pool --clear`; the Leaderboard ranks them side by "
            "side with intervals.")


def _open_db(ctx: AppContext) -> Any:
    from storage import open_database

    if not ctx.settings.db_path.exists():
        raise PlaygroundError(f"no database at {ctx.settings.db_path}: vote in the Arena first")
    return open_database(ctx.settings.db_path)


def build(ctx: AppContext) -> None:
    """Lay out the Train tab."""
    state = gr.State(lambda: {"run_id": None})
    h = DPOHyperparameters()
    gr.Markdown("Train a model on your votes with **DPO** (TRL's DPOTrainer): each decisive vote is a pair "
                "(chosen, rejected), the same pairs `export dpo` writes; or with **KTO** (KTOTrainer) on the "
                "unpaired rows of `export kto` (each answer marked desirable or not). A share of the pairs is "
                "held out and scored before and after. The result is a new model in the models folder, listed "
                "as tuned from its base.")
    choices = trainable_choices(ctx)
    default = ctx.settings.default_model if ctx.settings.default_model in dict((v, k) for k, v in choices) else None
    with gr.Row():   # the base model gets the width its long display name needs (a clipped name hides the pick)
        base = gr.Dropdown(choices, value=default, label="Base model (GGUF or HF folder)", elem_id="train-base",
                           scale=3, min_width=360)
        name = gr.Textbox(label="Name of the tuned model (folder)", placeholder="my-model-dpo", elem_id="train-name",
                          scale=2, min_width=240)
    with gr.Row():
        objective = gr.Radio([("DPO (pairs)", "dpo"), ("KTO (unpaired rows)", "kto")], value="dpo",
                             label="Objective", elem_id="train-objective")
        method = gr.Radio([("LoRA (merged at the end)", "lora"), ("Full fine-tuning", "full")], value="lora",
                          label="Method", elem_id="train-method")
    with gr.Accordion("Which votes", open=False):
        with gr.Row():
            contestant = gr.Textbox(label="Only battles with this model (id)", elem_id="train-contestant")
            since = gr.Textbox(label="Votes since (ISO date)", elem_id="train-since")
            until = gr.Textbox(label="Votes until (ISO date, inclusive)", elem_id="train-until")
        with gr.Row():
            anonymous_only = gr.Checkbox(label="Blind (anonymous) battles only", elem_id="train-anonymous")
            include_truncated = gr.Checkbox(label="Keep answers cut by the token limit", elem_id="train-truncated")
            agreed_only = gr.Checkbox(label="Only pairs two or more annotators judged alike", elem_id="train-agreed")
    with gr.Accordion("Hyperparameters", open=False):
        with gr.Row():
            beta = gr.Number(value=h.beta, label="beta", elem_id="train-beta")
            lr = gr.Number(value=0, label="Learning rate (0: 5e-5 LoRA, 5e-6 full)", elem_id="train-lr")
            epochs = gr.Number(value=h.epochs, label="Epochs", elem_id="train-epochs")
            max_steps = gr.Number(value=0, precision=0, label="Max steps (0: whole epochs)",
                                  elem_id="train-max-steps")
        with gr.Row():
            batch = gr.Slider(1, 32, value=h.batch_size, step=1, label="Batch size", elem_id="train-batch")
            max_length = gr.Slider(32, 2048, value=h.max_length, step=32, label="Max length (tokens)",
                                   elem_id="train-max-length")
            held_out = gr.Slider(0, 0.5, value=0.1, step=0.05, label="Held-out share", elem_id="train-held-out")
    gr.Markdown("🔒 On this server only an admin can train (it takes the server's CPU for minutes and writes "
                "into the shared models folder): ask one. Your votes are in the data it trains on.",
                visible=False, elem_id="train-admin-only")     # shown to non-admins by auth/policy.py
    with gr.Row():
        start = gr.Button("Train", variant="primary", elem_id="train-start")
        stop = gr.Button("Cancel", elem_id="train-cancel")
    status = gr.Markdown(elem_id="train-status")
    with gr.Row(visible=False) as after:   # shown once a run has finished
        battle = gr.Button("⚔️ Battle it against its base", elem_id="train-battle")
    battle_status = gr.Markdown(elem_id="train-battle-status")
    # no label badge: it covered the first panel's title
    plot = gr.Plot(label="TRL's logged metrics per step", show_label=False, elem_id="train-plot")

    def on_train(st: dict[str, Any], *form: Any) -> Iterator[list[Any]]:
        for st2, view in run_training_view(ctx, st, lambda: build_request(ctx, *form)):
            picker = gr.update(choices=trainable_choices(ctx)) if view.result else gr.skip()
            shown = gr.update(visible=True) if view.result else gr.skip()
            yield [st2, view.status, view.figure(), picker, shown]

    inputs = [base, name, method, contestant, since, until, anonymous_only, include_truncated, beta, lr, epochs,
              max_steps, batch, max_length, held_out, objective, agreed_only]
    start.click(on_train, [state, *inputs], [state, status, plot, base, after], api_name="train_dpo")
    stop.click(lambda st: ctx.runs.cancel(st.get("run_id")) and None, [state], None, queue=False)
    battle.click(lambda st: battle_it(ctx, st), [state], [battle_status], api_name="train_battle")
