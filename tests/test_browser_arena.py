"""The Arena tab in headless Chromium: a blind round streams, voting opens, the vote reveals who was who.

It starts its own app on a fresh database: the shared `live_app` is also voted on by other
browser tests, some of which count every vote in it.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from playground.verdicts import WINNER_LABELS
from storage.pairs import SAME_ANSWER_NOTICE
from tests.browser_support import AppProcess, expect_verdicts, open_arena_settings

pytestmark = pytest.mark.browser

VOTES = ("left", "right", "tie", "both_bad")
SECRETS = ("smollm2", "zero_shot", "instruction", "Zero-shot")   # none may show before the vote


@pytest.fixture(scope="module")
def arena_app(tmp_path_factory, bundled_gguf):
    app = AppProcess(tmp_path_factory.mktemp("arena-live") / "playground.db")
    yield app
    app.close()


def battle_text(page) -> str:
    """What the battle area shows (not the pool picker, which lists the contestants by design)."""
    ids = ["arena-left-chat", "arena-right-chat", "arena-left-metrics", "arena-right-metrics",
           "arena-left-notices", "arena-right-notices", "arena-status", "arena-reveal"]
    return "\n".join(page.locator(f"#{i}").inner_text() for i in ids)


def vote_enabled(page, winner: str) -> bool:
    return page.locator(f"#arena-vote-{winner}").is_enabled()


def test_arena_blind_round_vote_and_reveal(page, arena_app, screenshot_dir):
    page.goto(arena_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    assert not page.locator("#arena-pool").is_visible()      # the pool names the contestants: folded away
    open_arena_settings(page)
    page.locator("#arena-pool").get_by_text("2 contestants").wait_for(timeout=10_000)
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill("24")
    tokens.press("Enter")
    assert not any(vote_enabled(page, w) for w in VOTES)

    box = page.locator("#arena-input textarea")
    box.fill("What is the capital of France?")
    page.locator("#arena-send").click()
    page.locator("#arena-status").get_by_text("Both answers are complete").wait_for(timeout=180_000)
    for side in ("left", "right"):
        assert "What is the capital of France?" in page.locator(f"#arena-{side}-chat").inner_text()
        assert page.locator(f"#arena-{side}-metrics").inner_text().strip() == ""   # figures wait for the vote
    assert page.locator("#arena-left-chat").get_by_text("Model A").count() >= 1
    assert page.locator("#arena-right-chat").get_by_text("Model B").count() >= 1
    for side in ("left", "right"):     # no trash icon that blanks a side the vote is about
        trash = page.locator(f"#arena-{side}-chat button[aria-label='Clear']")
        assert trash.count() == 1 and trash.is_hidden()       # Gradio draws it; the page's CSS hides it
    shown = battle_text(page)
    assert not [s for s in SECRETS if s in shown], shown
    # Two modes of one model can sample the same text: then only Tie and Both are bad are offered.
    same = SAME_ANSWER_NOTICE in page.locator("#arena-status").inner_text()
    verdict = "tie" if same else "left"
    expect_verdicts(page, same)

    page.locator("#arena-note").locator("textarea").fill("A was shorter")
    page.locator(f"#arena-vote-{verdict}").dblclick()      # a double click must store one vote
    reveal = page.locator("#arena-reveal")
    reveal.get_by_text("Who was who").wait_for(timeout=30_000)
    status = page.locator("#arena-status").inner_text()
    assert f"Vote saved: {WINNER_LABELS[verdict]}" in status or "not counted twice" in status, status
    text = reveal.inner_text()
    default = "smollm2-135m-instruct-f16"          # the pool starts with the default model
    assert f"Model A was {default}" in text and f"Model B was {default}" in text
    assert f"{default} + zero_shot" in text and f"{default} + instruction" in text
    assert not any(vote_enabled(page, w) for w in VOTES)
    for side in ("left", "right"):
        page.locator(f"#arena-{side}-metrics").get_by_text("finish:").wait_for(timeout=10_000)
    page.screenshot(path=str(screenshot_dir / "arena.png"), full_page=True)

    reveal.get_by_text("Exact prompt Model A sent").click()
    reveal.get_by_text("<|im_start|>assistant").first.wait_for(timeout=10_000)
    with closing(sqlite3.connect(arena_app.db)) as db:
        votes = db.execute("SELECT v.winner, v.note, b.anonymous, b.source, b.session_id = v.session_id "
                           "FROM votes v JOIN battles b ON b.id = v.battle_id").fetchall()
    assert votes == [(verdict, "A was shorter", 1, "arena", 1)]

    page.locator("#arena-new-round").click()
    page.locator("#arena-status").get_by_text("two new anonymous contestants").wait_for(timeout=30_000)
    assert page.locator("#arena-reveal").inner_text().strip() == ""
    assert "capital of France" not in page.locator("#arena-left-chat").inner_text()
