"""The whole journey a person takes, in headless Chromium against the real app on a fresh database:
ask two panes, vote, see the leaderboard, download DPO data, run a 2-item lab and see its plot."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_ask_vote_rank_export_and_lab(page, fresh_app, screenshot_dir, tmp_path):
    page.goto(fresh_app.url)
    page.get_by_role("tab", name="Playground").click()
    page.locator("#grid-input textarea").fill("Lena has 9 stickers and gives away 4. How many are left?")
    page.locator("#grid-send").click()
    for i in (1, 2):
        page.locator(f"#pane-{i}-metrics").get_by_text("finish:").wait_for(timeout=180_000)
    page.locator("#grid-status").get_by_text("All panes finished").wait_for(timeout=30_000)
    page.locator("#vote-right").click()
    page.locator("#vote-status").get_by_text("Saved").wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "journey-1-grid.png"), full_page=True)

    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#lb-message").get_by_text("No anonymous battles yet").wait_for(timeout=60_000)  # a named vote
    page.locator("#lb-include-named").get_by_text("Include named comparisons").click()
    page.locator("#lb-by").get_by_text("mode", exact=True).click()         # contestants are the two modes
    table = page.locator("#lb-table")
    deadline = time.monotonic() + 60
    while "few_shot_cot" not in table.inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert "few_shot_cot" in table.inner_text() and "zero_shot" in table.inner_text()
    page.locator("#lb-downloads").get_by_text("Downloads").first.click()
    page.locator("#lb-prepare-data").click()
    expect(page.locator("#lb-download-dpo")).to_be_enabled(timeout=60_000)
    with page.expect_download(timeout=60_000) as download:
        page.locator("#lb-download-dpo").click()
    path = tmp_path / "dpo.jsonl"
    download.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 1 and set(rows[0]) == {"prompt", "chosen", "rejected"}
    assert rows[0]["prompt"] == "Lena has 9 stickers and gives away 4. How many are left?"
    page.screenshot(path=str(screenshot_dir / "journey-2-leaderboard.png"), full_page=True)

    page.get_by_role("tab", name="Lab").click()
    limit = page.locator("#lab-limit input").first
    limit.fill("2")
    limit.press("Enter")
    page.locator("#lab-run").click()
    page.locator("#lab-status").get_by_text("Done.").wait_for(timeout=300_000)
    page.locator("#lab-plot-accuracy .js-plotly-plot").first.wait_for(timeout=30_000)   # the plotly figure
    assert "smollm2-135m-instruct" in page.locator("#lab-summary").inner_text()
    page.screenshot(path=str(screenshot_dir / "journey-3-lab.png"), full_page=True)
