"""The Leaderboard tab's "Judges vs people" panel in headless Chromium, on its own app and database."""
from __future__ import annotations

import pytest

import storage
from storage.judge_verdicts import judge_identity, record_judge_verdict
from tests.browser_support import AppProcess
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
