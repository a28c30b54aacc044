"""A team server under hostile and heavy use, through the real app process (`python app.py --auth`).

Each test checks one way the web side was broken from outside or inside, through real HTTP or
gradio_client against a real server and a real SQLite file: a login flood (from another loopback
address, bounded in count and time) that froze everyone's votes, guessing without a pause, the
login page describing every endpoint, tokens that never expire, uploads of any size by anyone,
one login acting in another's session, unbounded vote notes, the chat API ignoring its sampling
arguments, a lone surrogate breaking a chat for good, remote images in answers, and a lab
download folder left behind per click. The throttle and the token lifetime also get fast unit
tests with a fake clock.
"""
from __future__ import annotations

import http.client
import json
import sqlite3
import statistics
import uuid
import threading
import time
import urllib.parse
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any, Iterator

import pytest

from playground.auth.gate import SessionOwners, SessionTokens, without_api_info
from playground.auth.throttle import LoginThrottle
from playground.recording import MAX_NOTE
from tests.browser_support import AppProcess, team_server, write_users

USERS = {"ada": ("admin", "ada-password-1"), "ann": ("annotator", "ann-password-1"),
         "ben": ("annotator", "ben-password-1"), "cy": ("annotator", "cy-password-1")}
VOTE_TARGET_S = 0.100              # a signed-in vote's median answer time under a login flood
FLOOD_CONNECTIONS, FLOOD_SECONDS, FLOOD_MAX_REQUESTS = 16, 10.0, 4000
FLOOD_SOURCE = "127.0.0.2"         # loopback too: the flood's pauses do not touch the other tests' logins
ENDPOINT_NAMES = ("chat_send", "arena_vote_left", "arena_send", "lab_run", "models_rescan", "named_endpoints")


# ----------------------------------------------------------------------------- servers and clients


@pytest.fixture(scope="module")
def team_app(tmp_path_factory, bundled_gguf) -> Iterator[AppProcess]:
    folder = tmp_path_factory.mktemp("hostile")
    tmp = folder / "tmp"
    tmp.mkdir()
    with team_server(folder, USERS, env={"TMPDIR": str(tmp)}) as app:
        app.tmp = tmp
        yield app


def http_client(app: AppProcess, user: str | None = None, source: str | None = None) -> Any:
    """An httpx client of `app`, signed in as `user` (the login checked), from `source` address."""
    import httpx

    transport = httpx.HTTPTransport(local_address=source) if source else None
    client = httpx.Client(base_url=app.url, timeout=60, transport=transport)
    if user:
        answer = client.post("/login", data={"username": user, "password": USERS[user][1]})
        assert answer.status_code == 200, answer.text
    return client


def gradio_client(app: AppProcess, user: str) -> Any:
    from gradio_client import Client

    return Client(app.url, auth=(user, USERS[user][1]), verbose=False)


def endpoint_args(client: Any, api_name: str, **by_label: Any) -> list[Any]:
    """An endpoint's inputs at the UI defaults, some changed by their label."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    assert set(by_label) <= {p.get("label") for p in params}, [p.get("label") for p in params]
    return [by_label.get(p.get("label"), p.get("parameter_default")) for p in params]


@pytest.fixture(scope="module")
def ann_round(team_app) -> Iterator[Any]:
    """ann's gradio_client with a finished, not yet voted Arena round in its session."""
    client = gradio_client(team_app, "ann")
    args = endpoint_args(client, "/arena_send", **{"Max new tokens": 8})
    args[0] = "What is 2+2?"
    client.submit(*args, api_name="/arena_send").result(timeout=600)
    yield client
    client.close()


class RawEvents:
    """Fires a UI event over plain HTTP (join the queue, read the event stream), as a browser does:
    no gradio_client overhead in the timings, and the JSON is sent as written (escapes included)."""

    def __init__(self, app: AppProcess, user: str, session_hash: str) -> None:
        self.http = http_client(app, user)
        self.config = self.http.get("/config").json()
        self.components = {c["id"]: c for c in self.config["components"]}
        self.session_hash = session_hash

    def call(self, api_name: str, values: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
        """(seconds until the answer was complete, the final message); inputs at their defaults
        (states: the session's), some changed by their elem_id or label (`values`)."""
        values = values or {}
        dep = next(d for d in self.config["dependencies"] if d.get("api_name") == api_name)
        data = []
        for input_id in dep["inputs"]:
            component = self.components[input_id]
            props = component.get("props", {})
            default = None if component["type"] == "state" else props.get("value")
            data.append(values.get(props.get("elem_id") or "", values.get(props.get("label") or "", default)))
        body = json.dumps({"data": data, "fn_index": dep["id"], "session_hash": self.session_hash,
                           "event_data": None, "trigger_id": None})        # ensure_ascii: escapes kept
        started = time.perf_counter()
        joined = self.http.post("/gradio_api/queue/join", content=body, headers={"Content-Type": "application/json"})
        joined.raise_for_status()
        with self.http.stream("GET", "/gradio_api/queue/data", params={"session_hash": self.session_hash}) as s:
            for line in s.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return time.perf_counter() - started, message
        raise AssertionError(f"{api_name}: the event stream ended without an answer")

    def close(self) -> None:
        self.http.close()


def votes_by(db: Path) -> Counter:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT session_id FROM votes").fetchall()
    return Counter(s.split("/")[0].removeprefix("user:") for (s,) in rows)


# ----------------------------------------------------------------------------- signing in


def login_flood(port: int, stop: threading.Event, deadline: float, counts: Counter, lock: threading.Lock) -> None:
    """One flooding connection: wrong passwords for made-up names as fast as answers come, from
    FLOOD_SOURCE to 127.0.0.1 only, until `stop`, the deadline or FLOOD_MAX_REQUESTS in all."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(FLOOD_SOURCE, 0))
    n = 0
    while not stop.is_set() and time.monotonic() < deadline:
        with lock:
            if sum(counts.values()) >= FLOOD_MAX_REQUESTS:
                return
        n += 1
        body = urllib.parse.urlencode({"username": f"intruder-{threading.get_ident()}-{n}", "password": "guess"})
        try:
            conn.request("POST", "/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
            status = conn.getresponse()
            status.read()
            code = status.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(FLOOD_SOURCE, 0))
            code = "error"
        with lock:
            counts[code] += 1
    conn.close()


def test_wrong_passwords_pause_the_name_and_the_right_one_works_after(team_app):
    """5 misses are free; then the name is paused for 1 s, 2 s, 4 s...: held answers, then a 429
    that says how long. The right password works once the pause is over."""
    client = http_client(team_app, source="127.0.0.3")
    try:
        def attempt(password: str) -> tuple[int, float, Any]:
            started = time.monotonic()
            answer = client.post("/login", data={"username": "cy", "password": password})
            return answer.status_code, time.monotonic() - started, answer

        for _ in range(5):
            assert attempt("wrong-password")[0] == 400
        # The pause starts when the server counts a miss, before its password check and its answer: on a
        # busy machine those take a few tenths of a second of the pause, hence the 0.5 s of slack.
        status, seconds, _ = attempt("wrong-password")        # 6th: held for the 1 s pause, then judged
        assert status == 400 and seconds >= 0.5, seconds
        status, seconds, _ = attempt("wrong-password")        # 7th: held 2 s
        assert status == 400 and seconds >= 1.5, seconds
        status, seconds, answer = attempt(USERS["cy"][1])     # paused 4 s: even the right one waits
        assert status == 429, answer.text
        detail = answer.json()["detail"]
        assert "Too many wrong passwords for the name 'cy'" in detail and "paused for" in detail, detail
        retry = int(answer.headers["Retry-After"])
        assert 1 <= retry <= 4, retry
        other = http_client(team_app, "ben", source="127.0.0.3")   # the address is not paused: others sign in
        other.close()
        time.sleep(retry + 0.2)
        status, _, answer = attempt(USERS["cy"][1])
        assert status == 200, answer.text
    finally:
        client.close()


def test_signed_out_page_describes_nothing_of_the_app(team_app):
    """A signed-out visitor's page carries the login form only; signed in, the API description is back."""
    import httpx

    for path in ("/", "/gradio_api/runs"):
        page = httpx.get(team_app.url + path, timeout=60)
        assert page.status_code == 200
        assert '"auth_required":true' in page.text.replace(" ", ""), page.text[:500]
        leaked = [name for name in ENDPOINT_NAMES if name in page.text]
        assert leaked == [], (path, leaked)
        assert "window.gradio_api_info = {};" in page.text
    with closing(http_client(team_app, "ann")) as client:
        assert "arena_vote_left" in client.get("/").text


def test_expired_session_is_refused(tmp_path, bundled_gguf):
    """A sign-in lasts --session-hours; after that its cookie signs nobody in (0.002 h = 7.2 s here)."""
    app = AppProcess(tmp_path / "p.db", extra=["--auth", str(write_users(tmp_path, USERS)), "--session-hours", "0.002"])
    try:
        with closing(http_client(app, "ann")) as client:
            assert client.get("/config").status_code == 200
            time.sleep(8)
            assert client.get("/config").status_code == 401
            assert "arena_vote_left" not in client.get("/").text
        with closing(http_client(app, "ann")) as client:         # signing in again works
            assert client.get("/config").status_code == 200
    finally:
        app.close()


# ----------------------------------------------------------------------------- signed-in users


def test_file_routes_refuse_paths_outside_the_cache(team_app):
    """`file=` with the users file, the database or a system file: refused, nothing of them sent."""
    folder = Path(team_app.db).parent
    with closing(http_client(team_app, "ann")) as ann:
        for path in (folder / "users.txt", Path(team_app.db), Path("/etc/passwd")):
            for route in ("/gradio_api/file=", "/file="):
                answer = ann.get(route + urllib.parse.quote(str(path)))
                assert answer.status_code in (403, 404), (route, path, answer.status_code)
                assert b"scrypt$" not in answer.content and b"root:" not in answer.content
                assert b"SQLite format" not in answer.content



def test_uploads_are_for_admins_and_bounded(team_app):
    """The one upload control (the Lab's task file) is an admin's: annotators are refused, and an
    admin's upload is bounded to 10 MB."""
    small = {"files": ("tasks.jsonl", b'{"input": "1+1", "target": "2"}\n', "application/json")}
    with closing(http_client(team_app, "ann")) as ann:
        refused = ann.post("/gradio_api/upload", files=small)
    assert refused.status_code == 403 and "only an admin" in refused.text, refused.text
    with closing(http_client(team_app, "ada")) as ada:
        assert ada.post("/gradio_api/upload", files=small).status_code == 200
        big = ada.post("/gradio_api/upload", files={"files": ("big.jsonl", b"x" * (11 * 2**20), "text/plain")})
    assert big.status_code == 413, (big.status_code, big.text[:300])
    kept = [p for p in Path(team_app.tmp).rglob("big.jsonl")]
    assert kept == [], kept


def test_vote_note_is_capped(team_app, ann_round):
    """A note past MAX_NOTE characters is refused with the reason, and no vote is stored."""
    before = votes_by(team_app.db)
    status = ann_round.submit("x" * (MAX_NOTE + 1), "", api_name="/arena_vote_left").result(timeout=120)[0]
    assert f"keep it to {MAX_NOTE:,}" in status and "Vote not saved" in status, status
    assert votes_by(team_app.db) == before


def test_a_session_belongs_to_the_login_that_made_it(team_app, ann_round):
    """ben, holding ann's session hash, can neither vote in her round nor read her event stream;
    ann's own vote still counts, as hers."""
    from gradio_client import Client

    ben = Client(team_app.url, auth=("ben", USERS["ben"][1]), verbose=False)
    try:
        ben.session_hash = ann_round.session_hash
        with pytest.raises(Exception) as refused:
            ben.submit("", "", api_name="/arena_vote_left").result(timeout=120)
        assert "403" in str(refused.value), refused.value
    finally:
        ben.close()
    with closing(http_client(team_app, "ben")) as raw:
        stream = raw.get("/gradio_api/queue/data", params={"session_hash": ann_round.session_hash})
        beat = raw.get(f"/gradio_api/heartbeat/{ann_round.session_hash}")
    assert stream.status_code == 403 and "another sign-in" in stream.text, stream.text
    assert beat.status_code == 403
    assert votes_by(team_app.db)["ben"] == 0
    status, reveal = ann_round.submit("", "", api_name="/arena_vote_left").result(timeout=120)[:2]
    assert "Vote saved" in status or "already voted" in status, status
    assert votes_by(team_app.db)["ann"] >= 1 and votes_by(team_app.db)["ben"] == 0


def test_login_flood_leaves_signed_in_votes_fast(team_app, ann_round):
    """16 connections flooding the login: ann's votes are still answered within 100 ms median
    (old code: every guess ran a ~50 ms scrypt on the event thread, votes took ~1 s)."""
    voter = RawEvents(team_app, "ann", ann_round.session_hash)
    try:
        voter.call("arena_vote_left")                       # the first vote stores; the rest are repeats
        baseline = [voter.call("arena_vote_left")[0] for _ in range(15)]
        stop, lock, counts = threading.Event(), threading.Lock(), Counter()
        started = time.monotonic()
        threads = [threading.Thread(target=login_flood, args=(team_app.port, stop, started + FLOOD_SECONDS,
                                                              counts, lock), daemon=True)
                   for _ in range(FLOOD_CONNECTIONS)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        flooded = []
        try:
            while len(flooded) < 25 and time.monotonic() < started + FLOOD_SECONDS - 0.5:
                seconds, message = voter.call("arena_vote_left")
                assert message.get("success"), message
                flooded.append(seconds)
                time.sleep(0.1)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=40)
        elapsed = time.monotonic() - started
    finally:
        voter.close()
    base_ms, flood_ms = statistics.median(baseline) * 1000, statistics.median(flooded) * 1000
    print(f"\nvote median {base_ms:.1f} ms quiet, {flood_ms:.1f} ms (max {max(flooded) * 1000:.0f} ms) under "
          f"{FLOOD_CONNECTIONS} flooding connections; flood answers {dict(counts)} in {elapsed:.1f} s")
    assert len(flooded) >= 10, flooded
    assert counts[400] >= 1 and counts[429] >= 1, counts          # guesses were judged, then paused
    # the bound; on a machine too busy to answer a quiet vote in a third of it, three times quiet
    assert flood_ms <= max(VOTE_TARGET_S * 1000, 3 * base_ms), (base_ms, flood_ms, counts)


def chat_args(client: Any, message: str, max_tokens: int, temperature: float = 0.0) -> list[Any]:
    args = endpoint_args(client, "/chat_send", **{
        "Temperature (the preset's; moving it overrides the preset)": temperature,
        "Max new tokens (the preset's; moving it overrides the preset)": max_tokens})
    args[0] = message
    return args


def output_tokens(metrics: str) -> int:
    return int(metrics.split("output ")[1].split(" tok")[0])


def test_chat_api_honours_max_tokens(team_app):
    """/chat_send from an API caller with max_tokens=16 generates at most 16 tokens (old: the preset's 256)."""
    client = gradio_client(team_app, "ben")
    try:
        out = client.submit(*chat_args(client, "Write a long story about a dragon and a knight.", 16),
                            api_name="/chat_send").result(timeout=600)
    finally:
        client.close()
    metrics = out[1]
    assert output_tokens(metrics) <= 16 and "finish: length" in metrics, metrics


def test_lone_surrogate_leaves_the_chat_working(team_app):
    """A lone surrogate in a prompt is replaced at the boundary: the reply comes, and the session's
    next message works too (old: Gradio could not encode the reply, and the session stayed broken)."""
    events = RawEvents(team_app, "ben", uuid.uuid4().hex[:11])
    try:
        _, first = events.call("chat_send", {"chat-input": "Hello \ud800 there", "chat-max-tokens": 16})
        _, second = events.call("chat_send", {"chat-input": "What is 2+2?", "chat-max-tokens": 16})
    finally:
        events.close()
    assert first.get("success") and second.get("success"), (first, second)
    history = second["output"]["data"][0]
    turns = [m["content"] for m in history]
    assert len(turns) == 4 and "Hello \ufffd there" in str(turns[0]), turns


def test_showing_lab_runs_again_leaves_no_folder_each_time(team_app):
    """Show selected runs, 12 times: one download folder, not 12."""
    client = gradio_client(team_app, "ada")
    try:
        for _ in range(12):
            client.submit([], api_name="/on_show").result(timeout=300)
    finally:
        client.close()
    folders = [p for p in Path(team_app.tmp).rglob("*") if p.is_dir() and p.name.startswith(("lab-", "runs-"))]
    assert len(folders) <= 1, folders


@pytest.mark.browser
def test_remote_images_in_answers_are_never_fetched(browser, team_app, screenshot_dir):
    """Markup with a remote image typed as a chat message (rendered by the same Chatbot sanitiser
    as every answer): the page's CSP keeps the browser from fetching it."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.end_headers()
            self.wfile.write(b"GIF89a")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    leak = f"http://127.0.0.1:{server.server_address[1]}"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(team_app.url)
        page.get_by_label("username").fill("ben")
        page.get_by_label("password").fill(USERS["ben"][1])
        page.get_by_role("button", name="Login").click()
        page.locator("#chat-input textarea").wait_for(timeout=120_000)
        message = f'look <img src="{leak}/html.gif"> and ![md]({leak}/markdown.gif) here'
        page.locator("#chat-input textarea").fill(message)
        page.locator("#chat-send").click()
        page.locator("#chat-bot").get_by_text("look").first.wait_for(timeout=60_000)
        page.wait_for_timeout(2_000)
        page.screenshot(path=str(screenshot_dir / "hostile-remote-image.png"), full_page=False)
        page.locator("#chat-stop").click()
    finally:
        context.close()
        server.shutdown()
        server.server_close()
    assert seen == [], seen


# ----------------------------------------------------------------------------- the parts, fast


def test_throttle_pauses_double_and_are_forgotten():
    now = [0.0]
    throttle = LoginThrottle(clock=lambda: now[0])
    for _ in range(4):
        throttle.attempt("ada", "10.0.0.1")
        assert throttle.pause("ada", "10.0.0.1") is None
    pauses = []
    for _ in range(4):
        throttle.attempt("ada", "10.0.0.1")
        pauses.append(throttle.pause("ada", "10.0.0.1").seconds)
        now[0] += pauses[-1]
    assert pauses == [1.0, 2.0, 4.0, 8.0]
    throttle.succeeded("ada", "10.0.0.1")
    assert throttle.pause("ada", "10.0.0.1") is None
    for i in range(20):                                   # many names from one address: the address pauses
        throttle.attempt(f"name-{i}", "10.0.0.2")
    assert throttle.pause("anyone", "10.0.0.2").who == "your address"
    now[0] += 3600                                        # an hour without misses: forgotten
    assert throttle.pause("anyone", "10.0.0.2") is None


def test_session_tokens_expire_and_sessions_keep_their_owner():
    now = [0.0]
    tokens = SessionTokens(60, clock=lambda: now[0])
    tokens["t1"] = "ann"
    assert tokens.get("t1") == "ann" and "t1" in tokens
    now[0] = 61
    assert tokens.get("t1") is None and "t1" not in tokens
    owners = SessionOwners(limit=2)
    assert owners.claim("h1", "ann") and owners.claim("h1", "ann") and not owners.claim("h1", "ben")


def test_api_info_is_emptied_up_to_its_script_end():
    page = b'<script>window.gradio_api_info = {"named_endpoints": {"/x": 1}};</script><p>rest</p>'
    assert without_api_info(page) == b"<script>window.gradio_api_info = {};</script><p>rest</p>"
