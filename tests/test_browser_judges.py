"""Judges in headless Chromium, each on its own app and database: the Leaderboard tab's "Judges vs
people" panel, the "Votes from" choice, and the Arena's "judge this battle too" after the vote."""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

import storage
from storage.judge_verdicts import judge_identity, record_judge_verdict
from tests.browser_support import AppProcess, ask_in_arena
from tests.test_leaderboard_tab import add_battle

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

JUDGE = judge_identity("panel-judge", "general")
# (person's vote, judge in order AB, judge in order BA)
CASES = [("left", "left", "left"), ("right", "right", "right"), ("left", "right", "right"),
         ("tie", "tie", "tie"), ("right", "left", "right"), ("left", "unparseable", "left")]


@pytest.fixture(scope="module")
def judged_app(tmp_path_factory):
    db_path = tmp_path_factory.mktemp("judges-live") / "playground.db"
    db = storage.open_database(db_path)
    try:
        for k, (person, ab, ba) in enumerate(CASES):
            battle = add_battle(db, "judge-alpha", "judge-beta", person, question=f"judged question {k}")
            for order, verdict in (("AB", ab), ("BA", ba)):
                record_judge_verdict(db, battle_id=battle, judge=JUDGE, judge_model="panel-judge", prompt_id="general",
                                     order=order, judge_prompt="p", raw_output="[[A]]", label=None, verdict=verdict)
    finally:
        db.close()
    app = AppProcess(db_path)
    yield app
    app.close()


def test_judges_panel_shows_agreement_and_swap_consistency(page, judged_app, screenshot_dir):
    page.goto(judged_app.url)
    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#lb-judges").get_by_text("Judges vs people").click()
    page.locator("#lb-judges-refresh").click()
    report = page.locator("#lb-judges-report")
    expect(report).to_contain_text(JUDGE, timeout=60_000)
    text = report.inner_text()
    assert "4/6" in text          # two pairs flip with the order (one of them unparseable)
    assert "1/12" in text         # one unparseable order of twelve
    assert "Cohen's kappa" in text
    report.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "leaderboard_judges_panel.png"), full_page=True)


def test_leaderboard_votes_from_people_judges_or_both(page, judged_app, screenshot_dir):
    """The judge's verdicts are folded into votes by its next run; here by `judge fold`'s function."""
    db = storage.open_database(judged_app.db)
    try:
        from storage.judge_verdicts import fold_judge_votes
        fold_judge_votes(db)
    finally:
        db.close()
    page.goto(judged_app.url)
    page.get_by_role("tab", name="Leaderboard").click()
    message = page.locator("#lb-message")
    expect(message).to_contain_text("people's votes only", timeout=60_000)
    expect(message).to_contain_text("from 6 battles")
    page.locator("#lb-voters").get_by_text("judge models", exact=True).click()
    expect(message).to_contain_text("judge models' votes only", timeout=60_000)
    expect(message).to_contain_text("from 5 battles")   # 4 consistent pairs, 1 inconsistent (a tie), 1 unparseable
    page.screenshot(path=str(screenshot_dir / "leaderboard_voters_judges.png"), full_page=False)
    page.locator("#lb-voters").get_by_text("both", exact=True).click()
    expect(message).to_contain_text("from 11 battles", timeout=60_000)


@pytest.fixture(scope="module")
def arena_app(tmp_path_factory, bundled_gguf):
    app = AppProcess(tmp_path_factory.mktemp("arena-judge") / "playground.db")
    yield app
    app.close()


def test_arena_judge_this_battle_too_appears_only_after_the_vote(page, arena_app, screenshot_dir):
    ask_in_arena(page, arena_app.url, "Name a fruit.", max_tokens=16)
    judge_button = page.locator("#arena-judge-run")
    assert not judge_button.is_visible()              # before the vote the control is not on screen
    page.locator("#arena-vote-left").click()
    page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)
    expect(judge_button).to_be_visible(timeout=30_000)
    budget = page.locator("#arena-judge-max-tokens input[type=number]")
    budget.fill("16")
    budget.press("Enter")
    judge_button.click()
    result = page.locator("#arena-judge-result")
    expect(result).to_contain_text("Judge", timeout=240_000)
    text = result.inner_text()
    assert "You: A is better" in text and "judge:smollm2-135m-instruct-f16@general" in text
    with closing(sqlite3.connect(arena_app.db)) as con:
        orders = con.execute("SELECT judge_order FROM judge_verdicts ORDER BY judge_order").fetchall()
        people = con.execute("SELECT winner FROM counted_votes").fetchall()
    assert orders == [("AB",), ("BA",)] and people == [("left",)]
    result.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "arena_judge.png"), full_page=True)
    page.locator("#arena-new-round").click()
    page.locator("#arena-status").get_by_text("two new anonymous contestants").wait_for(timeout=30_000)
    expect(judge_button).to_be_hidden(timeout=10_000)  # a new round hides it again
