"""The Train tab in headless Chromium: the form, the metrics plot, a clear error for a missing name.

Training itself is exercised through the handler in tests/test_training.py (minutes on a CPU);
here the real app renders the tab and answers the Train button.
"""
from __future__ import annotations

import re

import pytest

from tests.browser_support import AppProcess

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_train_tab_form_and_missing_name(page, bundled_gguf, screenshot_dir, tmp_path):
    app = AppProcess(tmp_path / "playground.db", extra=["--models-dir", str(tmp_path / "models")])
    try:
        page.goto(app.url)
        page.get_by_role("tab", name="Train").click()
        base = page.get_by_role("combobox", name="Base model (GGUF or HF folder)")
        expect(base).to_have_value(re.compile("SmolLM2"), timeout=30_000)
        expect(page.locator("#train-method")).to_contain_text("LoRA")
        page.locator("#train-start").click()
        expect(page.locator("#train-status")).to_contain_text("give the tuned model a name", timeout=30_000)
        page.get_by_text("Hyperparameters").click()
        page.screenshot(path=str(screenshot_dir / "train_tab.png"), full_page=True)
    finally:
        app.close()
