"""The login page in a real browser: a paused sign-in (HTTP 429 from the throttle) is explained on the
form, where Gradio's own form showed nothing. A real team server process, real headless Chromium."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.browser_support import AppProcess, team_server

pytestmark = pytest.mark.browser

PASSWORD = "dee-password-1"


@pytest.fixture(scope="module")
def login_server(tmp_path_factory, bundled_gguf) -> Iterator[AppProcess]:
    with team_server(tmp_path_factory.mktemp("login"), {"dee": ("annotator", PASSWORD)}) as app:
        yield app


def sign_in(page, name: str, password: str) -> int:
    """Fill Gradio's login form, press Login; the status of the POST /login it sent."""
    page.locator("input[type=text]").first.fill(name)
    page.locator("input[type=password]").first.fill(password)
    with page.expect_response(lambda r: r.url.rstrip("/").endswith("/login") and r.request.method == "POST",
                              timeout=30_000) as answer:
        page.get_by_role("button", name="Login").click()
    return answer.value.status


def test_a_paused_sign_in_says_why_and_how_long_on_the_login_form(login_server, page, screenshot_dir: Path):
    page.goto(login_server.url)
    page.locator("input[type=password]").wait_for(timeout=60_000)
    statuses = []
    for _ in range(8):  # 5 free misses, then pauses of 1 s and 2 s (held answers), then 4 s: refused
        statuses.append(sign_in(page, "dee", "wrong-password"))
        if statuses[-1] == 429:
            break
    assert statuses[-1] == 429 and statuses[:-1] == [400] * (len(statuses) - 1), statuses
    note = page.locator("#login-paused")
    note.wait_for(timeout=10_000)
    text = note.inner_text()
    assert "Too many wrong passwords for the name 'dee'" in text and "paused for" in text, text
    assert note.get_attribute("role") == "alert" and note.is_visible()
    page.screenshot(path=str(screenshot_dir / "login-paused.png"))
    page.wait_for_timeout(4_500)  # the pause runs out: the right password signs in, the notice goes
    assert sign_in(page, "dee", PASSWORD) == 200
    page.wait_for_load_state()
    assert page.locator("#login-paused").count() == 0
