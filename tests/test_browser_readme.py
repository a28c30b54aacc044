"""The README's "Once the page is open" steps and a team's sign-in and sign-out, in real Chromium
against real app processes (the bundled model, a real database, Gradio's own login)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.browser_support import AppProcess

pytestmark = pytest.mark.browser

USERS = {"ada": ("admin", "ada-password-1"), "ben": ("annotator", "ben-password-1")}
WIDE, PHONE = {"width": 1440, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, bundled_gguf) -> Iterator[AppProcess]:
    from playground.auth.users import write_user

    folder = tmp_path_factory.mktemp("team-session")
    users = folder / "users.txt"
    for name, (role, password) in USERS.items():
        write_user(users, name, role, password)
    app = AppProcess(folder / "playground.db", extra=["--auth", str(users)])
    yield app
    app.close()


def sign_in(context: Any, app: AppProcess, user: str) -> Any:
    page = context.new_page()
    page.goto(app.url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(USERS[user][1])
    page.get_by_role("button", name="Login").click()
    page.locator("#whoami").get_by_text(f"Signed in as {user}").wait_for(timeout=60_000)
    return page


def shots_dir(screenshot_dir: Path) -> Path:
    chosen = os.environ.get("PLAYGROUND_SHOTS")
    return Path(chosen) if chosen else screenshot_dir


def test_team_sign_in_advice_per_role_and_sign_out_in_the_tab(browser, team_app, screenshot_dir):
    from playwright.sync_api import expect

    shots = shots_dir(screenshot_dir)
    context = browser.new_context(viewport=WIDE)
    try:
        ben = sign_in(context, team_app, "ben")
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
        ada = sign_in(context, team_app, "ada")
        expect(ada.locator("#app-model-note")).to_contain_text("add a bigger one in the Models tab")
        ada.get_by_role("tab", name="Models").click()
        expect(ada.locator("#models-hub-download")).to_be_visible()
        expect(ada.locator("#models-admin-only")).to_be_hidden()
    finally:
        context.close()
