"""The Leaderboard tab in headless Chromium: table, a rendered plot, a real DPO download.

It starts its own app on a fresh database: the shared `live_app` is also voted on by other
browser tests, some of which count every vote in it.
"""
from __future__ import annotations

import json

import pytest

import storage
from tests.browser_support import AppProcess
from tests.test_leaderboard_tab import add_battle

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

CONTESTANTS = ("lb-browser-alpha", "lb-browser-beta", "lb-browser-gamma")


def fill(db_path) -> int:
    """Six votes among three contestants (one tie); returns how many are decisive."""
    alpha, beta, gamma = CONTESTANTS
    battles = [(alpha, beta, "left"), (beta, gamma, "left"), (gamma, alpha, "right"),
               (alpha, gamma, "tie"), (beta, alpha, "right"), (gamma, beta, "right")]
    db = storage.open_database(db_path)
    try:
        for k, (left, right, winner) in enumerate(battles):
            add_battle(db, left, right, winner, question=f"browser question {k}")
    finally:
        db.close()
    return sum(w != "tie" for *_, w in battles)


@pytest.fixture(scope="module")
def leaderboard_app(tmp_path_factory):
    db_path = tmp_path_factory.mktemp("lb-live") / "playground.db"
    decisive = fill(db_path)
    app = AppProcess(db_path)
    yield app, decisive
    app.close()


def test_leaderboard_tab_table_plot_and_dpo_download(page, leaderboard_app, screenshot_dir, tmp_path):
    app, decisive = leaderboard_app
    page.goto(app.url)
    page.get_by_role("tab", name="Leaderboard").click()
    table = page.locator("#lb-table")
    expect(table).to_contain_text(CONTESTANTS[0], use_inner_text=True, timeout=60_000)  # computed on opening
    page.locator("#lb-rounds input").fill("200")
    page.locator("#lb-refresh").click()
    page.locator("#lb-warnings").get_by_text("over 200 rounds").wait_for(timeout=60_000)
    text = table.inner_text()
    assert all(name in text for name in CONTESTANTS)
    assert "Ranked 3 contestants" in page.locator("#lb-message").inner_text()
    assert "Position bias" in page.locator("#lb-warnings").inner_text()
    page.locator("#lb-plot-ratings .js-plotly-plot").wait_for(timeout=30_000)     # interactive (plotly)
    page.locator("#lb-plot-ratings .scatterlayer .point").first.scroll_into_view_if_needed()   # the mouse acts in the window
    box = page.locator("#lb-plot-ratings .scatterlayer .point").first.bounding_box()     # under plotly's drag layer
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.locator("#lb-plot-ratings .hoverlayer").get_by_text("95% CI").wait_for(timeout=10_000)
    page.locator("#lb-heatmaps").get_by_text("Heatmaps").first.click()   # drawn when opened
    page.locator("#lb-plot-winrate .js-plotly-plot").wait_for(timeout=60_000)
    page.locator("#lb-plot-predicted .js-plotly-plot").wait_for(timeout=60_000)

    page.locator("#lb-downloads").get_by_text("Downloads").first.click()
    page.locator("#lb-prepare-data").wait_for(timeout=10_000)
    assert not page.locator("#lb-download-dpo").is_enabled()   # no file is built on Refresh
    page.locator("#lb-prepare-data").click()
    expect(page.locator("#lb-download-dpo")).to_be_enabled(timeout=60_000)
    with page.expect_download(timeout=60_000) as info:
        page.locator("#lb-download-dpo").click()
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    pairs = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert target.name == "dpo-standard.jsonl"
    assert len(pairs) == decisive and all(set(p) == {"prompt", "chosen", "rejected"} for p in pairs)
    assert {p["prompt"] for p in pairs} <= {f"browser question {k}" for k in range(6)}
    page.screenshot(path=str(screenshot_dir / "leaderboard.png"), full_page=True)


def test_bad_date_shows_a_message(page, leaderboard_app):
    app, _ = leaderboard_app
    page.goto(app.url)
    page.get_by_role("tab", name="Leaderboard").click()
    expect(page.locator("#lb-table")).to_contain_text(CONTESTANTS[0], use_inner_text=True, timeout=60_000)
    box = page.locator("#lb-since textarea, #lb-since input").first
    box.fill("31/01/2025")
    box.press("Enter")
    page.locator("#lb-message").get_by_text("cannot read '31/01/2025' as a date").wait_for(timeout=30_000)
    assert CONTESTANTS[0] in page.locator("#lb-table").inner_text()   # the last good table stays
