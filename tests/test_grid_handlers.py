"""The Playground tab's handlers without a browser: real model, real SQLite file.

The turn and judging rules: each Send starts afresh unless follow-up is on; only the
visible, finished answers of the latest question can be judged, each unordered pair once.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from playground.sampling import SamplingPreset
from playground.ui.grid import (MAX_PANES, PaneConfig, compare_models_layout, compare_modes_layout, grid_run,
                                judge_bar_stream, judge_updates, new_grid_state, pane_view, stop, vote_on_pair)
from playground.ui.grid_rounds import followup_problem, judge_summary, judgeable_panes, start_round

SHORT = "short-test"          # a sampling preset of a few greedy tokens: fast rounds, cut by the limit


@pytest.fixture
def short_sampling(app_ctx, monkeypatch):
    base = app_ctx.sampling_presets["deterministic"].params
    monkeypatch.setitem(app_ctx.sampling_presets, SHORT,
                        SamplingPreset(SHORT, "short", base.with_changes(max_new_tokens=12)))
    return SHORT


def configs(*modes: str, sampling: str = "deterministic") -> list[PaneConfig]:
    out = [PaneConfig("smollm2-135m-instruct", "llama_cpp", "cpu", m, "(mode default)", 1, 2, sampling)
           for m in modes]
    return out + [out[0]] * (MAX_PANES - len(out))


def run(app_ctx, state, question, n, modes, sampling="deterministic", followup=False):
    last = None
    for last in grid_run(app_ctx, state, question, n, "arithmetic", configs(*modes, sampling=sampling), followup):
        pass
    return last


def stored(app_ctx, sql, params=()):
    with sqlite3.connect(app_ctx.settings.db_path) as db:
        return db.execute(sql, params).fetchall()


def test_round_then_named_vote_with_the_login_name(app_ctx):
    state = {**new_grid_state(), "user": "alice"}
    state, views, status = run(app_ctx, state, "What is 3 + 4?", 2, ("zero_shot", "instruction"))
    assert status.startswith("All panes finished")
    assert all(v.metrics and "finish:" in v.metrics for v in views[:2])
    assert views[1].prompt.count("What is 3 + 4?") == 1
    assert state["generations"][0] and state["generations"][1]
    assert judgeable_panes(state, 2) == [1, 2]
    state, msg = vote_on_pair(app_ctx, state, 1, 1, "left")
    assert msg.startswith("⚠️ Pick two different panes")
    state, saved = vote_on_pair(app_ctx, state, 1, 2, "tie", "both fine", visible=2)
    assert saved.startswith("✅ Saved")
    # the same two answers in either order are one comparison: neither order counts twice
    state, again = vote_on_pair(app_ctx, state, 1, 2, "left", visible=2)
    state, swapped = vote_on_pair(app_ctx, state, 2, 1, "right", visible=2)
    assert "not counted twice" in again and "not counted twice" in swapped
    session = f"user:alice/{state['session_id']}"
    rows = stored(app_ctx, "select v.winner, v.note, v.session_id, b.anonymous, b.source from votes v "
                           "join battles b on b.id = v.battle_id where v.session_id = ?", (session,))
    assert rows == [("tie", "both fine", session, 0, "playground")]


def test_each_send_starts_afresh_unless_follow_up(app_ctx, short_sampling):
    modes = ("zero_shot", "instruction")
    state, _, _ = run(app_ctx, new_grid_state(), "My name is Ada.", 2, modes, short_sampling)
    state, views, _ = run(app_ctx, state, "What is my name?", 2, modes, short_sampling)
    assert all("My name is Ada." not in v.prompt for v in views[:2])     # single-turn by default
    assert all(len(v.messages) >= 2 and v.messages[0]["content"] == "What is my name?" for v in views[:2])
    state, views, status = run(app_ctx, state, "Say it again.", 2, modes, short_sampling, followup=True)
    assert status.startswith("All panes finished")
    assert all("What is my name?" in v.prompt and "My name is Ada." not in v.prompt for v in views[:2])
    conversations = [json.loads(c) for (c,) in stored(
        app_ctx, "select conversation from generations where id in (?, ?)", tuple(state["generations"][:2]))]
    users = [[m["content"] for m in conv if m["role"] == "user"] for conv in conversations]
    assert users == [["What is my name?", "Say it again."]] * 2          # the same user turns in every pane
    state, views, _ = run(app_ctx, state, "What is 2 + 2?", 2, modes, short_sampling)
    assert all("Say it again." not in v.prompt for v in views[:2])        # follow-up off: afresh again


def test_follow_up_needs_the_same_finished_panes():
    state, _ = start_round(new_grid_state(), "q1", 3, ["x"] * 3, False, "run")
    state = {**state, "run_id": None, "busy": [False] * MAX_PANES, "generations": [1, 2, 3, None, None, None],
             "finish": ["stop", "length", "stop", None, None, None]}
    assert followup_problem(state, 3) is None
    assert "set Panes to 3" in followup_problem(state, 4)
    state["finish"][1] = "cancelled"
    assert "Pane 2 was stopped" in followup_problem(state, 3)
    last = list(grid_run(None, state, "q2", 4, "arithmetic", configs("zero_shot"), followup=True))
    assert len(last) == 1 and "set Panes to 3" in last[0][2] and last[0][0] is state   # nothing ran


def _finished_round(state, question, n, first_id, finish=None):
    state, _ = start_round(state, question, n, [f"m · mode {i}" for i in range(n)], False, "run")
    gens = [first_id + i if i < n else None for i in range(MAX_PANES)]
    fin = list(finish or ["stop"] * n) + [None] * (MAX_PANES - n)
    return {**state, "run_id": None, "busy": [False] * MAX_PANES, "generations": gens, "finish": fin}


def test_a_vote_across_questions_or_on_a_hidden_pane_is_refused_before_storage():
    """Ask in 6 panes, then in 3: panes 4-6 still hold answers to the first question. No request
    can pair them with the second question's answers (ctx=None: storage is never reached)."""
    state = _finished_round(new_grid_state(), "first question", 6, 101)
    assert judgeable_panes(state, 6) == [1, 2, 3, 4, 5, 6]
    state = _finished_round(state, "second question", 3, 201)
    assert judgeable_panes(state, 6) == [1, 2, 3]
    assert judgeable_panes(state, 2) == [1, 2]
    _, msg = vote_on_pair(None, state, 1, 4, "left", visible=6)
    assert "pane 4 has no answer to the latest question" in msg
    _, msg = vote_on_pair(None, state, 3, 1, "left", visible=2)
    assert "pane 3 is hidden" in msg
    assert "1 pane(s) of this question are hidden" in judge_summary(state, 2)
    a, b, *_ = judge_updates(state, 6)
    assert [v for _, v in a["choices"]] == ["1", "2", "3"] and (a["value"], b["value"]) == ("1", "2")


def test_finished_panes_are_judged_while_others_still_answer():
    """Mid-round: panes 1 and 2 have finished, pane 3 still answers. The pair (1, 2) is offered and
    accepted by the rules; pane 3 is refused on the server whatever the request says."""
    state, _ = start_round(new_grid_state(), "q", 3, ["a", "b", "c"], False, "run-1")
    assert judgeable_panes(state, 3) == [] and "Judging opens as soon as two answers" in judge_summary(state, 3)
    bar, offered = judge_bar_stream(state, 3, None)                    # the round's first yield
    assert bar is not None and offered == [] and bar[0]["choices"] == []
    assert judge_bar_stream(state, 3, offered) == (None, [])           # a token streamed: nothing to send
    state["generations"][0], state["finish"][0], state["busy"][0] = 11, "stop", False
    bar, offered = judge_bar_stream(state, 3, offered)
    assert offered == [1] and all(u["interactive"] is False for u in bar[2:6])
    state["generations"][1], state["finish"][1], state["busy"][1] = 12, "length", False
    bar, offered = judge_bar_stream(state, 3, offered)
    assert offered == [1, 2] and (bar[0]["value"], bar[1]["value"]) == ("1", "2")   # first time two: picked
    assert all(u["interactive"] is True for u in bar[2:6])
    assert "Judge two finished answers now (2 can be judged; 1 pane still answering)" in bar[6]
    _, msg = vote_on_pair(None, state, 1, 3, "left", visible=3)
    assert "Wait until both answers are complete" in msg
    state["generations"][2], state["finish"][2], state["busy"][2] = 13, "stop", False
    state["run_id"] = None                                             # the round's last yield
    bar, offered = judge_bar_stream(state, 3, offered)
    assert offered == [1, 2, 3] and "value" not in bar[0] and "value" not in bar[1]   # a pick is kept


def test_stopped_or_failed_answers_cannot_be_judged_but_cut_ones_can():
    state = _finished_round(new_grid_state(), "q", 4, 301, ["stop", "cancelled", "error", "length"])
    assert judgeable_panes(state, 4) == [1, 4]
    _, msg = vote_on_pair(None, state, 1, 2, "left", visible=4)
    assert "pane 2 was stopped before it finished" in msg
    _, msg = vote_on_pair(None, state, 3, 4, "left", visible=4)
    assert "pane 3 failed" in msg
    summary = judge_summary(state, 4)
    assert "pane 2 was stopped" in summary and "pane 3 failed" in summary


def test_stop_mid_round_then_the_pickers_offer_nothing(app_ctx):
    """Through the real model: Stop while streaming, every stopped pane is left out of judging."""
    state = new_grid_state()
    gen = grid_run(app_ctx, state, "Write a long story about a lighthouse keeper.", 2, "arithmetic",
                   configs("zero_shot", "instruction"))
    for state, views, status in gen:
        if any(v is not None and v.messages and v.messages[-1]["role"] == "assistant" for v in views):
            stop(app_ctx, state)
            break
    for state, views, status in gen:
        pass
    assert status.startswith("All panes finished")
    assert state["finish"][:2] == ["cancelled", "cancelled"]
    assert all("cannot be judged" in v.notices for v in views[:2])
    assert judgeable_panes(state, 2) == []
    _, msg = vote_on_pair(app_ctx, state, 1, 2, "left", visible=2)
    assert "was stopped before it finished" in msg
    assert stored(app_ctx, "select count(*) from battles where left_generation_id in (?, ?)",
                  tuple(state["generations"][:2])) == [(0,)]
    a, b, *buttons, hint = judge_updates(state, 2)
    assert a["choices"] == [] and all(u["interactive"] is False for u in buttons)


def test_an_answer_cut_by_the_token_limit_is_judged(app_ctx, short_sampling):
    state, views, _ = run(app_ctx, new_grid_state(), "Tell me about the sea.", 2, ("zero_shot", "instruction"),
                          short_sampling)
    assert state["finish"][:2] == ["length", "length"]
    assert all("Cut at the token limit" in v.notices for v in views[:2])
    state, msg = vote_on_pair(app_ctx, state, 2, 1, "left", visible=2)
    assert msg.startswith("✅ Saved")


def test_empty_question_and_vote_without_answers():
    state = new_grid_state()
    _, msg = vote_on_pair(None, {**state, "busy": [True] + [False] * (MAX_PANES - 1)}, 1, 2, "left")
    assert "Wait" in msg
    _, msg = vote_on_pair(None, state, 1, 2, "left")
    assert "finished answer" in msg
    assert list(grid_run(None, state, "  ", 2, "arithmetic", configs("zero_shot")))[0][2].startswith("⚠️ Type")


def test_layouts(app_ctx):
    n, models, modes = compare_modes_layout(app_ctx, "smollm2-135m-instruct")
    assert n == 6 and set(models) == {"smollm2-135m-instruct"} and len(set(modes)) == 6
    n, models, modes, message = compare_models_layout(app_ctx, "few_shot_cot")
    assert (n >= 2 and set(modes) == {"few_shot_cot"} and len(set(models)) == n) or (n == 0 and message)


def test_compare_models_with_one_model_says_how_to_add_another(app_ctx):
    """One installed model: no two identical panes, but a message naming the ways to add one."""
    from playground.models.catalog import Catalog

    bundled = app_ctx.catalog.get("smollm2-135m-instruct")
    hub = [s for s in app_ctx.catalog if s.source == "hub" and not s.available]
    catalog = Catalog()
    for spec in [bundled, *hub]:
        catalog.add(spec)
    ctx = SimpleNamespace(catalog=catalog, settings=SimpleNamespace(models_dir=Path("models")))
    n, models, modes, message = compare_models_layout(ctx, "zero_shot")
    assert (n, models, modes) == (0, [], [])
    assert "Only one model is installed" in message and bundled.display_name in message
    assert "Models" in message and "presets/hub_models.yaml" in message and "`models`" in message


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


def test_six_panes_stream_at_a_readable_rate_and_end_with_every_answer(app_ctx, monkeypatch):
    """The page stays light: the browser gets at most one update per STREAM_INTERVAL_S (plus one per pane that ends),
    never one per token, and the last update carries every pane's final state."""
    import time

    from playground.ui.grid import STREAM_INTERVAL_S

    base = app_ctx.sampling_presets["deterministic"].params
    monkeypatch.setitem(app_ctx.sampling_presets, "rate-test",
                        SamplingPreset("rate-test", "48 tokens", base.with_changes(max_new_tokens=48)))
    modes = ("zero_shot", "instruction", "few_shot", "zero_shot", "instruction", "few_shot")
    began = time.monotonic()
    yields = list(grid_run(app_ctx, new_grid_state(), "Name three colours and say why.", 6, "arithmetic",
                           configs(*modes, sampling="rate-test")))
    elapsed = time.monotonic() - began
    state, final_views, status = yields[-1]
    assert status.startswith("All panes finished")
    ids = tuple(state["generations"][:6])
    tokens = sum(n for (n,) in stored(app_ctx, f"select n_output_tokens from generations where id in "
                                      f"({','.join('?' * 6)})", ids))
    bound = 1 + elapsed / STREAM_INTERVAL_S + 6 + 2    # first view, one per interval, one per pane end, the last
    assert len(yields) <= bound, (len(yields), elapsed)
    assert len(yields) <= tokens + 8, (tokens, len(yields))  # and only when something changed: never idle polls
    assert all(any(view is not None for view in views) or text != previous
               for (_, views, text), (_, _, previous) in zip(yields[1:], yields, strict=False))
    assert all(view is not None and "finish:" in view.metrics for view in final_views[:6])
    outputs = dict(stored(app_ctx, f"select id, output from generations where id in ({','.join('?' * 6)})", ids))
    for generation_id, view in zip(ids, final_views, strict=False):
        assert outputs[generation_id].strip()[:12] in view.answer + str(view.messages)
