"""The Lab tab: a task set across models x prompting modes, accuracy and log-likelihood vs size.

`run_lab_view` does the work as a plain generator (testable without a browser), and
`results_view`, `item_detail` and `past_runs` read stored runs back; `build` lays out the
components. The run id lives in gr.State so Cancel can stop a run between items; a cancelled or
crashed run resumes where it stopped (finished items are stored one by one).
"""
from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import gradio as gr
import pandas as pd
from plotly.graph_objects import Figure

from playground.context import AppContext
from playground.errors import PlaygroundError
from playground.lab import metrics
from playground.lab.config import parse_shot_counts
from playground.lab import (DEFAULT_MODES, ITEM_COLUMNS, LabConfig, LabProgress, list_runs, load_items,
                            prepare_lab, run_ids_for, run_lab, summarize, summary_dicts, write_csv)
from playground.lab.interactive import (accuracy_figure, base_instruct_figure, cot_gain_figure, emergence_figure,
                                        icl_figure, logprob_figure)
from playground.prompting.plan import MODES
from playground.ui.common import model_choices
from storage import lab as lab_store
from storage import open_database

UPLOAD = "(uploaded file)"
SUMMARY_SHOWN = ["model_id", "n_params", "mode", "shots", "n", "accuracy %", "ci_low %", "ci_high %", "strict %",
                 "flexible %", "maj@k %", "maj_k", "mc acc %", "mc acc_norm %", "mean_logprob", "tokens_per_s",
                 "ttft_s", "items_per_s", "status"]
PERCENT_COLUMNS = {"accuracy": "accuracy %", "ci_low": "ci_low %", "ci_high": "ci_high %",
                   "strict_accuracy": "strict %", "flexible_accuracy": "flexible %", "maj_accuracy": "maj@k %",
                   "choice_accuracy": "mc acc %", "choice_accuracy_norm": "mc acc_norm %"}
ITEMS_SHOWN = ["run_id", "model_id", "mode", "item_index", "correct", "gold", "extracted", "gold_logprob_mean",
               "question"]   # the row-select handler reads run_id and item_index by position
HISTORY_SHOWN = ["run", "created", "name", "model", "mode", "status", "done", "accuracy %", "items/s"]
ALL_RUNS = 0   # the drill-down's "every run shown" choice (run ids start at 1)


@dataclass
class LabView:
    """What the tab shows after (or during) a run."""

    status: str
    summary: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SUMMARY_SHOWN))
    items: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ITEMS_SHOWN))
    accuracy: Figure | None = None
    logprob: Figure | None = None
    emergence: Figure | None = None
    icl: Figure | None = None
    cot_gain: Figure | None = None
    base_instruct: Figure | None = None
    summary_csv: Path | None = None
    items_csv: Path | None = None
    run_ids: list[int] = field(default_factory=list)
    run_choices: list[tuple[str, int]] = field(default_factory=list)


def shipped_task_files(presets_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted((presets_dir / "tasks").glob("*.jsonl"))}


def task_path(ctx: AppContext, choice: str | None, upload: str | None) -> Path:
    if upload:
        return Path(upload)
    files = shipped_task_files(ctx.settings.presets_dir)
    if not choice or choice not in files:
        raise PlaygroundError("pick a task set, or upload a JSONL file (GSM8K lines, or input/target lines)")
    return files[choice]


def _progress_text(p: LabProgress) -> str:
    """The progress bar's caption. Gradio appends "- 66.7%" to it; ending the caption with "overall
    progress" keeps that figure from reading as the accuracy of the mode named before it."""
    speed = f"{p.items_per_s:.2f} items/s" if p.items_per_s else "-- items/s"
    eta = f", about {p.eta_s:.0f} s left" if p.eta_s is not None else ""
    return f"Running {p.run_label} · {p.done}/{p.total} items ({speed}{eta}) · overall progress"


def results_view(db_path: Path, run_ids: Sequence[int], status: str) -> LabView:
    """Summary, plots, drill-down and CSVs for some stored runs."""
    with open_database(db_path) as db:
        rows = summarize(db, run_ids)
        items = load_items(db, run_ids)
    choices = [("every run shown", ALL_RUNS)] + [(f"#{r.run_id} {r.model_id} · {r.mode}", r.run_id) for r in rows]
    summary = _readable(pd.DataFrame(summary_dicts(rows)))
    out = download_folder(run_ids)
    return LabView(
        status=status,
        summary=summary[[c for c in SUMMARY_SHOWN if c in summary.columns]] if len(summary) else LabView("").summary,
        items=pd.DataFrame(items)[ITEMS_SHOWN] if items else LabView("").items,
        accuracy=accuracy_figure(rows), logprob=logprob_figure(rows), emergence=emergence_figure(rows),
        icl=icl_figure(rows), cot_gain=cot_gain_figure(rows), base_instruct=base_instruct_figure(rows),
        summary_csv=write_csv(summary_dicts(rows), out / "lab-summary.csv"),
        items_csv=write_csv(items, out / "lab-items.csv", ITEM_COLUMNS),
        run_ids=[r.run_id for r in rows], run_choices=choices)


def download_folder(run_ids: Sequence[int]) -> Path:
    """Where the CSVs of a selection of runs are written: one folder per selection, reused (Gradio
    serves copies from its own cache), so showing runs again does not leave a folder each time."""
    key = hashlib.sha256(",".join(map(str, sorted(int(i) for i in run_ids))).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / "playground-lab" / f"runs-{key}"


def items_frame(db_path: Path, run_ids: Sequence[int], run_id: int | None = ALL_RUNS) -> pd.DataFrame:
    """The drill-down table: the items of one run, or of every run shown."""
    chosen = list(run_ids) if not run_id else [int(run_id)]
    with open_database(db_path) as db:
        items = load_items(db, chosen)
    return pd.DataFrame(items)[ITEMS_SHOWN] if items else pd.DataFrame(columns=ITEMS_SHOWN)


def item_detail(db_path: Path, run_id: Any, item_index: Any) -> tuple[str, str, str]:
    """(exact prompt sent, full output, a verdict line) of one stored item; blanks if there is none."""
    try:
        key = [int(run_id), int(item_index)]
    except (TypeError, ValueError):
        return "", "", ""
    with open_database(db_path) as db:
        it = lab_store.item_row(db, *key)
    if it is None:
        return "", "", ""
    verdict = f"error: {it['error']}" if it["error"] else ("✅ correct" if it["correct"] else "❌ wrong")
    lp = ("-" if it["gold_logprob_mean"] is None
          else f"{it['gold_logprob_mean']:.3f} per token over {it['gold_n_tokens']} token(s)")
    line = (f"**{it['model_id']} · {it['mode']} · item {it['item_index']}**: gold `{it['gold']}`, extracted "
            f"`{it['extracted'] or '—'}`, {verdict}; gold log-prob {lp}; {it['n_prompt_tokens']} prompt + "
            f"{it['n_output_tokens']} output tokens in {it['total_s'] or 0:.1f} s{_harness_line(it)}")
    return it["prompt"] or "", it["output"] or "", line


def _harness_line(item: dict[str, Any]) -> str:
    """What the other scorers read in the same output (so one sees why they differ)."""
    scores = metrics.item_scores(item)
    parts = []
    if scores["strict_extracted"] is not None:
        parts.append(f"harness strict-match `{scores['strict_extracted']}` "
                     f"{'✅' if scores['strict_correct'] else '❌'}, flexible-extract "
                     f"`{scores['flexible_extracted']}` {'✅' if scores['flexible_correct'] else '❌'}")
    if scores["maj_votes"]:
        parts.append(f"maj@{scores['maj_k']} `{scores['maj_answer']}` (votes {scores['maj_votes']})")
    if scores["choice_pick"]:
        parts.append(f"by option log-likelihood `{scores['choice_pick']}`, per character "
                     f"`{scores['choice_pick_norm']}`")
    return "".join(f"\n\n{p}" for p in parts)


def past_runs(db_path: Path, limit: int = 200) -> pd.DataFrame:
    """Stored runs, newest first, with how many of their items are done."""
    with open_database(db_path) as db:
        runs = list_runs(db, limit)
    rows = [[r["id"], r["created_at"], r["name"], r["model_id"], r["mode"], r["status"],
             f"{r['n_done']}/{r['n_items']}", None if r["accuracy"] is None else round(100 * r["accuracy"], 1),
             None if r["items_per_s"] is None else round(r["items_per_s"], 2)] for r in runs]
    return pd.DataFrame(rows, columns=HISTORY_SHOWN)


def history_choices(db_path: Path) -> list[tuple[str, int]]:
    """(label, run id) for the past-runs picker."""
    frame = past_runs(db_path)
    return [(f"#{r.run} {r.model} · {r.mode} ({r.name}, {r.status})", int(r.run)) for r in frame.itertuples()]


def show_runs(db_path: Path, state: dict[str, Any], run_ids: Sequence[Any]) -> tuple[dict[str, Any], LabView]:
    """Past runs picked from the list, shown like a finished lab."""
    ids = [int(i) for i in run_ids or []]
    status = f"Showing {len(ids)} stored run(s)." if ids else "Pick one or more past runs first."
    return {**state, "run_ids": ids}, results_view(db_path, ids, status)


def _readable(summary: pd.DataFrame) -> pd.DataFrame:
    """Percentages with one decimal, log-probs with three: the CSV keeps full precision."""
    if summary.empty:
        return summary
    for column in PERCENT_COLUMNS:
        if column in summary:
            summary[column] = (summary[column].astype(float) * 100).round(1)
    return summary.round({"mean_logprob": 3, "items_per_s": 2, "tokens_per_s": 1, "ttft_s": 2}).rename(
        columns=PERCENT_COLUMNS)


def run_lab_view(ctx: AppContext, state: dict[str, Any], choice: str | None, upload: str | None,
                 models: Sequence[str], modes: Sequence[str], limit: float | None, seed: float | None,
                 shots: float | None, max_tokens: float | None,
                 progress: Callable[..., None] | None = None, *, shot_counts: str | None = None,
                 samples: float | None = None) -> Iterator[tuple[dict[str, Any], LabView]]:
    """Validate, run (resuming stored items), then show the results. Yields (state, view)."""
    try:
        config = LabConfig(task_path=task_path(ctx, choice, upload), models=tuple(models or ()),
                           modes=tuple(modes or ()), limit=int(limit) if limit else None, seed=int(seed or 0),
                           shots=int(shots) if shots is not None else None,
                           max_tokens=int(max_tokens) if max_tokens else None,
                           samples=int(samples) if samples else None, shot_counts=parse_shot_counts(shot_counts))
        job = prepare_lab(ctx, config)
    except PlaygroundError as exc:
        yield state, LabView(status=f"❌ {exc}")
        return
    run_id, cancel = ctx.runs.start()
    state = {**state, "run_id": run_id}
    bad_lines = job.tasks.errors
    skipped = f" ({len(bad_lines)} malformed line(s) skipped: {bad_lines[0]}…)" if bad_lines else ""
    yield state, LabView(status=f"Running {len(job.items)} items × {len(job.runs)} runs{skipped}…")

    def report(p: LabProgress) -> None:
        if progress is not None:
            progress((p.done, max(p.total, 1)), desc=_progress_text(p), unit="items done")

    try:
        outcome = run_lab(ctx, job, ctx.settings.db_path, cancel=cancel, on_progress=report)
    except PlaygroundError as exc:
        yield {**state, "run_id": None}, _stored_view(ctx, job, f"❌ {exc}")
        return
    finally:
        ctx.runs.finish(run_id)
    done = "Cancelled: finished items are stored; run again to resume." if outcome.cancelled else "Done."
    errors = "".join(f"\n\n❌ {e}" for e in outcome.errors)
    status = f"{done} {outcome.ran} item(s) run, {outcome.skipped} already stored.{skipped}{errors}"
    view = results_view(ctx.settings.db_path, outcome.run_ids, status)
    yield {**state, "run_id": None, "run_ids": view.run_ids}, view


def _stored_view(ctx: AppContext, job: Any, status: str) -> LabView:
    """After a failure: whatever the job's runs have stored so far, with the error."""
    with open_database(ctx.settings.db_path) as db:
        ids = run_ids_for(db, job)
    return results_view(ctx.settings.db_path, ids, status)


def _outputs(view: LabView) -> list[Any]:
    picker = gr.update(choices=view.run_choices, value=ALL_RUNS) if view.run_choices else gr.skip()
    return [view.status, view.summary, view.accuracy, view.logprob, view.emergence, view.icl, view.cot_gain,
            view.base_instruct, view.items,
            gr.update(value=str(view.summary_csv) if view.summary_csv else None, interactive=bool(view.summary_csv)),
            gr.update(value=str(view.items_csv) if view.items_csv else None, interactive=bool(view.items_csv)),
            picker]


def build(ctx: AppContext) -> None:
    """Lay out the Lab tab."""
    state = gr.State(lambda: {"run_id": None, "run_ids": []})
    db_path = ctx.settings.db_path
    files = list(shipped_task_files(ctx.settings.presets_dir))
    default_model = [ctx.settings.default_model] if ctx.settings.default_model in ctx.catalog.models else []
    gr.Markdown("Run a task set across models × prompting modes. Each item is scored by exact match of the "
                "extracted answer and by the mean log-probability of the gold answer: accuracy can jump "
                "with scale while log-likelihood improves smoothly. Finished items are stored, so a run "
                "resumes where it stopped.")
    with gr.Row():
        tasks = gr.Dropdown(files, value=files[0] if files else None, label="Task set", elem_id="lab-tasks", scale=2,
                            min_width=300)   # the file's name whole, on a phone too
        upload = gr.File(label="…or upload JSONL (GSM8K or input/target)", file_types=[".jsonl"],
                         type="filepath", elem_id="lab-upload", scale=2)
        models = gr.Dropdown(model_choices(ctx), value=default_model, multiselect=True, label="Models",
                             elem_id="lab-models", scale=3)
    modes = gr.CheckboxGroup(list(MODES), value=list(DEFAULT_MODES), label="Prompting modes", elem_id="lab-modes")
    with gr.Row():
        limit = gr.Number(value=5, precision=0, minimum=1, label="Items (limit)", elem_id="lab-limit")
        seed = gr.Number(value=0, precision=0, label="Seed", elem_id="lab-seed")
        shots = gr.Slider(0, 8, value=2, step=1, label="Shots (few-shot modes)", elem_id="lab-shots")
        max_tokens = gr.Slider(16, 512, value=96, step=16, label="Max new tokens", elem_id="lab-max-tokens")
    with gr.Row():
        shot_counts = gr.Textbox(value="", label="In-context learning curve: shot counts (e.g. 0,1,2,4,8; "
                                 "overrides Shots, one run per k)", elem_id="lab-shot-counts", scale=3)
        samples = gr.Number(value=0, precision=0, minimum=0, maximum=64,
                            label="Self-consistency paths k for maj@k (0: the preset's)", elem_id="lab-samples",
                            scale=1)
    gr.Markdown("🔒 On this server only an admin can run the lab (a run takes the server's CPU for minutes): "
                "ask one. Runs already made are under **Past runs** below.",
                visible=False, elem_id="lab-admin-only")       # shown to non-admins by auth/policy.py
    with gr.Row():
        run = gr.Button("Run", variant="primary", elem_id="lab-run")
        cancel = gr.Button("Cancel", elem_id="lab-cancel")
    status = gr.Markdown(elem_id="lab-status")
    summary = gr.Dataframe(LabView("").summary, label="Accuracy (95% Wilson CI) and gold log-likelihood per model × mode",
                           interactive=False, elem_id="lab-summary")
    gr.Markdown("accuracy: exact match by the app's extractor (the plots use it); strict / flexible: "
                "lm-evaluation-harness's GSM8K strict-match and flexible-extract on the same outputs; maj@k: "
                "majority of k self-consistency paths; mc acc (_norm): the option with the highest "
                "log-likelihood (per character).", elem_id="lab-legend")
    # plotly (hover: value, interval, n); the titles are in the figures, so no label badge covers them
    with gr.Row():
        plot_acc = gr.Plot(label="Accuracy vs model size", show_label=False, elem_id="lab-plot-accuracy")
        plot_lp = gr.Plot(label="Gold log-likelihood vs model size", show_label=False, elem_id="lab-plot-logprob")
    with gr.Accordion("Research curves: emergence, in-context learning, CoT gain, base vs instruct", open=True):
        with gr.Row():
            plot_em = gr.Plot(label="Emergence: exact match and gold log-prob vs size", show_label=False,
                              elem_id="lab-plot-emergence")
            plot_icl = gr.Plot(label="In-context learning curve", show_label=False, elem_id="lab-plot-icl")
        with gr.Row():
            plot_cot = gr.Plot(label="CoT minus direct", show_label=False, elem_id="lab-plot-cot")
            plot_bi = gr.Plot(label="Base vs instruct", show_label=False, elem_id="lab-plot-base-instruct")
    with gr.Accordion("Per-item drill-down (select a row to see the exact prompt and the output)", open=False):
        run_pick = gr.Dropdown([("every run shown", ALL_RUNS)], value=ALL_RUNS, label="Run", elem_id="lab-run-pick")
        items = gr.Dataframe(LabView("").items, interactive=False, wrap=True, max_height=400, elem_id="lab-items")
        verdict = gr.Markdown(elem_id="lab-item-verdict")
        with gr.Row():
            prompt = gr.Code(language=None, interactive=False, label="Exact prompt sent", elem_id="lab-item-prompt")
            output = gr.Textbox(label="Model output", lines=12, interactive=False, elem_id="lab-item-output")
    with gr.Row():
        dl_summary = gr.DownloadButton("Summary CSV", interactive=False, elem_id="lab-download-summary")
        dl_items = gr.DownloadButton("Items CSV", interactive=False, elem_id="lab-download-items")
    with gr.Accordion("Past runs", open=False):
        history_pick = gr.Dropdown(history_choices(db_path), multiselect=True, label="Show these runs",
                                   elem_id="lab-history-pick")
        with gr.Row():
            show = gr.Button("Show selected runs", elem_id="lab-history-show")
            refresh = gr.Button("Refresh the list", elem_id="lab-history-refresh")
        history = gr.Dataframe(past_runs(db_path), interactive=False, elem_id="lab-history")

    def on_run(st: dict[str, Any], choice: str, up: str | None, ms: list[str], mds: list[str], lim: float,
               sd: float, sh: float, mt: float, counts: str, k: float | None,
               progress: gr.Progress = gr.Progress()) -> Iterator[list[Any]]:
        for st2, view in run_lab_view(ctx, st, choice, up, ms, mds, lim, sd, sh, mt, progress, shot_counts=counts,
                                      samples=k):
            yield [st2, *_outputs(view)]

    view_outputs = [status, summary, plot_acc, plot_lp, plot_em, plot_icl, plot_cot, plot_bi, items, dl_summary,
                    dl_items, run_pick]
    run.click(on_run, [state, tasks, upload, models, modes, limit, seed, shots, max_tokens, shot_counts, samples],
              [state, *view_outputs], api_name="lab_run", show_progress_on=[status], js=SCROLL_TO_RUN).then(
        partial(_refresh_history, db_path), None, [history, history_pick])
    cancel.click(lambda st: ctx.runs.cancel(st.get("run_id")) and None, [state], None, queue=False)

    def on_pick(st: dict[str, Any], run_id: int | None) -> list[Any]:
        return [items_frame(db_path, st.get("run_ids") or [], run_id), "", "", ""]

    run_pick.input(on_pick, [state, run_pick], [items, prompt, output, verdict])

    def on_select(evt: gr.SelectData) -> tuple[str, str, str]:
        row = evt.row_value or []
        if len(row) < 4:
            return "", "", ""
        return item_detail(db_path, row[0], row[3])   # ITEMS_SHOWN: run_id first, item_index fourth

    items.select(on_select, None, [prompt, output, verdict])

    def on_show(st: dict[str, Any], ids: list[int]) -> list[Any]:
        st2, view = show_runs(db_path, st, ids)
        return [st2, *_outputs(view)]

    show.click(on_show, [state, history_pick], [state, *view_outputs])
    refresh.click(partial(_refresh_history, db_path), None, [history, history_pick])


# The progress line is below the form: without this nothing on screen changes after Run. The Run
# button goes to the top of the window (the status, empty until now, is right under it); the inputs
# pass through unchanged (an event's js gets them and returns what the Python handler receives).
SCROLL_TO_RUN = "(...inputs) => { document.querySelector('#lab-run')?.scrollIntoView({block: 'start'}); return inputs; }"


def _refresh_history(db_path: Path) -> list[Any]:
    return [past_runs(db_path), gr.update(choices=history_choices(db_path))]
