"""My votes on a phone: the team report's table keeps its words whole at 390 px (it scrolls
sideways when it is wider than the screen), measured in real Chromium against the real app."""
from __future__ import annotations


import pytest

from tests.browser_support import AppProcess, add_votes, open_tab

# the lines each word of a cell lands on (a hyphen may end a line): a word on two was broken inside
BROKEN_WORDS = """(root) => {
  const broken = [];
  for (const cell of root.querySelectorAll('th, td')) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.textContent.matchAll(/[^\\s-]+/g)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (tops.size > 1) broken.push(m[0]);
      }
    }
  }
  return broken;
}"""


@pytest.fixture(scope="module")
def voted_app(tmp_path_factory, bundled_gguf):
    db = tmp_path_factory.mktemp("phone-votes") / "playground.db"
    add_votes(db, ("ada", "annotator-with-a-long-name"))    # the team report: a row each
    app = AppProcess(db)
    yield app
    app.close()


@pytest.mark.browser
def test_team_table_keeps_words_whole_on_a_phone(browser, voted_app, screenshot_dir):
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    try:
        page.goto(voted_app.url)
        page.locator("#chat-input textarea").wait_for(timeout=60_000)
        open_tab(page, "My votes")
        team = page.locator("#my-votes-team")
        team.get_by_text("Team quality").wait_for(timeout=60_000)
        table = team.locator("table")
        table.wait_for()
        table.scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_dir / "my-votes-team-390.png"), full_page=False)
        cells = table.locator("th, td").count()
        assert cells >= 14                                      # header + two annotators, 7 columns
        assert table.evaluate(BROKEN_WORDS) == []
        votes = page.locator("#my-votes-table")              # the votes themselves ("playground" in a cell)
        votes.get_by_text("playground").first.wait_for(state="attached")
        assert votes.evaluate(BROKEN_WORDS) == []
        # whatever does not fit scrolls inside the report; the page itself never scrolls sideways
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
