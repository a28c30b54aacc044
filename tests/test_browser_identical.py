"""Identical answers in the Arena, in a real browser: the page says so before the vote and offers
only Tie / Both are bad. Twice: an assigned battle whose two stored answers are the same text (no
model needed), and the bundled model against the same weights under another catalog id, greedy,
which answer the same text. Screenshots at 1440x900."""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

import storage
from storage.assignments import assign_overlap
from tests.browser_support import AppProcess, expect_verdicts, open_arena_settings, send_in_arena, twin_model_server
from tests.test_browser_blind import TWIN, pick_mode, add_models

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def twin_app(tmp_path_factory, bundled_gguf):
    with twin_model_server(tmp_path_factory.mktemp("identical"), bundled_gguf, TWIN) as app:
        yield app


@pytest.fixture(scope="module")
def assigned_app(tmp_path_factory):
    """A database with one battle between two stored, identical answers, assigned to the local user."""
    path = tmp_path_factory.mktemp("identical-assigned") / "playground.db"
    with closing(storage.open_database(path)) as db:
        ids = [storage.insert_generation(db, storage.GenerationRecord(
            model_id=model, conversation=[{"role": "user", "content": "Name one colour."}], output=text,
            mode="zero_shot", session_id="seed", finish_reason="stop"))
            for model, text in (("model-a", "Blue."), ("model-b", "Blue.\n"))]
        storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True,
                              session_id="seed")
        assign_overlap(db, share=1.0, k=2, annotators=["local", "someone-else"], seed=0)
    app = AppProcess(path)
    yield app
    app.close()


def test_an_assigned_battle_with_identical_answers_offers_only_tie_or_both_bad(page, assigned_app, screenshot_dir):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(assigned_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    page.locator("#arena-new-round").click()
    page.locator("#arena-status").get_by_text("Assigned battle").wait_for(timeout=30_000)
    status = page.locator("#arena-status").inner_text()
    assert "The two answers are identical" in status, status
    expect_verdicts(page, same_answer=True)
    page.screenshot(path=str(screenshot_dir / "arena-identical-assigned-1440x900.png"))
    page.locator("#arena-vote-both_bad").click()
    page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)
    with closing(sqlite3.connect(assigned_app.db)) as con:
        assert con.execute("SELECT winner, voter FROM votes").fetchall() == [("both_bad", "local")]


def test_identical_answers_get_a_notice_and_only_tie_or_both_bad(page, twin_app, screenshot_dir):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(twin_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    open_arena_settings(page)
    add_models(page, [TWIN])
    pick_mode(page, "zero_shot")
    page.locator("#arena-sampling input").click()
    page.locator("#arena-sampling ul[role='listbox'] li", has_text="deterministic").first.click()
    page.keyboard.press("Escape")
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill("12")
    tokens.press("Enter")
    page.locator("#arena-pool").get_by_text("2 contestants").wait_for(timeout=10_000)
    send_in_arena(page, "Name one colour.", new_round=True)
    status = page.locator("#arena-status").inner_text()
    assert "The two answers are identical" in status, status
    expect_verdicts(page, same_answer=True)
    page.screenshot(path=str(screenshot_dir / "arena-identical-answers-1440x900.png"))
    page.locator("#arena-vote-tie").click()
    page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)
    with closing(sqlite3.connect(twin_app.db)) as con:
        outputs = con.execute("SELECT output FROM generations ORDER BY id").fetchall()
        votes = con.execute("SELECT winner FROM votes").fetchall()
    assert len(outputs) == 2 and outputs[0][0].strip() == outputs[1][0].strip()
    assert votes == [("tie",)]
