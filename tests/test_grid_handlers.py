"""The Playground tab's handlers without a browser: real model, real SQLite file."""
from __future__ import annotations

import sqlite3

from playground.ui.grid import (MAX_PANES, PaneConfig, compare_models_layout, compare_modes_layout, grid_run,
                                new_grid_state, pane_view, vote_on_pair)


def configs(*modes: str) -> list[PaneConfig]:
    out = [PaneConfig("smollm2-135m-instruct", "llama_cpp", "cpu", m, "(mode default)", 1, 2, "deterministic")
           for m in modes]
    return out + [out[0]] * (MAX_PANES - len(out))


def run(app_ctx, state, question, n, modes):
    last = None
    for last in grid_run(app_ctx, state, question, n, "arithmetic", configs(*modes)):
        pass
    return last


def test_round_then_named_vote_with_the_login_name(app_ctx):
    state = {**new_grid_state(), "user": "alice"}
    state, views, status = run(app_ctx, state, "What is 3 + 4?", 2, ("zero_shot", "instruction"))
    assert status.startswith("All panes finished")
    assert all(v.metrics and "finish:" in v.metrics for v in views[:2])
    assert views[1].prompt.count("What is 3 + 4?") == 1
    assert state["generations"][0] and state["generations"][1]
    assert len(state["histories"][0]) == 2          # each pane keeps its own history
    assert vote_on_pair(app_ctx, state, 1, 1, "left").startswith("⚠️ Pick two different panes")
    saved = vote_on_pair(app_ctx, state, 1, 2, "tie", "both fine")
    assert saved.startswith("✅ Saved")
    assert "not counted twice" in vote_on_pair(app_ctx, state, 1, 2, "left")
    with sqlite3.connect(app_ctx.settings.db_path) as db:
        rows = db.execute("select v.winner, v.note, v.session_id, b.anonymous, b.source from votes v "
                          "join battles b on b.id = v.battle_id where v.session_id = ?",
                          (f"user:alice/{state['session_id']}",)).fetchall()
    assert rows == [("tie", "both fine", f"user:alice/{state['session_id']}", 0, "playground")]


def test_second_turn_uses_each_panes_history(app_ctx):
    state = new_grid_state()
    state, _, _ = run(app_ctx, state, "My name is Ada.", 2, ("zero_shot", "instruction"))
    state, views, _ = run(app_ctx, state, "What is my name?", 2, ("zero_shot", "instruction"))
    assert "My name is Ada." in views[0].prompt and "My name is Ada." in views[1].prompt
    assert len(state["histories"][0]) == 4


def test_empty_question_and_vote_without_answers():
    state = new_grid_state()
    assert "Wait" in vote_on_pair(None, {**state, "busy": [True] + [False] * (MAX_PANES - 1)}, 1, 2, "left")
    assert "finished answer" in vote_on_pair(None, state, 1, 2, "left")


def test_layouts(app_ctx):
    n, models, modes = compare_modes_layout(app_ctx, "smollm2-135m-instruct")
    assert n == 6 and set(models) == {"smollm2-135m-instruct"} and len(set(modes)) == 6
    n, models, modes = compare_models_layout(app_ctx, "few_shot_cot")
    assert n >= 2 and set(modes) == {"few_shot_cot"}


def test_pane_view_splits_reasoning_from_the_answer():
    from playground.engine import PaneResult
    from playground.prompting.extract import extract_answer

    text = "He has 3 and buys 4, so 3 + 4 = 7. The answer is 7."
    result = PaneResult(exact_prompt="p", output=text, done=True, finish_reason="stop",
                        extracted=extract_answer(text, "number"))
    view = pane_view([], "q", result)
    assert view.messages[1]["metadata"]["title"].endswith("Reasoning")
    assert view.messages[2]["content"] == "The answer is 7."
    assert "<mark class='final-answer'>7</mark>" in view.answer
