"""GPU honesty in the real UI: the device menu, the notice, the "ran on" figure, the Models tab's fit column."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_gpu_choice_on_cpu_build_shows_notice_and_where_it_ran(page, live_app, screenshot_dir):
    import llama_cpp

    from playground.devices import llama_cpp_fix_command

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("GPU offload available here: the CPU fallback cannot be shown")
    page.goto(live_app.url)
    page.locator("#chat-input textarea").wait_for(timeout=60_000)
    page.locator("#chat-device input").click()
    option = page.get_by_role("option", name="gpu (CPU-only llama.cpp build: runs on CPU)")
    option.click()
    box = page.locator("#chat-input textarea")
    box.fill("Say hi.")
    box.press("Enter")
    # the figure and the notice come with the first token: no need to wait for the whole answer
    page.locator("#chat-metrics").get_by_text("ran on cpu (0/31 layers on GPU)").wait_for(timeout=180_000)
    notices = page.locator("#chat-notices").inner_text()
    assert "GPU requested" in notices and "running on CPU" in notices
    assert 'CMAKE_ARGS="-DGGML' in notices and llama_cpp_fix_command().split('" ', 1)[1] in notices
    page.screenshot(path=str(screenshot_dir / "gpu-notice.png"), full_page=True)
    page.locator("#chat-stop").click()
    page.locator("#chat-metrics").get_by_text("finish:").wait_for(timeout=60_000)


def test_models_tab_shows_the_fit_column(page, live_app, screenshot_dir):
    page.goto(live_app.url)
    page.locator("#chat-input textarea").wait_for(timeout=60_000)
    page.get_by_role("tab", name="Models").click()
    table = page.locator("#models-table")
    table.get_by_text("memory · fits").first.wait_for(state="attached", timeout=30_000)
    cell = table.get_by_text("GB · CPU ✓ ·").first
    cell.wait_for(state="attached", timeout=30_000)
    page.evaluate("""() => {            // the table is wider than the page: show its last columns
        for (const el of document.querySelectorAll('#models-table *'))
            if (el.scrollWidth > el.clientWidth + 5) el.scrollLeft = el.scrollWidth;
    }""")
    text = table.inner_text()
    assert "smollm2-135m-instruct" in text and "GB · CPU ✓" in text
    page.screenshot(path=str(screenshot_dir / "models-fit.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})      # a phone: the table scrolls, its words stay whole
    page.wait_for_timeout(300)
    first_id = table.get_by_text("smollm2-135m-instruct-f16").first.bounding_box()
    assert first_id["width"] >= 100, first_id                   # was one letter per line (column shares of 370 px)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390   # the table scrolls, not the page
    page.screenshot(path=str(screenshot_dir / "models-phone.png"), full_page=True)
