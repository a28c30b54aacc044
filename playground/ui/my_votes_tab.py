"""The My votes tab: the signed-in person's own votes, counts and downloads.

On a team server an annotator sees only their own votes here (the Leaderboard's data downloads,
which hold everyone's, are admin-only); without login the one local user's votes are all votes.
`my_votes_view` is the plain function behind it (tests call it without a browser).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd
from gradio.context import Context

from playground.agreement import report_markdown, team_report
from playground.auth.access import User
from playground.context import AppContext
from playground.errors import PlaygroundError
from playground.export import PreferenceFilters, export_arena_battles, export_dpo
from playground.ui.leaderboard_handlers import request_dir
from storage import open_database
from storage.voters import VOTE_COLUMNS, recent_votes, vote_counts

SHOWN = 200
HEADERS = ["vote", "time (UTC)", "tab", "left", "left mode", "right", "right mode", "verdict", "question"]
# pixels, as in the Models tab: each header on one line, and on a phone the table scrolls sideways
# instead of breaking words into letters ("vo te")
COLUMN_WIDTHS = ["64px", "130px", "110px", "150px", "110px", "150px", "110px", "84px", "320px"]


@dataclass
class MyVotesView:
    summary: str
    table: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=HEADERS))
    dpo: Path | None = None
    battles: Path | None = None
    team: str = ""          # admins only: every annotator's statistics and agreement (playground.agreement)


def my_votes_view(db_path: str | Path, user: User, out_dir: Path) -> MyVotesView:
    """Counts, the latest votes and the two download files of `user`'s votes (never anyone else's)."""
    try:
        with closing(open_database(db_path)) as db:
            team = report_markdown(team_report(db)) if user.is_admin else ""
            counts = vote_counts(db, user.voter)
            rows = recent_votes(db, user.voter, SHOWN)
            if counts["total"] == 0:
                return MyVotesView(summary=f"**{user.label()}:** no votes yet. Judge answer pairs in the "
                                           "**Arena** or **Playground** tab; they show up here.", team=team)
            dpo = export_dpo(db, out_dir / "my-dpo.jsonl", PreferenceFilters(voter=user.voter, include_truncated=True))
            battles = export_arena_battles(db, out_dir / "my-battles.json", voter=user.voter)
    except PlaygroundError as exc:
        return MyVotesView(summary=f"❌ {exc}")
    whose = "Your" if user.logged_in else "All"
    summary = (f"**{user.label()}** · {whose} votes: **{counts['total']}** (left {counts['left']}, right "
               f"{counts['right']}, tie {counts['tie']}, both bad {counts['both_bad']}). "
               f"{pairs_sentence(dpo.written)} {listed_sentence(counts['total'])}")
    table = pd.DataFrame([[r[c] for c in VOTE_COLUMNS] for r in rows], columns=HEADERS)
    table["question"] = table["question"].str.slice(0, 160)
    table["time (UTC)"] = table["time (UTC)"].str.slice(0, 16).str.replace("T", " ")
    return MyVotesView(summary=summary, table=table, dpo=dpo.path if dpo.written else None,
                       battles=battles.path if battles.written else None, team=team)


def pairs_sentence(n: int) -> str:
    """How many DPO pairs the votes make, in English that agrees with the number."""
    if n == 0:
        return "None become DPO pairs (ties, or answers that cannot pair)."
    return "1 becomes a DPO pair." if n == 1 else f"{n} become DPO pairs."


def listed_sentence(total: int) -> str:
    if total == 1:
        return "It is listed below."
    if total <= SHOWN:
        return f"All {total} are listed below."
    return f"The latest {SHOWN} are listed below."


def build(ctx: AppContext) -> None:
    gr.Markdown("Your own judgements: how many, which, and your data as files (DPO pairs for TRL, battles "
                "in Chatbot Arena's JSON shape). The aggregate rankings are in the **Leaderboard** tab.")
    summary = gr.Markdown(elem_id="my-votes-summary")
    refresh = gr.Button("Refresh", elem_id="my-votes-refresh", size="sm")
    table = gr.Dataframe(pd.DataFrame(columns=HEADERS), interactive=False, wrap=True, max_height=480,
                         column_widths=COLUMN_WIDTHS, elem_id="my-votes-table")
    with gr.Row():
        dpo = gr.DownloadButton("My DPO pairs (JSONL)", interactive=False, size="sm", elem_id="my-votes-download-dpo")
        battles = gr.DownloadButton("My battles (JSON)", interactive=False, size="sm",
                                    elem_id="my-votes-download-battles")
    team = gr.Markdown(elem_id="my-votes-team")     # filled for admins only (my_votes_view)

    def on_refresh(request: gr.Request) -> Iterator[list[Any]]:
        with request_dir() as out_dir:
            view = my_votes_view(ctx.settings.db_path, ctx.access.user(request), out_dir)
            yield [view.summary, view.table, _file(view.dpo), _file(view.battles), view.team]

    parent = Context.block
    triggers = [refresh.click, parent.select] if isinstance(parent, gr.Tab) else [refresh.click]
    gr.on(triggers, on_refresh, None, [summary, table, dpo, battles, team], api_name="my_votes")


def _file(path: Path | None) -> Any:
    return gr.update(value=str(path), interactive=True) if path else gr.update(value=None, interactive=False)
