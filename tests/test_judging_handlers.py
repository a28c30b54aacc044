"""The judging rules through the Playground's handlers (no browser): the bundled model, a real SQLite file.

The reported journey: ask in 6 panes, switch to 3 panes and ask again, then judge pane 1 against
pane 4 (an answer to the first question): refused, and nothing reaches the exports. Also the same
two panes judged in both orders, and a vote on an answer cut by Stop.
"""
from __future__ import annotations

import json
import sqlite3
import time

import pytest

from playground.export import PreferenceFilters, export_dpo
from playground.sampling import SamplingParams, SamplingPreset
from playground.ui.grid import MAX_PANES, PaneConfig, grid_run, new_grid_state, stop, vote_on_pair
from storage import open_database

FAST = "judging-fast"


@pytest.fixture(scope="module")
def ctx(app_ctx):
    app_ctx.sampling_presets.setdefault(FAST, SamplingPreset(FAST, "few tokens", SamplingParams(max_new_tokens=5)))
    return app_ctx


def configs(n: int) -> list[PaneConfig]:
    modes = ("zero_shot", "instruction")
    return [PaneConfig("smollm2-135m-instruct", "llama_cpp", "cpu", modes[i % 2], "(mode default)", 1, 2, FAST)
            for i in range(MAX_PANES)][:MAX_PANES]


def ask(ctx, state, question: str, n: int, stop_early: bool = False):
    last = None
    for k, last in enumerate(grid_run(ctx, state, question, n, "arithmetic", configs(n))):
        if stop_early and k == 0:
            stop(ctx, last[0])
    return last[0]


def votes_of(ctx, state) -> int:
    with sqlite3.connect(ctx.settings.db_path) as db:
        return db.execute("SELECT count(*) FROM votes WHERE session_id = ?", (state["session_id"],)).fetchone()[0]


def test_a_vote_across_two_questions_is_refused(ctx, tmp_path):
    state = ask(ctx, new_grid_state(), "What is 2 + 2?", 6)
    state = ask(ctx, state, "Name a colour.", 3)
    _, message = vote_on_pair(ctx, state, 1, 4, "left")     # even if the request claims pane 4 is shown
    assert message.startswith("⚠️ Not saved") and "latest question" in message, message
    assert votes_of(ctx, state) == 0
    since = time.time()
    state, message = vote_on_pair(ctx, state, 1, 2, "left", visible=3)
    assert message.startswith("✅ Saved"), message
    db = open_database(ctx.settings.db_path)
    try:
        result = export_dpo(db, tmp_path / "pairs.jsonl", PreferenceFilters(since=since, include_truncated=True),
                            format="conversational")
        meta = json.loads(result.meta_path.read_text())
        assert result.written == 1
        assert {meta["chosen_generation_id"], meta["rejected_generation_id"]} == set(state["generations"][:2])
        assert json.loads(result.path.read_text())["chosen"][-2:][-1]["role"] == "assistant"
        stale = state["generations"][3]
        assert stale not in [r[0] for r in db.execute(
            "SELECT left_generation_id FROM battles UNION SELECT right_generation_id FROM battles")]
    finally:
        db.close()


def test_the_same_two_panes_in_the_other_order_return_the_first_vote(ctx):
    state = ask(ctx, new_grid_state(), "What is 3 + 3?", 2)
    first, message = vote_on_pair(ctx, state, 1, 2, "left")
    assert message.startswith("✅ Saved"), message
    for judged_state in (first, state):   # the session knows; and storage knows even when the state does not
        _, again = vote_on_pair(ctx, judged_state, 2, 1, "left")     # A=2, B=1: would contradict the first vote
        assert "already judged" in again and "A is better" in again, again
    assert votes_of(ctx, state) == 1


def test_an_answer_cut_by_stop_cannot_be_judged(ctx):
    state = ask(ctx, new_grid_state(), "Write a long poem about the sea.", 2, stop_early=True)
    with sqlite3.connect(ctx.settings.db_path) as db:
        reasons = [db.execute("SELECT finish_reason FROM generations WHERE id = ?", (g,)).fetchone()[0]
                   for g in state["generations"][:2] if g is not None]
    assert "cancelled" in reasons
    _, message = vote_on_pair(ctx, state, 1, 2, "left")
    assert message.startswith("⚠️ Not saved") and "only finished answers" in message, message
    assert votes_of(ctx, state) == 0
