"""Leaderboard tab, "Judges vs people": each judge model's agreement with people's votes.

A plain handler (`judges_markdown`) renders `playground.judge.report.judge_report` as Markdown;
`build` lays out the accordion and is called from the Leaderboard tab. Aggregates only (no one's
individual votes), so it is shown to every role.
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import gradio as gr

from playground.context import AppContext
from playground.judge.report import judge_report
from playground.prompting.presets import PresetLibrary
from storage import open_database

EMPTY = ("No judge verdicts yet. Run `python app.py judge --judge MODEL` to have a model judge the stored "
         "battles in both orders; its verdicts are kept apart from people's votes and never enter the ratings above.")


def _num(x: float | None, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(d: dict[str, Any]) -> str:
    return f"{_num(d['value'])} [{_num(d['low'])}, {_num(d['high'])}]"


def judges_markdown(db_path: str | Path, presets: PresetLibrary | None = None, inconsistent: str = "tie",
                    rounds: int = 500) -> str:
    """The judges' agreement with people, as Markdown tables (or how to get some verdicts)."""
    if not Path(db_path).exists():
        return EMPTY
    with closing(open_database(db_path)) as db:
        report = judge_report(db, presets, inconsistent=inconsistent, rounds=rounds)
    if not report["judges"]:
        return EMPTY
    lines = [f"On battles judged by both a person and the judge (a pair whose two orders disagree counts as "
             f"{report['inconsistent_counts_as']}; unparseable verdicts never count). 95 % bootstrap intervals.", "",
             "| judge | battles | agreement | Cohen's kappa | swap-consistent | unparseable orders |",
             "| --- | ---: | --- | --- | --- | ---: |"]
    for judge, e in report["judges"].items():
        s = e["swap"]
        lines.append(f"| `{judge}` | {e['n']} | {_ci(e['agreement'])} | {_ci(e['kappa'])} | "
                     f"{s.get('consistent', 0)}/{s.get('pairs', 0)} ({_num(s.get('rate'))}) | "
                     f"{s.get('unparseable_orders', 0)}/{s.get('orders', 0)} |")
    cats = report["categories"]
    for judge, e in report["judges"].items():
        lines += ["", f"**{judge}**: confusion (rows: people, columns: judge)", "",
                  "| people \\ judge | " + " | ".join(cats) + " |", "| --- |" + " ---: |" * len(cats)]
        lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(cats, e["confusion"], strict=True)]
        if e["categories"]:
            lines += ["", "| category | battles | agreement | kappa |", "| --- | ---: | --- | --- |"]
            lines += [f"| {f} | {c['n']} | {_ci(c['agreement'])} | {_ci(c['kappa'])} |"
                      for f, c in e["categories"].items()]
    return "\n".join(lines)


def build(ctx: AppContext) -> None:
    """An accordion with a Refresh button; computed when pressed (bootstrap is not free)."""
    with gr.Accordion("Judges vs people", open=False, elem_id="lb-judges"):
        inconsistent = gr.Radio(["tie", "drop"], value="tie", label="A pair whose two orders disagree counts as",
                                elem_id="lb-judges-inconsistent")
        refresh = gr.Button("Show agreement", size="sm", elem_id="lb-judges-refresh")
        out = gr.Markdown(elem_id="lb-judges-report")

    def on_refresh(policy: str) -> str:
        return judges_markdown(ctx.settings.db_path, ctx.presets, inconsistent=policy)

    refresh.click(on_refresh, [inconsistent], [out], api_name="judges_report")
