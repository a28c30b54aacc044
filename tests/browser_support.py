"""Real-browser testing: Debian's Chromium driven by Playwright, against the real app process.

No browser is downloaded: Playwright is pointed at /usr/bin/chromium, which this module installs
with apt-get when it is missing and we are root (the CI path). Elsewhere tests skip, saying why.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def ensure_chromium() -> tuple[str | None, str]:
    """Path to Chromium, installing Debian's package if we can; or (None, why not)."""
    path = find_chromium()
    if path:
        return path, ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None, "Chromium is not installed and cannot be installed here (need root and apt-get)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return None, f"installing Chromium failed: {' '.join(cmd)}: {done.stderr[-500:]}"
    path = find_chromium()
    return (path, "") if path else (None, "apt-get installed chromium but no binary was found")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the app exited with code {proc.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")


class AppProcess:
    """`python app.py` on a free port with its own database; stopped on close."""

    def __init__(self, db: Path, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = db
        self.log = Path(tempfile.mkstemp(prefix="app-", suffix=".log")[1])
        cmd = [sys.executable, "app.py", "--port", str(self.port), "--db", str(db), *(extra or [])]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})})
        try:
            wait_http(self.url, proc=self.proc)
        except Exception:
            self.close()
            raise RuntimeError(f"app did not start; its log:\n{self.log.read_text()[-3000:]}") from None

    def __enter__(self) -> "AppProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_users(folder: Path, users: dict[str, tuple[str, str]]) -> Path:
    """A users file in `folder` with each name's (role, password)."""
    from playground.auth.users import write_user

    path = folder / "users.txt"
    for name, (role, password) in users.items():
        write_user(path, name, role, password)
    return path


def team_server(folder: Path, users: dict[str, tuple[str, str]], env: dict[str, str] | None = None) -> AppProcess:
    """`python app.py --auth users.txt` on a database in `folder`: a team server with these users."""
    return AppProcess(folder / "playground.db", extra=["--auth", str(write_users(folder, users))], env=env)


def twin_model_server(folder: Path, bundled_gguf: Path, twin: str) -> AppProcess:
    """The app with a second catalog model, `twin`: the bundled file again under another name (so a
    battle has two models and their answers can be identical)."""
    models = folder / "twin-models"
    models.mkdir()
    os.symlink(bundled_gguf, models / f"{twin}.gguf")
    return AppProcess(folder / "playground.db", extra=["--models-dir", str(models)])


def sign_in(context, app: AppProcess, user: str, password: str):
    """A new page of `context` signed in to `app` through Gradio's login form."""
    page = context.new_page()
    page.goto(app.url)
    page.get_by_label("username").fill(user)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.locator("#whoami").get_by_text(f"Signed in as {user}").wait_for(timeout=60_000)
    return page


def add_votes(db_path: Path, voters: Iterable[str]) -> None:
    """One battle and one vote by each of `voters` ("question only <name> asked"), written with the
    session ids the app gives signed-in users, so each vote is that person's."""
    from contextlib import closing

    import storage

    with closing(storage.open_database(db_path)) as db:
        for who in voters:
            conversation = [{"role": "user", "content": f"question only {who} asked"}]
            ids = [storage.insert_generation(db, storage.GenerationRecord(
                model_id=m, conversation=conversation, output=f"{who}'s {m} answer", session_id=f"user:{who}/s"))
                for m in ("model-a", "model-b")]
            battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True,
                                           session_id=f"user:{who}/s")
            storage.record_vote(db, battle_id=battle, winner="left", session_id=f"user:{who}/s")


def pick_pane(page, elem_id: str, pane: int) -> None:
    """Pick pane `pane` in a Playground judge picker (`vote-a` / `vote-b`): its options start "N:"."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id} ul[role='listbox'] li").filter(has_text=f"{pane}:").first.click()


def open_tab(page, name: str) -> None:
    """Click a tab; on a phone Gradio folds the last tabs under "More tabs"."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if not tab.is_visible():
        page.locator("button[aria-label='More tabs']").click()
        tab = page.get_by_role("tab", name=name, exact=True).or_(
            page.get_by_role("button", name=name, exact=True)).first
    tab.click()


def open_arena_settings(page) -> None:
    """Unfold the Arena's settings (pool, sampling, token budget), folded above the battle by default."""
    if not page.locator("#arena-max-tokens").is_visible():
        page.locator("#arena-settings .label-wrap").first.click()
    page.locator("#arena-max-tokens").wait_for(state="visible", timeout=10_000)


def ask_in_arena(page, app_url: str, question: str, max_tokens: int = 16, timeout_ms: int = 240_000) -> None:
    """Open the Arena tab, set the token budget, ask `question` and wait until both answers are in."""
    page.goto(app_url)
    page.get_by_role("tab", name="Arena").click()
    page.locator("#arena-input textarea").wait_for(timeout=60_000)
    open_arena_settings(page)
    tokens = page.locator("#arena-max-tokens input[type=number]")
    tokens.fill(str(max_tokens))
    tokens.press("Enter")
    send_in_arena(page, question, timeout_ms=timeout_ms)


def send_in_arena(page, question: str, *, new_round: bool = False, timeout_ms: int = 240_000) -> None:
    """Ask `question` in the open Arena tab (after New round when `new_round`) and wait for both answers."""
    if new_round:
        page.locator("#arena-new-round").click()
        page.locator("#arena-status").get_by_text("two new anonymous contestants").wait_for(timeout=30_000)
    page.locator("#arena-input textarea").fill(question)
    page.locator("#arena-send").click()
    page.locator("#arena-status").get_by_text("Both answers are complete").wait_for(timeout=timeout_ms)


def expect_verdicts(page, same_answer: bool, timeout_ms: int = 10_000) -> None:
    """The Arena's verdict buttons: all enabled, or on two identical answers only Tie and Both are bad."""
    from playwright.sync_api import expect

    for winner in ("left", "right", "tie", "both_bad"):
        button = expect(page.locator(f"#arena-vote-{winner}"))
        offered = not same_answer or winner in ("tie", "both_bad")
        (button.to_be_enabled if offered else button.to_be_disabled)(timeout=timeout_ms)
