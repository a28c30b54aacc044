"""Blind means blind: before the vote the two Arena sides differ only in their answers.

For every prompting mode, one round between two different models (the bundled GGUF and the same
weights under another catalog id, `twin-model`, from a models folder): everything each side
shows (visible text and every attribute of every element) is collected before the vote and
must contain no identifying string, and the two sides' element trees must be identical once
the answers themselves are set aside. Then the vote, and the figures appear with the reveal.
Also: a fresh install's first Leaderboard visit after one Arena vote shows a non-empty table.
Screenshots of both tabs at 1440x900.
"""
from __future__ import annotations

import json
import re

import pytest

from playground.prompting.plan import MODE_TITLES, MODES
from tests.browser_support import open_arena_settings, send_in_arena, twin_model_server

pytestmark = pytest.mark.browser

SMOL = "smollm2-135m-instruct"
DEFAULT = "smollm2-135m-instruct-f16"   # the default model (the F16 copy): the fresh install's Arena pool
TWIN = "twin-model"
SIZE = (1440, 900)
# What could name a contestant: ids, display names, size, quantisation, modes, presets, notices, figures.
IDENTIFYING = [SMOL, TWIN, "twin-model.gguf", "SmolLM2", "135M", "134515008", "Q4_1", "bundled", "(local)",
               *MODES, *MODE_TITLES.values(), "chain-of-thought", "Therefore, the answer is", "temperature set to",
               "self-consistency", "general-", "tok/s", "first token", "finish:", " tok", "Exact prompt"]

COLLECT = """(el) => {
  const walk = (node) => {
    const attrs = {};
    for (const a of node.attributes) attrs[a.name] = a.value;
    const own = [...node.childNodes].filter(n => n.nodeType === 3).map(n => n.textContent.trim()).join(' ');
    return {tag: node.tagName, attrs, text: own, children: [...node.children].map(walk)};
  };
  return {visible: el.innerText, tree: walk(el)};
}"""


@pytest.fixture(scope="module")
def twin_app(tmp_path_factory, bundled_gguf):
    with twin_model_server(tmp_path_factory.mktemp("blind"), bundled_gguf, TWIN) as app:
        yield app


def everything(tree: dict) -> list[str]:
    """Every attribute value and text of a collected element tree."""
    found = [tree["text"], *tree["attrs"].values()]
    for child in tree["children"]:
        found += everything(child)
    return found


def skeleton(tree: dict) -> dict:
    """The tree with the answers set aside (a bot message's content) and the side's own name neutral."""
    def neutral(value: str) -> str:
        return re.sub(r"\b(left|right)\b", "SIDE", value).replace("Model A", "Model X").replace("Model B", "Model X")
    attrs = {k: neutral(v) for k, v in tree["attrs"].items()}
    if "bot" in tree["attrs"].get("data-testid", "") or "bot" in tree["attrs"].get("class", "").split():
        return {"tag": tree["tag"], "attrs": attrs, "answer": True}
    return {"tag": tree["tag"], "attrs": attrs, "text": neutral(tree["text"]),
            "children": [skeleton(c) for c in tree["children"]]}


def add_models(page, models: list[str]) -> None:
    """Add models to the pool's multiselect (the bundled one is there already)."""
    box = page.locator("#arena-models")
    field = box.locator("input")
    for model in models:
        field.click()
        field.fill(model)
        page.locator("ul[role='listbox'] li", has_text=model).first.click()
    page.keyboard.press("Escape")


def pick_mode(page, mode: str) -> None:
    group = page.locator("#arena-modes")
    for other in MODES:
        box = group.get_by_label(MODE_TITLES[other], exact=True)
        if box.is_checked() != (other == mode):
            box.click()


def test_two_sides_differ_only_in_their_answers_for_every_mode(page, twin_app, screenshot_dir):
    page.set_viewport_size({"width": SIZE[0], "height": SIZE[1]})
    page.goto(twin_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    open_arena_settings(page)
    add_models(page, [TWIN])
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill("16")
    tokens.press("Enter")
    # Greedy, so that the answers are the same on every run: a sampled answer may itself say
    # "Therefore, the answer is" (a model's own words are not a leak, but this test cannot tell).
    page.locator("#arena-sampling input").click()
    page.locator("#arena-sampling ul[role='listbox'] li", has_text="deterministic").first.click()
    page.keyboard.press("Escape")
    assert page.locator("#arena-sampling input").input_value() == "deterministic"
    for k, mode in enumerate(MODES):
        pick_mode(page, mode)
        page.locator("#arena-pool").get_by_text("2 contestants").wait_for(timeout=10_000)
        send_in_arena(page, "Name one colour.", new_round=True)
        sides = {side: page.locator(f"#arena-{side}").evaluate(COLLECT) for side in ("left", "right")}
        for side, seen in sides.items():
            shown = "\n".join([seen["visible"], *everything(seen["tree"])])
            leaks = [s for s in IDENTIFYING if s in shown]
            assert not leaks, f"{mode}, {side} side shows {leaks} before the vote:\n{shown[:2000]}"
        left, right = (skeleton(sides[s]["tree"]) for s in ("left", "right"))
        assert left == right, f"{mode}: the sides differ beyond their answers:\n" + json.dumps(
            [left, right], indent=1)[:4000]
        assert "Who was who" not in page.locator("#arena-reveal").inner_text()
        if k == 0:
            page.screenshot(path=str(screenshot_dir / "arena-before-vote-1440x900.png"))
        page.locator("#arena-vote-tie").click()
        page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)
        reveal = page.locator("#arena-reveal").inner_text()
        assert SMOL in reveal and TWIN in reveal and mode in reveal
        for side in ("left", "right"):  # the figures held back arrive with the reveal
            page.locator(f"#arena-{side}-metrics").get_by_text("prompt").wait_for(timeout=10_000)
        if k == 0:
            page.screenshot(path=str(screenshot_dir / "arena-after-vote-1440x900.png"))


def test_fresh_install_first_leaderboard_visit_after_one_arena_vote(page, fresh_app, screenshot_dir):
    """Default install: one bundled model, the Arena's default pool (two modes). One vote, then the
    Leaderboard tab: a non-empty table grouped by model + mode, and it says so."""
    page.set_viewport_size({"width": SIZE[0], "height": SIZE[1]})
    page.goto(fresh_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    open_arena_settings(page)
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill("16")
    tokens.press("Enter")
    page.locator("#arena-input textarea").fill("What is the capital of France?")
    page.locator("#arena-send").click()
    page.locator("#arena-status").get_by_text("Both answers are complete").wait_for(timeout=240_000)
    left = page.locator("#arena-vote-left")
    (left if left.is_enabled() else page.locator("#arena-vote-tie")).click()   # identical answers: a tie only
    page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)

    page.get_by_role("tab", name="Leaderboard").click()
    table = page.locator("#lb-table")
    table.get_by_text(f"{DEFAULT} + zero_shot").wait_for(timeout=60_000)
    text = table.inner_text()
    assert f"{DEFAULT} + instruction" in text and f"{DEFAULT} + zero_shot" in text
    message = page.locator("#lb-message").inner_text()
    assert "Grouped by model + mode" in message and "Ranked 2 contestants from 1 battle " in message
    assert "error" not in message.lower()
    page.locator("#lb-plot-ratings .js-plotly-plot").wait_for(timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "leaderboard-1440x900.png"))
    page.screenshot(path=str(screenshot_dir / "leaderboard-full-1440.png"), full_page=True)


# In the page: when each side first shows a visible character of its answer (performance.now()), and
# every state of the status line, the vote buttons and the two answers that the page went through.
WATCH = """() => {
  const text = (side) => [...document.querySelectorAll(`#arena-${side}-chat [data-testid="bot"]`)]
      .map(e => e.innerText.trim()).join('');
  const seen = {first: {}, steps: []};
  let last = '', timer = null;
  const step = () => {     // the page once an update has settled (components render it a tick apart)
    const now = {status: document.querySelector('#arena-status').innerText.trim(),
                 disabled: [...document.querySelectorAll('[id^="arena-vote-"]')].map(b => b.disabled),
                 left: text('left').length, right: text('right').length};
    const key = JSON.stringify(now);
    if (key !== last) { last = key; seen.steps.push({...now, t: performance.now()}); }
  };
  const look = () => {
    const now = performance.now();
    for (const side of ['left', 'right'])
      if (seen.first[side] === undefined && text(side)) seen.first[side] = now;
    clearTimeout(timer);
    timer = setTimeout(step, 40);
  };
  new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true,
                                                     attributes: true});
  window.__arenaSeen = seen;
}"""


def pick_modes(page, modes: set[str]) -> None:
    group = page.locator("#arena-modes")
    for mode in MODES:
        box = group.get_by_label(MODE_TITLES[mode], exact=True)
        if box.is_checked() != (mode in modes):
            box.click()


def test_a_long_prompt_and_a_short_one_begin_together_and_the_buttons_follow_the_status(page, twin_app,
                                                                                        screenshot_dir):
    """Few-shot (an ~860-token prompt) against zero-shot on one model: the short prompt's first token
    comes seconds before the long one's, yet both sides show their first characters within 0.3 s of
    each other (measured in the page). At every state the page settles in (one update reaches the
    components a millisecond apart), the vote buttons are on exactly when the status says both
    answers are complete, and the status never counts answers."""
    page.set_viewport_size({"width": SIZE[0], "height": SIZE[1]})
    page.goto(twin_app.url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    open_arena_settings(page)
    pick_modes(page, {"few_shot", "zero_shot"})
    page.locator("#arena-pool").get_by_text("2 contestants").wait_for(timeout=10_000)
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill("48")
    tokens.press("Enter")
    page.locator("#arena-settings .label-wrap").first.click()       # fold the settings: the battle in view
    page.locator("#arena-new-round").click()
    page.locator("#arena-status").get_by_text("two new anonymous contestants").wait_for(timeout=30_000)
    page.evaluate(WATCH)
    page.locator("#arena-input textarea").fill("What is the capital of France?")
    page.locator("#arena-send").click()
    page.wait_for_function("() => Object.keys(window.__arenaSeen.first).length === 2", timeout=240_000)
    page.screenshot(path=str(screenshot_dir / "arena-streaming-1440x900.png"))
    page.locator("#arena-status").get_by_text("Both answers are complete").wait_for(timeout=240_000)
    page.screenshot(path=str(screenshot_dir / "arena-answered-1440x900.png"))
    seen = page.evaluate("() => window.__arenaSeen")

    first = seen["first"]
    assert abs(first["left"] - first["right"]) <= 300, first
    for step in seen["steps"]:
        complete = "Both answers are complete" in step["status"]
        assert step["disabled"] == [not complete] * 4, step
        assert not re.search(r"\d\s*/\s*2", step["status"]), step          # no "1/2 answers complete"
        assert (step["left"] > 0) == (step["right"] > 0), step              # neither side shows text alone
        if complete:
            assert step["left"] and step["right"], step
    assert any("answering" in s["status"] for s in seen["steps"])

    page.locator("#arena-vote-tie").click()
    page.locator("#arena-reveal").get_by_text("Who was who").wait_for(timeout=30_000)
    reveal = page.locator("#arena-reveal").inner_text()
    assert "few_shot" in reveal and "zero_shot" in reveal
    page.screenshot(path=str(screenshot_dir / "arena-revealed-1440x900.png"))
