"""The HTTP client side of the OpenAI-compatible backend: one server's connection, its request gate, and
one streamed request read on a helper thread. backends/openai_compat.py builds the model and backend
classes on top (the way the llama.cpp backend keeps its batch and placement apart).

Why httpx directly, why a helper thread per stream and why our own retry policy: see
backends/openai_compat.py. `SlotGate` lets at most `max_concurrency` generation requests reach a
server; the others wait in FIFO order.
"""
from __future__ import annotations

import json
import queue
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from playground.errors import PlaygroundError

DEFAULT_MAX_CONCURRENCY = 4
POLL_S = 0.1                  # how often a waiting pane checks its cancel event
MAX_BACKOFF_S = 8.0
RETRY_STATUSES = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ServerOptions:
    """How the playground treats one server (per base URL, from presets/remote_models.yaml)."""

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 120.0   # longest silence allowed between two streamed pieces
    retries: int = 3                # extra attempts, only before the first token
    backoff_s: float = 0.5          # first retry delay; doubles each attempt
    tokenize_timeout_s: float = 5.0 # then the count is estimated (llama-cpp-python's server makes
                                    # a tokenize call wait until the running generation ends)


# ---------------------------------------------------------------------------------------------
# the per-server request gate


class SlotGate:
    """At most `limit` requests in flight to one server; the others wait in FIFO order."""

    def __init__(self, limit: int) -> None:
        self._cond = threading.Condition()
        self._limit = max(1, int(limit))
        self._active = 0
        self._waiting: list[object] = []

    @property
    def limit(self) -> int:
        return self._limit

    def set_limit(self, limit: int) -> None:
        with self._cond:
            self._limit = max(1, int(limit))
            self._cond.notify_all()

    def state(self) -> tuple[int, int]:
        """(requests running, requests waiting)."""
        with self._cond:
            return self._active, len(self._waiting)

    def join(self) -> object:
        """A ticket at the back of the queue; pass it to wait() until it returns 0."""
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            self._cond.notify_all()
        return ticket

    def wait(self, ticket: object, timeout: float) -> int:
        """0 once the ticket holds a slot (release() it later), else its 1-based queue position."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._waiting and self._waiting[0] is ticket and self._active < self._limit:
                    self._waiting.pop(0)
                    self._active += 1
                    self._cond.notify_all()
                    return 0
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._waiting.index(ticket) + 1
                self._cond.wait(remaining)

    def leave(self, ticket: object) -> None:
        """Give up waiting (cancelled)."""
        with self._cond:
            if ticket in self._waiting:
                self._waiting.remove(ticket)
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._active = max(0, self._active - 1)
            self._cond.notify_all()

    def acquire(self, cancel: threading.Event | None = None) -> bool:
        """Block until a slot is free (True) or cancel is set (False)."""
        ticket = self.join()
        while self.wait(ticket, POLL_S):
            if cancel is not None and cancel.is_set():
                self.leave(ticket)
                return False
        return True


# ---------------------------------------------------------------------------------------------
# one server


class ServerTimeout(PlaygroundError):
    """The server did not answer in time."""


class Retryable(Exception):
    """A failure worth another attempt (nothing was streamed yet)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


def retry_after_s(value: str | None) -> float | None:
    try:
        return min(MAX_BACKOFF_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def server_message(text: str) -> str:
    """The error message inside a server's JSON error body, or the start of the body."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        data = text or ""
    if isinstance(data, dict):
        data = data.get("error", data.get("detail", data))
        if isinstance(data, dict):
            data = data.get("message", data)
    return " ".join(str(data).split())[:300]


def api_key_from_env(api_key_env: str | None) -> str:
    import os

    return (os.environ.get(api_key_env) if api_key_env else None) or "EMPTY"


class RemoteServer:
    """Engine state for one base URL: its HTTP client, its gate, and what it turned out to support."""

    def __init__(self, base_url: str, options: ServerOptions) -> None:
        self.base_url = normalize_base_url(base_url)
        self.root_url = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        self.options = options
        self.gate = SlotGate(options.max_concurrency)
        self.client = httpx.Client(limits=httpx.Limits(max_connections=64, max_keepalive_connections=16))
        self.stream_usage = True            # False once the server rejects stream_options
        self.echo_logprobs: str | None = None   # "" = supported, else why not (probed once)
        self.lock = threading.Lock()
        self._pasted_key: str | None = None      # an admin's pasted API key: memory only, never logged

    def set_api_key(self, key: str | None) -> None:
        """Use `key` for models of this server that name no api_key_env (kept in memory only)."""
        self._pasted_key = key or None

    def __repr__(self) -> str:
        return f"RemoteServer({self.base_url!r})"

    def configure(self, options: ServerOptions) -> None:
        self.options = options
        self.gate.set_limit(options.max_concurrency)

    def timeout(self, read_s: float | None = None) -> httpx.Timeout:
        o = self.options
        return httpx.Timeout(read_s or o.read_timeout_s, connect=o.connect_timeout_s)

    def headers(self, api_key_env: str | None) -> dict[str, str]:
        key = api_key_from_env(api_key_env) if api_key_env else (self._pasted_key or "EMPTY")
        return {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def http_error(self, url: str, status: int, text: str, api_key_env: str | None) -> PlaygroundError:
        """A clear message for an HTTP error answer (never includes the key)."""
        detail = server_message(text)
        if status in (401, 403):
            where = f"the environment variable {api_key_env}" if api_key_env else "an api_key_env entry"
            return PlaygroundError(f"the server at {self.base_url} refused the request (HTTP {status}: "
                                   f"{detail}): check the API key in {where}")
        return PlaygroundError(f"the server at {url} answered HTTP {status}: {detail}")

    def request_json(self, method: str, url: str, *, api_key_env: str | None, body: Any = None,
                     read_s: float | None = None, retries: int | None = None,
                     cancel: threading.Event | None = None) -> Any:
        """One JSON request, retried with backoff on connection errors, 5xx and 429."""
        retries = self.options.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                return self._request_once(method, url, api_key_env, body, read_s)
            except Retryable as exc:
                if attempt == retries:
                    raise PlaygroundError(f"{exc.reason} (gave up after {attempt + 1} attempts)") from None
                delay = exc.retry_after if exc.retry_after is not None else self.backoff(attempt)
                if cancel is not None and cancel.wait(delay):
                    raise PlaygroundError(f"cancelled while retrying {url}") from None
                if cancel is None:
                    time.sleep(delay)
        raise AssertionError("unreachable")

    def _request_once(self, method: str, url: str, api_key_env: str | None, body: Any,
                      read_s: float | None) -> Any:
        try:
            response = self.client.request(method, url, json=body, headers=self.headers(api_key_env),
                                           timeout=self.timeout(read_s))
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise Retryable(connection_problem(self.base_url, exc)) from None
            raise ServerTimeout(f"no answer from {url} within {read_s or self.options.read_timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise Retryable(connection_problem(self.base_url, exc)) from None
        if response.status_code in RETRY_STATUSES:
            raise Retryable(f"the server at {url} answered HTTP {response.status_code}: "
                             f"{server_message(response.text)}", retry_after_s(response.headers.get("retry-after")))
        if response.status_code >= 400:
            raise self.http_error(url, response.status_code, response.text, api_key_env)
        try:
            return response.json()
        except ValueError:
            raise PlaygroundError(f"the server at {url} did not answer JSON: {response.text[:200]!r}") from None

    def backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_S, self.options.backoff_s * (2 ** attempt))

    def close(self) -> None:
        self.client.close()


def normalize_base_url(base_url: str) -> str:
    """http://host:port/v1 without a trailing slash; a bare host:port gets http:// and /v1."""
    url = base_url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if not parts.hostname:
        raise PlaygroundError(f"not a server address: '{base_url}' (expected e.g. http://127.0.0.1:8000/v1)")
    if parts.path in ("", "/"):
        url += "/v1"
    return url


def connection_problem(base_url: str, exc: Exception) -> str:
    """Why a server could not be reached, in words, naming its URL."""
    text = str(exc) or type(exc).__name__
    if "refused" in text.lower():
        return f"cannot reach the inference server at {base_url} (connection refused): is it running?"
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot reach the inference server at {base_url} (connection timed out)"
    return f"the connection to the inference server at {base_url} failed ({type(exc).__name__}: {text})"


# ---------------------------------------------------------------------------------------------
# one streamed HTTP request, read on a helper thread


class EventStream:
    """Reads one server-sent-events response on a daemon thread into a queue.

    The pane's thread polls the queue so it can notice a cancel within POLL_S; abort() shuts the
    socket down (safe across threads, unlike close()), which wakes the reader and tells the server.
    """

    def __init__(self, client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any],
                 timeout: httpx.Timeout) -> None:
        self._events: "queue.Queue[tuple[str, Any]]" = queue.Queue()
        self._stop = threading.Event()
        self._guard = threading.Lock()     # abort() touches the socket only while the body is read
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._run, args=(client, url, headers, body, timeout),
                                        daemon=True, name="openai-compat-stream")
        self._thread.start()

    def _run(self, client: httpx.Client, url: str, headers: dict[str, str], body: dict[str, Any],
             timeout: httpx.Timeout) -> None:
        try:
            with client.stream("POST", url, json=body, headers={**headers, "Accept": "text/event-stream"},
                               timeout=timeout) as response:
                with self._guard:
                    self._response = response
                try:
                    self._read(response)
                finally:
                    with self._guard:   # from here httpx may hand the connection to another request
                        self._response = None
        except Exception as exc:  # reported to the pane's thread, which decides what it means
            if not self._stop.is_set():
                self._events.put(("error", exc))

    def _read(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            response.read()
            self._events.put(("status", (response.status_code, response.text, response.headers.get("retry-after"))))
            return
        for line in response.iter_lines():
            if self._stop.is_set():
                return
            if line.startswith("data:"):
                data = line[5:].strip()
                self._events.put(("done", None) if data == "[DONE]" else ("data", data))
                if data == "[DONE]":
                    return
            elif line.startswith("error:"):
                self._events.put(("data", json.dumps({"error": line[6:].strip()})))
        self._events.put(("eof", None))

    def next(self, timeout: float) -> tuple[str, Any] | None:
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def abort(self) -> None:
        """Stop reading; if the body is still being read, shut its socket down (wakes the reader)."""
        self._stop.set()
        with self._guard:
            response = self._response
            stream = response.extensions.get("network_stream") if response is not None else None
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def context_from_listing(entry: dict[str, Any]) -> int | None:
    """Context length from a /v1/models entry: vLLM max_model_len, llama.cpp meta, LM Studio, ..."""
    for key in ("max_model_len", "context_length", "max_context_length", "context_window", "n_ctx"):
        if isinstance(entry.get(key), int) and entry[key] > 0:
            return entry[key]
    meta = entry.get("meta") or {}
    for key in ("n_ctx", "n_ctx_train"):
        if isinstance(meta.get(key), int) and meta[key] > 0:
            return meta[key]
    return None
