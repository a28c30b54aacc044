"""The Train tab in headless Chromium: the form (objective, agreement filter), a clear error for a missing
name, the Battle button hidden until a run has finished.

Training itself is exercised through the handler in tests/test_training.py (minutes on a CPU);
here the real app renders the tab and answers the Train button.
"""
from __future__ import annotations

import re

import pytest

from tests.browser_support import AppProcess, open_arena_settings

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_train_tab_form_and_missing_name(page, bundled_gguf, screenshot_dir, tmp_path):
    app = AppProcess(tmp_path / "playground.db", extra=["--models-dir", str(tmp_path / "models")])
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Train").click()
        base = page.get_by_role("combobox", name="Base model (GGUF or HF folder)")
        expect(base).to_have_value(re.compile("SmolLM2"), timeout=30_000)
        for width, height in ((1440, 900), (390, 844)):     # the picked model's whole name is readable
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(300)
            sizes = base.evaluate("el => [el.scrollWidth, el.clientWidth]")
            assert sizes[0] <= sizes[1], (width, sizes, base.input_value())
        page.set_viewport_size({"width": 1400, "height": 1000})
        expect(page.locator("#train-method")).to_contain_text("LoRA")
        expect(page.locator("#train-objective")).to_contain_text("KTO (unpaired rows)")
        expect(page.locator("#train-battle")).to_be_hidden()            # shown only after a finished run
        page.get_by_text("Which votes").click()
        expect(page.get_by_label("Only pairs two or more annotators judged alike")).not_to_be_checked()
        page.locator("#train-start").click()
        expect(page.locator("#train-status")).to_contain_text("give the tuned model a name", timeout=30_000)
        page.get_by_text("Hyperparameters").click()
        page.screenshot(path=str(screenshot_dir / "train_tab.png"), full_page=True)
    finally:
        app.close()


def test_arena_tab_says_a_saved_pool_replaces_the_model_choice(page, bundled_gguf, screenshot_dir, tmp_path):
    """`arena pool --models` before the app starts: the Arena tab names the saved pair and how to clear it."""
    from playground.cli import main

    db, models = tmp_path / "playground.db", tmp_path / "models"
    pair = "smollm2-135m-instruct,smollm2-135m-instruct-f16"
    assert main(["arena", "pool", "--db", str(db), "--models-dir", str(models), "--models", pair]) == 0
    app = AppProcess(db, extra=["--models-dir", str(models)])
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Arena").click()
        open_arena_settings(page)
        pool = page.locator("#arena-pool")
        expect(pool).to_contain_text("Saved pool: smollm2-135m-instruct vs smollm2-135m-instruct-f16",
                                     timeout=30_000)
        expect(pool).to_contain_text("python app.py arena pool --clear")
        pool.screenshot(path=str(screenshot_dir / "arena_saved_pool.png"))
    finally:
        app.close()
