"""The page stays light: 20 six-pane runs in one browser session, the bundled model.

Late in a long session a six-pane run once froze the page for 15-36 s with the renderer at about
1 GB. Here one page sends 20 questions to six zero-shot panes (answers cut at a few tokens so the
test takes minutes) and checks, for every run:
- the page answers a click within 1 s while the panes stream: a tab switch (Playground -> Chat
  -> Playground, handled in the page without the server) is timed in the page itself, from the
  click event's timestamp to the first animation frame where the other tab's content is visible
  (what a person waits for; Playwright's own round trips are left out);
- the renderer's JS heap after a forced GC (CDP HeapProfiler.collectGarbage, then
  Performance.getMetrics' JSHeapUsedSize) does not grow without bound: the mean of the last 5
  runs stays within HEAP_GROWTH_BOUND x the mean of the first 5.
"""
from __future__ import annotations

import os
import re
import time

import pytest

pytestmark = pytest.mark.browser

RUNS = int(os.environ.get("PAGE_WEIGHT_RUNS", "20"))  # fewer only to diagnose by hand
CLICK_BOUND_MS = 1_000
# Measured on the 2-core dev machine (shared, load 6-13, Dec 2), 20 runs: heap after GC 23.0, 23.1, 23.3,
# 23.4, 23.8 MB (runs 1-5, mean 23.3) rising to a plateau of 23.8 MB (runs 14-20): 1.02x; clicks
# answered in 10-57 ms (median 16 ms); 420 s in all at that load (3-4 s a run when it eased).
# A leak of one run's DOM or stream per run would add megabytes over 15 runs and keep rising;
# 1.25x leaves room for Gradio's caches to warm up.
HEAP_GROWTH_BOUND = 1.25
WAIT_MS = 300_000

PROBE = """([selector]) => new Promise(resolve => {
  document.addEventListener('click', event => {
    const start = event.timeStamp;
    const check = () => {
      const el = document.querySelector(selector);
      if (el && el.offsetParent !== null && el.getBoundingClientRect().height > 0) {
        resolve(performance.now() - start);
      } else {
        requestAnimationFrame(check);
      }
    };
    requestAnimationFrame(check);
  }, {capture: true, once: true});
  window.__probeArmed = true;
})"""


@pytest.fixture(scope="module")
def weight_app(tmp_path_factory, bundled_gguf):
    from tests.test_load import start_app, tiny_presets

    root = tmp_path_factory.mktemp("weight-app")
    app = start_app(root / "weight.db", tiny_presets(root, max_new_tokens=6))
    yield app
    app.close()


def click_to_visible_ms(page, tab: str, selector: str) -> float:
    """Click a tab; milliseconds from the click event to the frame showing `selector`."""
    page.evaluate("() => { window.__probeArmed = false; }")
    handle = page.evaluate_handle(f"(() => {{ window.__probe = ({PROBE})([{selector!r}]); return true; }})()")
    handle.dispose()
    page.wait_for_function("() => window.__probeArmed === true")
    page.get_by_role("tab", name=tab).click()
    return float(page.evaluate("() => window.__probe"))


def heap_after_gc(cdp) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return metrics["JSHeapUsedSize"]


def test_twenty_six_pane_runs_keep_the_page_light(browser, weight_app, screenshot_dir):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    try:
        page.goto(weight_app.url)
        page.get_by_role("tab", name="Playground").click()
        page.locator("#grid-input textarea").wait_for(timeout=60_000)
        page.locator("#grid-n-panes").get_by_text("6 panes", exact=True).click()
        page.locator("#pane-6").wait_for(state="visible", timeout=10_000)
        for pane in (2, 4, 6):   # few-shot CoT by default: long prompts; zero-shot keeps each run to seconds
            page.locator(f"#pane-{pane}-settings").locator("button").first.click()
            page.locator(f"#pane-{pane}-mode input").click()
            page.get_by_role("option", name="Zero-shot", exact=True).click()
            page.locator(f"#pane-{pane}-settings").locator("button").first.click()
        clicks: list[float] = []
        heaps: list[float] = []
        for run in range(1, RUNS + 1):
            began = time.monotonic()
            page.locator("#grid-input textarea").fill(f"What is {run} + {run}?")
            page.locator("#grid-send").click()
            # while the panes stream: a click must still be answered at once. The run may be over before
            # a "k/6" status reaches the page (updates are sent at a readable rate, not per token), so
            # its end counts as well (waiting for "k/6" alone hung once a fast run skipped it).
            streaming = re.compile(rf"\d/6 panes finished|All panes finished \(question {run} ")
            page.locator("#grid-status").get_by_text(streaming).wait_for(timeout=WAIT_MS)
            clicks.append(click_to_visible_ms(page, "Chat", "#chat-input textarea"))
            clicks.append(click_to_visible_ms(page, "Playground", "#grid-input textarea"))
            try:
                page.locator("#grid-status").get_by_text(f"All panes finished (question {run} ").wait_for(
                    timeout=WAIT_MS)
            except Exception:
                page.screenshot(path=str(screenshot_dir / f"page-weight-stuck-run-{run}.png"), full_page=True)
                raise
            heaps.append(heap_after_gc(cdp))
            print(f"run {run}: {time.monotonic() - began:.1f} s, clicks {clicks[-2]:.0f} / {clicks[-1]:.0f} ms, "
                  f"heap {heaps[-1] / 1e6:.1f} MB", flush=True)
        page.screenshot(path=str(screenshot_dir / "page-weight-last-run-1440x900.png"))
    finally:
        context.close()
    first, last = sum(heaps[:5]) / 5, sum(heaps[-5:]) / 5
    print(f"click to visible: max {max(clicks):.0f} ms, median {sorted(clicks)[len(clicks) // 2]:.0f} ms; "
          f"JS heap after GC: first 5 runs {first / 1e6:.1f} MB, last 5 {last / 1e6:.1f} MB "
          f"({last / first:.2f}x); per run MB {[round(h / 1e6, 1) for h in heaps]}")
    assert max(clicks) <= CLICK_BOUND_MS, clicks
    assert last <= HEAP_GROWTH_BOUND * first, [round(h / 1e6, 2) for h in heaps]
