"""The README's "Once the page is open" steps and a team's sign-in and sign-out, in real Chromium
against real app processes (the bundled model, a real database, Gradio's own login)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.browser_support import AppProcess, open_tab, sign_in, team_server

pytestmark = pytest.mark.browser

USERS = {"ada": ("admin", "ada-password-1"), "ben": ("annotator", "ben-password-1")}
WIDE, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, bundled_gguf) -> Iterator[AppProcess]:
    with team_server(tmp_path_factory.mktemp("team-session"), USERS) as app:
        yield app


def shots_dir(screenshot_dir: Path) -> Path:
    chosen = os.environ.get("PLAYGROUND_SHOTS")
    return Path(chosen) if chosen else screenshot_dir


def test_team_sign_in_advice_per_role_and_sign_out_in_the_tab(browser, team_app, screenshot_dir):
    from playwright.sync_api import expect

    shots = shots_dir(screenshot_dir)
    context = browser.new_context(viewport=WIDE)
    try:
        ben = sign_in(context, team_app, "ben", USERS["ben"][1])
        note = ben.locator("#app-model-note")
        expect(note).to_contain_text("ask an admin of this playground for a bigger one")
        expect(note).not_to_contain_text("add a bigger one in the Models tab")
        ben.get_by_role("tab", name="Models").click()
        expect(ben.locator("#models-admin-only")).to_be_visible()
        expect(ben.locator("#models-admin-only")).to_contain_text("only an admin can add models")
        expect(ben.locator("#models-hub-download")).to_be_hidden()
        ben.screenshot(path=str(shots / "team-annotator-models-1440.png"))

        old_tab = context.new_page()                 # a second tab of the same browser, same sign-in
        old_tab.goto(team_app.url)
        old_tab.locator("#whoami").get_by_text("Signed in as ben").wait_for(timeout=60_000)

        pages_before = len(context.pages)
        ben.locator("#logout").click()
        # signing out happens in this tab: its login page, no new tab
        ben.get_by_label("username").wait_for(timeout=30_000)
        assert len(context.pages) == pages_before
        expect(ben.locator("#whoami")).to_have_count(0)
        ben.screenshot(path=str(shots / "team-signed-out-1440.png"))

        # the old tab still shows the app; its next action says what happened instead of "Error"
        old_tab.get_by_role("tab", name="My votes").click()
        old_tab.locator("#my-votes-refresh").click()
        banner = old_tab.locator("#signed-out-banner")
        expect(banner).to_be_visible(timeout=30_000)
        expect(banner).to_contain_text("Signed out: sign in again")
        expect(old_tab.locator("#whoami")).to_have_text("Signed out")      # no longer "Signed in as ben"
        old_tab.screenshot(path=str(shots / "team-old-tab-signed-out-1440.png"))
        banner.get_by_role("link", name="sign in again").click()
        old_tab.get_by_label("username").wait_for(timeout=30_000)
    finally:
        context.close()

    context = browser.new_context(viewport=WIDE)
    try:
        ada = sign_in(context, team_app, "ada", USERS["ada"][1])
        expect(ada.locator("#app-model-note")).to_contain_text("add a bigger one in the Models tab")
        ada.get_by_role("tab", name="Models").click()
        expect(ada.locator("#models-hub-download")).to_be_visible()
        expect(ada.locator("#models-admin-only")).to_be_hidden()
    finally:
        context.close()


TABS = ("Chat", "Playground", "Arena", "Leaderboard", "Lab", "Train", "Models", "My votes")
README_QUESTION = ("A cafeteria had 23 apples. They used 20 and bought 6 more. How many apples do they have?")


@pytest.fixture(scope="module")
def readme_app(tmp_path_factory, bundled_gguf) -> Iterator[AppProcess]:
    app = AppProcess(tmp_path_factory.mktemp("readme") / "playground.db")
    yield app
    app.close()


def recommended_hub_ids() -> list[str]:
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parent.parent / "presets" / "hub_models.yaml").read_text())
    entries = data.get("models", data) if isinstance(data, dict) else data
    return [e.get("ref") or e.get("id") for e in entries if isinstance(e, dict)]


def test_readme_once_the_page_is_open_chat_and_playground(browser, readme_app, screenshot_dir):
    """The README's first two steps as written: Chat, then the Playground's Compare modes, Send to all
    and a vote (step 3, the Models tab, is the next test)."""

    shots = shots_dir(screenshot_dir)
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    try:
        page.goto(readme_app.url)
        box = page.locator("#chat-input textarea")
        box.wait_for(timeout=120_000)
        # every text a screen reader is given (Gradio's aria-live announcer holds each for 1 s only)
        page.evaluate("""() => { window.__announced = [];
            new MutationObserver(() => document.querySelectorAll('[aria-live]').forEach(e => {
                const t = e.textContent.trim(); if (t) window.__announced.push(t); }))
              .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
        # 1. Chat: the answer, then its token counts and speed
        box.fill("What is the capital of France?")
        box.press("Enter")
        page.locator("#chat-metrics").get_by_text("finish:").wait_for(timeout=300_000)
        answer = page.locator("#chat-bot .message").last
        assert "Paris" in answer.inner_text(), answer.inner_text()
        assert "tok" in page.locator("#chat-metrics").inner_text()
        # screen readers hear "Done" when an event ends, never Gradio's raw i18n key
        page.wait_for_timeout(1500)
        announced = page.evaluate("() => window.__announced")
        assert not any("common." in t for t in announced), announced

        # 2. Playground: Compare modes, Send to all, zero-shot / few-shot / CoT side by side, a vote
        open_tab(page, "Playground")
        page.locator("#grid-compare-modes").click()
        page.locator("#grid-n-panes").get_by_text("3 panes", exact=True).click()   # zero-shot, few-shot, CoT
        page.locator("#pane-4").wait_for(state="hidden", timeout=10_000)
        page.locator("#grid-input textarea").fill(README_QUESTION)
        page.get_by_role("button", name="Send to all").click()
        page.locator("#grid-status").get_by_text("All panes finished").wait_for(timeout=600_000)
        headers = " ".join(page.locator(f"#pane-{i}").inner_text() for i in (1, 2, 3))
        assert all(mode in headers.lower() for mode in ("zero-shot", "few-shot", "cot")), headers
        page.locator("#vote-left").click()
        page.locator("#vote-status").get_by_text("Saved").wait_for(timeout=30_000)

    except Exception:
        page.screenshot(path=str(shots / "readme-walk-failure.png"), full_page=True)
        raise
    finally:
        context.close()


def test_models_tab_and_every_tab_at_two_sizes(browser, readme_app, screenshot_dir):
    """README step 3 (the Models tab's recommended list; headers on one line, no scroll box), the
    phone's Chat input on the first screen, then a screenshot of every tab at 1440x900 and 390x844."""
    from playwright.sync_api import expect

    shots = shots_dir(screenshot_dir)
    context = browser.new_context(viewport=WIDE)
    page = context.new_page()
    try:
        page.goto(readme_app.url)
        page.locator("#chat-input textarea").wait_for(timeout=120_000)
        # a finished event is announced to screen readers as "Done" (it was the raw key "common.complete")
        page.evaluate("""() => { window.__announced = [];
            new MutationObserver(() => document.querySelectorAll('[aria-live]').forEach(e => {
                const t = e.textContent.trim(); if (t) window.__announced.push(t); }))
              .observe(document.body, {subtree: true, childList: true, characterData: true}); }""")
        open_tab(page, "My votes")
        page.locator("#my-votes-refresh").click()
        page.wait_for_function("() => window.__announced.includes('Done')", timeout=60_000)
        assert not any("common." in t for t in page.evaluate("() => window.__announced"))
        # 3. Models: the recommended Hub list is there; headers on one line; no scroll box
        open_tab(page, "Models")
        table = page.locator("#models-table")
        expect(table).to_contain_text("smollm2-135m-instruct-f16")
        hub = [ref for ref in recommended_hub_ids() if ref]
        assert hub and all(ref in table.inner_text() for ref in hub[:2]), hub
        # every header on one line: its text node's line boxes (a wrapped "param s" has two)
        lines = page.evaluate("""() => {
            const out = {};
            const walker = document.createTreeWalker(document.querySelector('#models-table thead'), NodeFilter.SHOW_TEXT);
            while (walker.nextNode()) {
                const text = walker.currentNode.textContent.trim();
                if (text) {
                    const range = document.createRange();
                    range.selectNodeContents(walker.currentNode);
                    const n = new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
                    if (n) out[text] = Math.max(out[text] || 0, n);     // hidden copies have no boxes
                }
            }
            return out; }""")
        assert {"params", "quant.", "context", "status"} <= set(lines) and set(lines.values()) == {1}, lines
        scrolls = page.evaluate("""() => [...document.querySelectorAll('#models-table *')]
            .some(e => e.scrollHeight > e.clientHeight + 4 && getComputedStyle(e).overflowY.match(/auto|scroll/))""")
        assert not scrolls, "the Models table scrolls inside a box"

        for size_name, size in (("1440x900", WIDE), ("390x844", PHONE)):
            page.set_viewport_size(size)
            page.goto(readme_app.url)
            page.locator("#chat-input textarea").wait_for(timeout=120_000)
            if size == PHONE:       # the Chat input and its whole placeholder on the first screen
                box = page.locator("#chat-input textarea").bounding_box()
                assert box["y"] + box["height"] <= PHONE["height"], box
                fits = page.evaluate("() => { const t = document.querySelector('#chat-input textarea');"
                                     " const c = document.createElement('canvas').getContext('2d');"
                                     " c.font = getComputedStyle(t).font;"
                                     " return c.measureText(t.placeholder).width <= t.clientWidth; }")
                assert fits, "the Chat input's placeholder is clipped"
            for name in TABS:
                open_tab(page, name)
                page.wait_for_timeout(800)
                page.screenshot(path=str(shots / f"tab-{name.lower().replace(' ', '-')}-{size_name}.png"))
    finally:
        context.close()
