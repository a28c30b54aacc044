"""The web gate: one ASGI middleware in front of Gradio's routes, for what Gradio leaves open.

Installed through `launch(app_kwargs={"middleware": ...})`, it sees every HTTP request before
Gradio does and
- hands the client address of POST /login to the sign-in check (`login.LOGIN_CLIENT`), which
  throttles by it (Gradio gives the check only the name and the password);
- gives sign-in tokens a lifetime (`SessionTokens` replaces Gradio's plain token dict);
- on team servers:
  - strips the app's API description (every endpoint, admin ones included, with parameters and
    choices) from pages a signed-out visitor gets: they get the login form and nothing else;
  - adds to that login form what Gradio's leaves out: when sign-in is paused (HTTP 429 from the
    throttle) the form says why and for how long (`LOGIN_NOTICE`; Gradio's form only knows 400);
  - binds each Gradio session hash to the login that used it first, and refuses (403) any other
    login's request naming it: a copied session hash cannot vote in, read, or cancel someone
    else's round (gr.State is kept per session hash, so this ties state to its owner);
  - lets only admins upload (the app's one upload control, the Lab's task file, is theirs);
- says on every page `img-src 'self' data: blob:` (a Content-Security-Policy): markup in a model's
  answer, however it got there, cannot make a viewer's browser fetch a remote address.
"""
from __future__ import annotations

import json
import re
import time
from collections import OrderedDict
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import cookie_parser

from playground.auth.access import Access
from playground.auth.login import LOGIN_CLIENT

API = "/gradio_api"
CSP = "img-src 'self' data: blob:; media-src 'self' data: blob:"
DEFAULT_SESSION_HOURS = 12.0      # a working day, then sign in again
MAX_OWNED_SESSIONS = 100_000      # session hashes remembered (oldest forgotten first)
MAX_JSON_BODY = 8 * 1024 * 1024   # JSON requests read to find their session hash; larger ones are refused
_HEARTBEAT = re.compile(rf"^{API}/heartbeat/([^/]+)/?$")
_API_INFO = b"window.gradio_api_info = "
# Gradio's login form reacts to 400 (wrong password) and 200 only; a 429 left it silent. This wraps
# fetch on the signed-out page: a refused POST /login shows the server's reason above the form.
LOGIN_NOTICE = b"""<script>(() => {
  const realFetch = window.fetch.bind(window);
  const show = (text) => {
    let note = document.getElementById("login-paused");
    if (!text) { if (note) note.remove(); return; }
    if (!note) {
      note = document.createElement("p");
      note.id = "login-paused";
      note.setAttribute("role", "alert");
      note.style.cssText = "color:#b91c1c;background:#fef2f2;border:1px solid #fca5a5;border-radius:6px;" +
        "padding:8px 12px;margin:8px 0;font-size:14px;";
      const heading = document.querySelector("h2");
      if (heading && heading.parentNode) heading.parentNode.insertBefore(note, heading.nextSibling);
      else document.body.prepend(note);
    }
    note.textContent = text;
  };
  window.fetch = async (input, init) => {
    const url = typeof input === "string" ? input : (input && input.url) || "";
    const post = ((init && init.method) || (input && input.method) || "GET").toUpperCase() === "POST";
    const answer = await realFetch(input, init);
    if (post && /\/login\/?$/.test(new URL(url, location.href).pathname)) {
      if (answer.status === 429) {
        let detail = "";
        try { detail = (await answer.clone().json()).detail || ""; } catch (e) {}
        const wait = answer.headers.get("Retry-After");
        show(detail || ("Too many failed sign-ins: try again in " + (wait || "a few") + " s."));
      } else {
        show("");
      }
    }
    return answer;
  };
})();</script>"""

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class SessionTokens(dict):
    """Gradio's sign-in tokens (token -> user name) with a lifetime: `get` and `in` forget a token
    older than `lifetime_s`, so its cookie signs nobody in any more (the page asks to sign in)."""

    def __init__(self, lifetime_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.lifetime_s = lifetime_s
        self.clock = clock
        self._born: dict[str, float] = {}

    def __setitem__(self, token: str, user: str) -> None:
        self._forget_expired()
        super().__setitem__(token, user)
        self._born[token] = self.clock()

    def get(self, token: Any, default: Any = None) -> Any:
        if token is None or not self._alive(token):
            return default
        return super().get(token, default)

    def __contains__(self, token: object) -> bool:
        return isinstance(token, str) and self._alive(token) and super().__contains__(token)

    def _alive(self, token: str) -> bool:
        born = self._born.get(token)
        if born is None or self.clock() - born <= self.lifetime_s:
            return True
        self.pop(token, None)
        self._born.pop(token, None)
        return False

    def _forget_expired(self) -> None:
        now = self.clock()
        for token in [t for t, born in self._born.items() if now - born > self.lifetime_s]:
            self.pop(token, None)
            self._born.pop(token, None)


class SessionOwners:
    """Which login first used each Gradio session hash."""

    def __init__(self, limit: int = MAX_OWNED_SESSIONS) -> None:
        self.limit = limit
        self._owner: OrderedDict[str, str] = OrderedDict()

    def claim(self, session_hash: str, user: str) -> bool:
        """True when `user` owns the session (now, or from before); False when another login does."""
        owner = self._owner.get(session_hash)
        if owner is None:
            while len(self._owner) >= self.limit:
                self._owner.popitem(last=False)
            self._owner[session_hash] = user
            return True
        return owner == user


class WebGate:
    """The ASGI middleware (see the module docstring); `app` is the rest of Gradio's stack."""

    def __init__(self, app: Any, *, access: Access, session_hours: float = DEFAULT_SESSION_HOURS,
                 owners: SessionOwners | None = None) -> None:
        self.app = app
        self.access = access
        self.session_s = session_hours * 3600.0
        self.owners = owners or SessionOwners()

    async def __call__(self, scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gradio_app = scope.get("app")
        if gradio_app is not None and not isinstance(getattr(gradio_app, "tokens", None), SessionTokens):
            gradio_app.tokens = SessionTokens(self.session_s)     # before the first sign-in can happen
        path, method = scope["path"], scope["method"]
        if method == "POST" and path.rstrip("/") == "/login":
            reset = LOGIN_CLIENT.set((scope.get("client") or ("unknown",))[0])
            try:
                await self.app(scope, receive, send)
            finally:
                LOGIN_CLIENT.reset(reset)
            return
        user = None
        if self.access.login_required:
            user = signed_in_user(scope, gradio_app)
            if method == "POST" and path.startswith(f"{API}/upload"):
                if user is None or not self.access.user(_Named(user)).is_admin:
                    await refuse(send, 403, "only an admin can upload files on this playground")
                    return
            body, session_hash = None, session_hash_in(scope)
            if method == "POST" and path.startswith(f"{API}/") and _is_json(scope):
                body = await read_body(receive, MAX_JSON_BODY)
                if body is None:
                    await refuse(send, 413, f"the request is larger than {MAX_JSON_BODY // 2**20} MB")
                    return
                session_hash = session_hash or _json_session_hash(body)
            if session_hash and user and not self.owners.claim(session_hash, user):
                await refuse(send, 403, "this session belongs to another sign-in: reload the page to start your own")
                return
            if body is not None:
                receive = replay(body, receive)
        await self.app(scope, receive, page_filter(send, strip_api_info=self.access.login_required and user is None))


class _Named:
    """Enough of a gr.Request for `Access.user`: the name of the signed-in user."""

    def __init__(self, username: str) -> None:
        self.username = username


def signed_in_user(scope: Message, gradio_app: Any) -> str | None:
    """The user whose sign-in cookie the request carries (None: signed out or expired)."""
    tokens, cookie_id = getattr(gradio_app, "tokens", None), getattr(gradio_app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return None
    header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k == b"cookie"), "")
    cookies = cookie_parser(header)
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return tokens.get(token) if token else None


def session_hash_in(scope: Message) -> str | None:
    """A session hash named in the query string or the heartbeat path."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("session_hash"):
        return query["session_hash"][0]
    match = _HEARTBEAT.match(scope["path"])
    return match.group(1) if match else None


def _is_json(scope: Message) -> bool:
    return any(k == b"content-type" and b"json" in v for k, v in scope.get("headers", []))


def _json_session_hash(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None             # Gradio answers it with its own 422
    value = data.get("session_hash") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives `body` once, then waits on the real one (disconnects)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


async def refuse(send: Send, status: int, detail: str) -> None:
    data = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def page_filter(send: Send, *, strip_api_info: bool) -> Send:
    """`send` that adds the CSP to HTML answers and, for signed-out visitors, empties the API
    description Gradio embeds in them (`window.gradio_api_info = {...}` up to its `</script>`)."""
    state: dict[str, Any] = {"html": False, "start": None, "chunks": []}

    async def filtered(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            state["html"] = any(k.lower() == b"content-type" and b"text/html" in v for k, v in headers)
            if not state["html"]:
                await send(message)
                return
            headers.append((b"content-security-policy", CSP.encode()))
            message = {**message, "headers": headers}
            if not strip_api_info:
                await send(message)
                return
            state["start"] = message           # held until the whole body is in
            return
        if message["type"] != "http.response.body" or state["start"] is None:
            await send(message)
            return
        state["chunks"].append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = with_login_notice(without_api_info(b"".join(state["chunks"])))
        start = state["start"]
        headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return filtered


def with_login_notice(html: bytes) -> bytes:
    """The signed-out page with `LOGIN_NOTICE` at the end of its head (before Gradio's own scripts run)."""
    at = html.find(b"</head>")
    return html + LOGIN_NOTICE if at < 0 else html[:at] + LOGIN_NOTICE + html[at:]


def without_api_info(html: bytes) -> bytes:
    """The page with `window.gradio_api_info` set to {} (the script ends at the first `</script>`)."""
    start = html.find(_API_INFO)
    if start < 0:
        return html
    end = html.find(b"</script>", start)
    if end < 0:
        return html[:start]
    return html[:start] + _API_INFO + b"{};" + html[end:]
