"""The research curves drawn from a real small run (bundled model), and an unattended run's resources."""
from __future__ import annotations

import io
import json
from pathlib import Path

from matplotlib.figure import Figure

from playground.cli import main
from playground.lab import LabConfig, prepare_lab, run_lab, summarize
from playground.lab.curves import (base_instruct_pairs, cot_gains, newcombe_difference, plot_base_vs_instruct,
                                   plot_cot_gain, plot_emergence, plot_icl_curve)
from playground.lab.reports import SummaryRow
from storage import open_database

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "presets" / "tasks" / "arithmetic-word-problems.jsonl"
MODEL = "smollm2-135m-instruct"


def labels(fig: Figure, axis: int = 0) -> set[str]:
    return {text.get_text() for text in fig.axes[axis].get_legend().get_texts()}


def test_curves_from_a_real_small_unattended_run(app_ctx, tmp_path, capsys):
    db_path = tmp_path / "curves.db"
    loads_before = app_ctx.cache.loads
    job = prepare_lab(app_ctx, LabConfig(task_path=TASKS, models=(MODEL,), modes=("zero_shot", "few_shot_cot"),
                                         limit=2, max_tokens=12, shot_counts=(0, 1), unattended=True))
    assert [r.pane.shots for r in job.runs] == [None, 0, 1]
    outcome = run_lab(app_ctx, job, db_path)
    assert outcome.ran == 6 and not outcome.errors

    # unattended: loaded for the lab alone (not through the shared cache), freed, measured
    assert app_ctx.cache.loads == loads_before
    (stats,) = outcome.models
    assert stats["freed"] == 1 and stats["n_items"] == 6 and stats["load_s"] > 0
    assert stats["peak_rss_bytes"] >= stats["rss_before_bytes"] > 0
    assert stats["tokens_per_s"] > 0 and stats["ttft_s"] > 0

    with open_database(db_path) as db:
        rows = summarize(db, outcome.run_ids)
    emergence = plot_emergence(rows)
    top, bottom = emergence.axes
    assert top.get_xscale() == "log" and bottom.get_xscale() == "log"
    assert labels(emergence) == {"zero_shot", "few_shot_cot k=0", "few_shot_cot k=1"}
    assert len(bottom.lines) >= 3 and "log p(gold)" in bottom.get_ylabel()

    icl = plot_icl_curve(rows)
    icl.savefig(io.BytesIO(), format="png")           # drawn, so the tick labels hold their text
    assert labels(icl) == {f"few_shot_cot · {MODEL}"}
    assert [t.get_text() for t in icl.axes[1].get_xticklabels()] == ["0", "1"]
    assert "exemplars" in icl.axes[1].get_xlabel()

    gains = cot_gains(rows)
    assert {g["pair"] for g in gains} == {"few_shot_cot k=0 − zero_shot", "few_shot_cot k=1 − zero_shot"}
    assert all(g["ci_low"] <= g["difference"] <= g["ci_high"] for g in gains)
    assert labels(plot_cot_gain(rows)) == {g["pair"] for g in gains}

    out = tmp_path / "report"
    assert main(["lab", "report", "--db", str(db_path), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for name in ("emergence", "icl", "cot_gain", "base_instruct"):
        assert Path(report["files"][name]).stat().st_size > 5_000, name
    assert {r["run_id"] for r in report["runs"]} == set(outcome.run_ids)
    assert report["models"][0]["freed"] == 1


def row(model: str, size: int, chat: bool, mode: str, k: int, n: int = 10) -> SummaryRow:
    return SummaryRow(run_id=0, name="t", task_file="t", model_id=model, n_params=size, mode=mode, preset=None,
                      backend="llama_cpp", status="done", n=n, n_correct=k, n_errors=0, accuracy=k / n, ci_low=0.0,
                      ci_high=1.0, mean_logprob=None, logprob_se=None, items_per_s=None, is_chat=chat,
                      architecture="llama")


def test_base_vs_instruct_pairs_by_metadata():
    rows = [row("a-base", 135, False, "zero_shot", 1), row("a-instruct", 135, True, "zero_shot", 4),
            row("b-instruct", 360, True, "zero_shot", 5)]          # no base of 360: not paired
    pairs = base_instruct_pairs(rows)
    assert [(b.model_id, i.model_id) for b, i in pairs] == [("a-base", "a-instruct")]
    fig = plot_base_vs_instruct(rows)
    assert labels(fig) == {"base", "instruct"} and len(fig.axes[0].patches) == 2
    empty = plot_base_vs_instruct(rows[1:])
    assert "needs a base and an instruct" in empty.axes[0].texts[0].get_text()


def test_newcombe_interval():
    d, low, high = newcombe_difference(5, 10, 5, 10)
    assert d == 0 and -0.5 < low < 0 < high < 0.5 and abs(low + high) < 1e-12
    d, low, high = newcombe_difference(10, 10, 0, 10)
    assert d == 1 and 0.5 < low < 1 and high == 1


def test_one_colour_per_mode_in_every_lab_figure_and_the_browser_figures_hover_with_intervals():
    """zero_shot is one colour in the accuracy, emergence and CoT files and in the plotly views; a
    hover shows the value, the interval and n; the CoT figure's y label fits inside the figure."""
    from matplotlib.colors import to_hex

    from playground.lab import interactive
    from playground.lab.plots import plot_accuracy
    from playground.palette import MODE_COLOURS, colour

    rows = [row("m-small", 135_000_000, True, mode, k) for mode, k in (("zero_shot", 3), ("few_shot_cot", 6))]
    rows += [row("m-big", 1_700_000_000, True, mode, k) for mode, k in (("zero_shot", 5), ("few_shot_cot", 9))]

    def line_colours(fig: Figure, axis: int = 0) -> dict[str, str]:
        ax = fig.axes[axis]
        return {h.get_label(): to_hex(h.lines[0].get_color()) for h in ax.containers}

    blue = MODE_COLOURS["zero_shot"].lower()
    assert line_colours(plot_accuracy(rows))["zero_shot"] == blue
    assert line_colours(plot_emergence(rows))["zero_shot"] == blue
    assert colour("zero_shot k=2").lower() == blue and colour("few_shot_cot · m") == MODE_COLOURS["few_shot_cot"]
    assert colour("m-big") == colour("m-big") and colour("m-big") not in MODE_COLOURS.values()

    cot = plot_cot_gain(rows)
    cot.savefig(io.BytesIO(), format="png")
    label = cot.axes[0].yaxis.label.get_window_extent()
    assert label.y0 >= 0 and label.y1 <= cot.bbox.height and "Newcombe" in cot.axes[0].get_ylabel()

    for fig in (interactive.accuracy_figure(rows), interactive.emergence_figure(rows)):
        traces = {t.name: t for t in fig.data if t.showlegend is not False}
        assert traces["zero_shot"].line.color == MODE_COLOURS["zero_shot"]
        assert "95% CI" in traces["zero_shot"].hovertemplate and "n = " in traces["zero_shot"].hovertemplate
        assert fig.layout.title.text
    acc = interactive.accuracy_figure(rows)
    zero = next(t for t in acc.data if t.name == "zero_shot")
    assert list(zero.y) == [30.0, 50.0] and zero.customdata[0][3] == 10          # value and n in the hover data
    gain = interactive.cot_gain_figure(rows)
    assert gain.data and "95% CI" in gain.data[0].hovertemplate
    assert "needs a base" in interactive.base_instruct_figure(rows).layout.annotations[0].text


def test_every_series_of_the_icl_and_emergence_figures_has_its_own_colour_and_marker(tmp_path):
    """Two models under few_shot, and few_shot_cot at k=0 and k=1: each line its own colour and
    marker (the mode's hue in shades), the same in the file and in the browser figure."""
    from dataclasses import replace

    from matplotlib.colors import to_hex

    from playground.lab import interactive
    from playground.lab.plots import save_figure
    from playground.palette import MODE_COLOURS

    rows = [replace(row(model, size, True, "few_shot", min(k + i, 10)), shots=k)
            for i, (model, size) in enumerate((("qwen-0.5b", 494_000_000), ("qwen-1.5b", 1_540_000_000)))
            for k in (0, 1, 2, 4, 8)]
    rows += [replace(row("qwen-0.5b", 494_000_000, True, "few_shot_cot", 3 + k), shots=k) for k in (0, 1)]

    def styles(fig: Figure, axis: int = 0) -> dict[str, tuple[str, str]]:
        return {h.get_label(): (to_hex(h.lines[0].get_color()), h.lines[0].get_marker()) for h in fig.axes[axis].containers}

    def trace_styles(fig) -> dict[str, tuple[str, str]]:
        return {t.name: (t.line.color.lower(), t.marker.symbol) for t in fig.data if t.showlegend is not False}

    for drawn, browser, n_lines in ((curves_icl := plot_icl_curve(rows), interactive.icl_figure(rows), 3),
                                    (plot_emergence(rows), interactive.emergence_figure(rows), 7)):
        file_styles = styles(drawn)
        assert len(file_styles) == n_lines, file_styles
        assert len({c for c, _ in file_styles.values()}) == n_lines, file_styles     # distinct colours
        assert len({m for _, m in file_styles.values()}) == n_lines, file_styles     # distinct markers
        assert len(set(trace_styles(browser).values())) == n_lines
        assert {k: c for k, (c, _) in file_styles.items()} == {k: c for k, (c, _) in trace_styles(browser).items()}
    icl = styles(curves_icl)
    assert icl["few_shot · qwen-0.5b"][0] == MODE_COLOURS["few_shot"].lower()    # a mode keeps its hue
    assert icl["few_shot_cot · qwen-0.5b"][0] == MODE_COLOURS["few_shot_cot"].lower()
    emergence = styles(plot_emergence(rows))
    assert {"few_shot_cot k=0", "few_shot_cot k=1"} <= set(emergence)
    save_figure(curves_icl, tmp_path / "icl.png")
    save_figure(plot_emergence(rows), tmp_path / "emergence.png")
