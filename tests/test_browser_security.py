"""Model output is untrusted HTML: in a real browser, markup in messages must stay inert.

The bundled model cannot be made to emit attacks on demand, so the same rendering path is driven
with controlled text: typed as a chat message and as a grid question (the Chatbot renders user
and assistant turns through one sanitiser), and as a stored *assistant* answer shown through the
grid's own Chatbot and `pane_view` (no tab shows stored conversations yet). Each attack would set
`window.__xss` if it ever ran.
"""
from __future__ import annotations

import pytest

from tests.browser_support import free_port, wait_http

pytestmark = pytest.mark.browser

ATTACKS = (
    '<script>window.__xss = "script"</script>',
    '<img src=x onerror="window.__xss = \'img\'">',
    '[click me](javascript:window.__xss="md-link")',
    '<a href="javascript:window.__xss=\'a-tag\'">tag link</a>',
    '<a href=" JaVaScRiPt:window.__xss=\'mixed-case\'">mixed link</a>',
    '<svg onload="window.__xss=\'svg\'"><circle r="4"/></svg>',
    '<iframe src="javascript:window.__xss=\'iframe\'"></iframe>',
    '<details open ontoggle="window.__xss=\'toggle\'"><summary>s</summary>x</details>',
)
ONE_LINE = " ".join(ATTACKS)                      # typed into single-line boxes
# reasoning + final sentence: answer_messages splits this into two assistant bubbles
ANSWER = "\n\n".join(ATTACKS) + '\n\nSo the answer is 5 <img src=y onerror="window.__xss=\'final\'">.'
VISIBLE = "click me"                              # text that shows once the markup is rendered
WAIT_MS = 180_000

INSPECT_JS = """(selectors) => {
    const roots = selectors.flatMap(s => [...document.querySelectorAll(s)]);
    const inside = sel => roots.flatMap(r => [...r.querySelectorAll(sel)]);
    const isJs = v => (v || "").replace(/[\\s\\u0000-\\u001f]/g, "").toLowerCase().startsWith("javascript:");
    return {
        roots: roots.length,
        scripts: inside("script").map(e => e.outerHTML.slice(0, 200)),
        handlers: inside("*").filter(e => [...e.attributes].some(a => a.name.toLowerCase().startsWith("on")))
                             .map(e => e.outerHTML.slice(0, 200)),
        jsUrls: inside("[href], [src], [action], [formaction]")
                 .flatMap(e => ["href", "src", "action", "formaction"].map(a => e.getAttribute(a)))
                 .filter(isJs),
        frames: inside("iframe, object, embed").map(e => e.outerHTML.slice(0, 200)),
        xss: window.__xss === undefined ? null : String(window.__xss),
    };
}"""


def assert_inert(page, selectors: list[str]) -> None:
    """Nothing executable inside the chat DOM, and no attack ran, before and after clicking links."""
    page.wait_for_timeout(1_000)     # let failed images fire their (stripped) onerror, if any
    found = page.evaluate(INSPECT_JS, selectors)
    assert found["roots"] >= len(selectors), found
    assert found["scripts"] == [] and found["handlers"] == [] and found["jsUrls"] == [], found
    assert found["frames"] == [] and found["xss"] is None, found
    for root in selectors:
        links = page.locator(f"{root} a")
        for i in range(links.count()):
            link = links.nth(i)
            if link.is_visible():
                link.click(timeout=10_000, no_wait_after=True)
    page.wait_for_timeout(500)
    for pg in page.context.pages:    # a link may have opened a tab: nothing may run there either
        assert pg.evaluate("() => window.__xss === undefined ? null : String(window.__xss)") is None, pg.url


def open_live(page, live_app) -> None:
    page.goto(live_app.url)
    page.locator("#chat-input textarea").wait_for(timeout=60_000)


def test_chat_message_with_markup_is_inert(page, live_app, screenshot_dir):
    """A message full of markup is shown as text, and the chat keeps working."""
    open_live(page, live_app)
    box = page.locator("#chat-input textarea")
    box.fill(ONE_LINE)
    box.press("Enter")
    page.locator("#chat-bot").get_by_text(VISIBLE).first.wait_for(timeout=WAIT_MS)
    page.locator("#chat-stop").click()   # the answer's length does not matter here: stop early
    page.locator("#chat-metrics").get_by_text("finish:").wait_for(timeout=WAIT_MS)
    assert_inert(page, ["#chat-bot"])
    page.screenshot(path=str(screenshot_dir / "xss-chat.png"), full_page=True)


def test_grid_question_with_markup_is_inert(page, live_app, screenshot_dir):
    """The grid shows the question in every pane's chat: each copy must be inert."""
    open_live(page, live_app)
    page.get_by_role("tab", name="Playground").click()
    box = page.locator("#grid-input textarea")
    box.fill(ONE_LINE)
    page.locator("#grid-send").click()
    for i in (1, 2):
        page.locator(f"#pane-{i}-chat").get_by_text(VISIBLE).first.wait_for(timeout=WAIT_MS)
    page.locator("#grid-stop").click()
    page.locator("#grid-status").get_by_text("All panes finished").wait_for(timeout=WAIT_MS)
    assert_inert(page, ["#pane-1-chat", "#pane-2-chat", "#pane-1-answer", "#pane-2-answer"])
    page.screenshot(path=str(screenshot_dir / "xss-grid.png"), full_page=True)


@pytest.fixture(scope="module")
def stored_answer_app(app_ctx):
    """The real grid tab (its own Chatbot settings) in-process, pane 1 showing `pane_view` of a
    stored conversation whose answers are attacks, filled in on page load."""
    import gradio as gr

    from playground.engine import PaneResult
    from playground.prompting.extract import Extracted
    from playground.ui import grid

    history = [{"role": "user", "content": ONE_LINE}, {"role": "assistant", "content": ANSWER}]
    result = PaneResult(output=ANSWER, extracted=Extracted(value=ATTACKS[1], kind="text", span=(0, 1)),
                        notices=[ATTACKS[0]], finish_reason="stop", done=True)
    view = grid.pane_view(history, ONE_LINE, result)
    assert [m["role"] for m in view.messages] == ["user", "assistant", "user", "assistant", "assistant"]
    with gr.Blocks() as demo:
        grid.build(app_ctx)
        by_id = {b.elem_id: b for b in demo.blocks.values() if getattr(b, "elem_id", None)}
        targets = [by_id["pane-1-chat"], by_id["pane-1-answer"], by_id["pane-1-notices"]]
        demo.load(lambda: [view.messages, view.answer, view.notices], None, targets)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url)
        yield url
    finally:
        demo.close()


def test_stored_assistant_answer_with_markup_is_inert(page, stored_answer_app, screenshot_dir):
    """Assistant turns (reasoning bubble, final-answer bubble), the highlighted answer and the
    notices all render attacks as inert text."""
    from playwright.sync_api import expect

    page.goto(stored_answer_app)
    chat = page.locator("#pane-1-chat")
    chat.get_by_text(VISIBLE).first.wait_for(timeout=60_000)
    # the attack is in 4 messages: earlier user and assistant turns, the question, the reasoning bubble
    rendered = chat.get_by_text("tag link")
    if rendered.count() < 4:
        chat.get_by_text("Reasoning").first.click()   # a collapsed reasoning bubble: open it
    expect(rendered).to_have_count(4, timeout=30_000)
    page.locator("#pane-1-answer").get_by_text("Extracted answer").wait_for(timeout=30_000)
    assert chat.get_by_text("So the answer is 5").count() >= 1
    assert_inert(page, ["#pane-1-chat", "#pane-1-answer", "#pane-1-notices"])
    page.screenshot(path=str(screenshot_dir / "xss.png"), full_page=True)
