"""A first session, as a newcomer has it, in headless Chromium at 1440x900 on a fresh database with
the shipped presets: ask in Chat, compare modes in the Playground with 4 panes (every answer in
the window without scrolling), judge two panes, open the Leaderboard, download the DPO file."""
from __future__ import annotations

import json
import time

import pytest

from tests.browser_support import pick_pane

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

WAIT_MS = 600_000


def test_first_session(browser, fresh_app, screenshot_dir, tmp_path):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(fresh_app.url)
        box = page.locator("#chat-input textarea")
        box.wait_for(timeout=60_000)
        note = page.locator("#app-model-note").inner_text()
        assert "is tiny" in note and "Models" in note, note     # said plainly, with the way to a bigger model
        box.fill("What is the capital of France?")
        box.press("Enter")
        page.locator("#chat-metrics").get_by_text("finish:").wait_for(timeout=WAIT_MS)
        bubbles = page.locator("#chat-bot .message")   # the question, then the answer
        answer = bubbles.last.inner_text().strip()
        assert "Paris" in answer, answer     # the default path (F16 copy) answers sensibly
        page.screenshot(path=str(screenshot_dir / "first-1-chat.png"))

        page.get_by_role("tab", name="Playground").click()
        page.locator("#grid-compare-modes").click()
        page.locator("#pane-6").wait_for(state="visible", timeout=10_000)
        page.locator("#grid-n-panes").get_by_text("4 panes", exact=True).click()
        page.locator("#pane-5").wait_for(state="hidden", timeout=10_000)
        page.locator("#grid-input textarea").fill("Tom has 3 apples and buys 2 more. How many apples does he have?")
        page.locator("#grid-send").click()
        page.locator("#grid-status").get_by_text("All panes finished").wait_for(timeout=WAIT_MS)
        page.evaluate("window.scrollTo(0, 0)")
        for i in range(1, 5):
            chat = page.locator(f"#pane-{i}-chat")
            assert "Tom has 3 apples" in chat.inner_text()
            b = chat.bounding_box()
            assert b["y"] >= 0 and b["y"] + b["height"] <= 900 and b["x"] + b["width"] <= 1440, (i, b)
        page.screenshot(path=str(screenshot_dir / "first-2-playground.png"))
        pick_pane(page, "vote-a", 1)                            # pane 1 (zero-shot) vs pane 2 (few-shot): the
        pick_pane(page, "vote-b", 2)                            # pickers first offer the two that finished first
        page.locator("#vote-left").click()
        page.locator("#vote-status").get_by_text("Saved").wait_for(timeout=30_000)

        page.get_by_role("tab", name="Leaderboard").click()
        page.locator("#lb-include-named input").check()   # a Playground vote is a named comparison
        page.locator("#lb-refresh").click()
        table = page.locator("#lb-table")
        deadline = time.monotonic() + 60
        while "few_shot" not in table.inner_text() and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        assert "few_shot" in table.inner_text() and "zero_shot" in table.inner_text()
        assert "Error" not in page.locator("#tab-leaderboard_tab").inner_text()
        page.screenshot(path=str(screenshot_dir / "first-3-leaderboard.png"))
        page.locator("#lb-downloads").get_by_text("Downloads").first.click()
        page.locator("#lb-prepare-data").click()           # files are built when asked for
        expect(page.locator("#lb-download-dpo")).to_be_enabled(timeout=60_000)
        with page.expect_download(timeout=60_000) as download:
            page.locator("#lb-download-dpo").click()
        path = tmp_path / "dpo.jsonl"
        download.value.save_as(path)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(rows) == 1 and {"prompt", "chosen", "rejected"} <= set(rows[0])
    finally:
        context.close()
