"""The real UI in headless Chromium: chat streams, the pane grid answers, a vote is stored."""
from __future__ import annotations

import sqlite3

import pytest

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def open_app(page, live_app):
    page.goto(live_app.url)
    page.locator("#chat-input textarea").wait_for(timeout=60_000)


def test_chat_streams_an_answer_with_figures(page, live_app, screenshot_dir):
    open_app(page, live_app)
    box = page.locator("#chat-input textarea")
    box.fill("What is the capital of France?")
    box.press("Enter")
    page.locator("#chat-metrics").get_by_text("finish:").wait_for(timeout=120_000)
    metrics = page.locator("#chat-metrics").inner_text()
    assert "prompt" in metrics and "tok/s" in metrics and "first token" in metrics
    bot = page.locator("#chat-bot")
    assert "What is the capital of France?" in bot.inner_text()
    assert len(bot.inner_text().strip()) > len("What is the capital of France?") + 5
    page.get_by_text("Exact prompt sent").first.click()
    page.locator("#chat-prompt").get_by_text("<|im_start|>assistant").first.wait_for(timeout=10_000)
    page.screenshot(path=str(screenshot_dir / "chat.png"), full_page=True)
    page.locator("#chat-bot button[aria-label='Clear']").click()   # the chat box's trash: the whole conversation
    page.locator("#chat-metrics").get_by_text("finish:").wait_for(state="detached", timeout=30_000)
    expect(page.locator("#chat-prompt")).not_to_contain_text("<|im_start|>")   # the state went too, not just the picture


def test_grid_two_panes_stream_and_vote(page, live_app, screenshot_dir):
    open_app(page, live_app)
    page.get_by_role("tab", name="Playground").click()
    box = page.locator("#grid-input textarea")
    box.fill("Sam has 2 cats and gets 3 more. How many cats does Sam have?")
    page.locator("#grid-send").click()
    for i in (1, 2):
        page.locator(f"#pane-{i}-metrics").get_by_text("finish:").wait_for(timeout=180_000)
    page.locator("#grid-status").get_by_text("All panes finished").wait_for(timeout=30_000)
    for i in (1, 2):
        assert "Sam has 2 cats" in page.locator(f"#pane-{i}-chat").inner_text()
        trash = page.locator(f"#pane-{i}-chat button[aria-label='Clear']")
        assert trash.count() == 1 and trash.is_hidden()       # no blanking a pane that is being judged
    page.screenshot(path=str(screenshot_dir / "grid.png"), full_page=True)
    page.locator("#vote-right").click()
    page.locator("#vote-status").get_by_text("Saved").wait_for(timeout=30_000)
    page.locator("#vote-right").click()          # a second click must not count twice
    page.locator("#vote-status").get_by_text("not counted twice").wait_for(timeout=30_000)
    with sqlite3.connect(live_app.db) as db:
        votes = db.execute("select winner from votes").fetchall()
        battle = db.execute("select left_mode, right_mode, anonymous from battles").fetchall()
    assert votes == [("right",)]
    assert battle == [("zero_shot", "few_shot_cot", 0)]


def test_chat_stop_button_ends_generation(page, live_app):
    open_app(page, live_app)
    page.locator("#chat-clear").click()
    box = page.locator("#chat-input textarea")
    box.fill("Write a very long story about a lighthouse keeper and the sea, with many chapters.")
    box.press("Enter")
    page.locator("#chat-metrics").get_by_text("generating").wait_for(timeout=60_000)
    page.locator("#chat-stop").click()
    page.locator("#chat-metrics").get_by_text("finish: cancelled").wait_for(timeout=10_000)
    out_tokens = int(page.locator("#chat-metrics").inner_text().split("output ")[1].split(" ")[0])
    assert out_tokens < 256


def test_pickers_show_the_chosen_name_on_a_laptop_and_a_phone(page, live_app, screenshot_dir):
    """A clipped picker hides what is chosen: the model in Chat (F16 or Q4_1?), the Lab's task file."""
    def shown(selector: str) -> tuple[int, int, str]:
        box = page.locator(f"{selector} input").first
        width, visible = box.evaluate("el => [el.scrollWidth, el.clientWidth]")
        return width, visible, box.input_value()

    open_app(page, live_app)
    for width, height in ((1440, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(300)
        full, visible, name = shown("#chat-model")
        if width == 1440:
            assert full <= visible, (name, full, visible)
        else:      # a phone: the picker has a row of its own and the name's distinguishing part shows
            assert visible >= 290 and "F16" in name, (name, full, visible)
        assert page.evaluate("document.documentElement.scrollWidth") <= width   # no sideways page scroll
    page.set_viewport_size({"width": 1440, "height": 900})
    page.get_by_role("tab", name="Lab").click()
    page.locator("#lab-tasks").wait_for(timeout=30_000)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    full, visible, name = shown("#lab-tasks")
    assert name.endswith(".jsonl") and full <= visible, (name, full, visible)
    page.screenshot(path=str(screenshot_dir / "lab-phone.png"), full_page=False)
    page.set_viewport_size({"width": 1400, "height": 1000})
