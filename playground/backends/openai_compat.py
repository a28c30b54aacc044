"""OpenAI-compatible inference servers (vLLM, llama-cpp-python's server, llama.cpp's llama-server,
LM Studio, ...) as a backend: the model runs elsewhere and the playground streams over HTTP.

Why httpx directly and not the official `openai` client:
- cancellation: each stream is read on a helper thread while the pane's thread waits on a queue, so
  a cancel click returns at once and shuts the socket down (the server sees the disconnect and stops
  generating), even while the server is still reading the prompt and sends nothing;
- retries: our own policy (connection errors, 5xx, 429; exponential backoff, Retry-After) applied
  only before the first token and shown in the pane; the client's built-in retries are invisible;
- one client for the OpenAI endpoints and the servers' own extras (`/tokenize`, `/extras/tokenize`,
  `max_model_len` in `/v1/models`), which the typed client does not model.

Chat models: the server applies its own chat template, so `render_chat` returns CHAT_HEADER plus a
stable JSON of the messages (exactly what is sent) and `stream` sends that form to
`/v1/chat/completions`; any other prompt text goes to `/v1/completions` as a raw prompt.

Concurrency: one `SlotGate` per base URL (engine state, on the backend object) lets at most
`max_concurrency` generation requests (streams and scoring calls) reach a server; the others wait in
FIFO order and report their queue position on empty chunks (`Chunk.notices`), which the
engine shows in the pane. Tokenize and model-list calls are short and not gated.

The HTTP client (server, gate, event stream, retry helpers) is backends/remote_http.py; what stays
here, just past 500 lines, is one model's request cycle (wait for a slot, stream, retry before the
first token, score) and the backend that loads it.
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

import httpx

from playground.backends.base import Chunk, Message
from playground.backends.remote_http import (POLL_S, RETRY_STATUSES, EventStream, RemoteServer, Retryable,
                                             ServerOptions, ServerTimeout, api_key_from_env, connection_problem,
                                             context_from_listing, normalize_base_url, retry_after_s, server_message)
from playground.errors import ModelError, PlaygroundError
from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams

CHAT_HEADER = "### chat messages sent to an OpenAI-compatible server (it applies its own chat template) ###\n"
DEFAULT_CONTEXT = 4096
CHAT_OVERHEAD_TOKENS = 4      # per message, when the server cannot tokenize chat messages itself
LOGPROB_PROBE = "The capital of France is"
FINISH_REASONS = {"stop": "stop", "eos": "stop", "end_turn": "stop", "content_filter": "stop",
                  "tool_calls": "stop", "function_call": "stop", "length": "length",
                  "max_tokens": "length", "abort": "error", "error": "error", "cancelled": "cancelled"}


# ---------------------------------------------------------------------------------------------
# chat form


def render_chat_form(messages: Sequence[Message]) -> str:
    """The exact messages sent, as a marked, stable JSON text (what the pane and the DB show)."""
    clean = [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    return CHAT_HEADER + json.dumps(clean, ensure_ascii=False, indent=2)


def parse_chat_form(prompt: str) -> list[Message] | None:
    """The messages of a chat-form prompt, or None for a raw text prompt."""
    if not prompt.startswith(CHAT_HEADER):
        return None
    try:
        messages = json.loads(prompt[len(CHAT_HEADER):])
    except json.JSONDecodeError as exc:
        raise PlaygroundError(f"the chat messages in the prompt are not valid JSON: {exc}") from None
    if not isinstance(messages, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                                 for m in messages):
        raise PlaygroundError("the chat prompt must be a JSON list of {role, content} messages")
    return messages


def estimate_tokens(text: str) -> int:
    """A rough count (4 characters per token) for servers that cannot tokenize."""
    return max(1, math.ceil(len(text) / 4)) if text else 0


# ---------------------------------------------------------------------------------------------
# the loaded model


@dataclass
class _Progress:
    text: str = ""
    pieces: int = 0
    finish: str | None = None
    usage: dict[str, Any] | None = None
    ttft: float | None = None


def sampling_fields(sampling: SamplingParams, top_k_off: int = 0) -> dict[str, Any]:
    """OpenAI fields plus the extras vLLM and llama.cpp servers read (each ignores the other's).

    top_k_off: how the server spells "no top-k" (llama.cpp servers: 0, and they refuse -1; vLLM: -1,
    which every version accepts)."""
    body: dict[str, Any] = {
        "max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature, "top_p": sampling.top_p,
        "top_k": sampling.top_k if sampling.top_k > 0 else top_k_off,
        "min_p": sampling.min_p,                                  # llama.cpp servers default to 0.05
        "repeat_penalty": sampling.repeat_penalty,                # llama.cpp name (its default is 1.1)
        "repetition_penalty": sampling.repeat_penalty,            # vLLM name
    }
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    return body


def map_finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(str(reason).lower(), "stop") if reason else "stop"


@dataclass
class OpenAICompatModel:
    """A model served by an OpenAI-compatible server. Thread-safe: the server's gate serialises."""

    spec: ModelSpec
    server: RemoteServer
    model_name: str
    context_length: int
    tokenizer: str = "estimate"      # vllm (/tokenize) | llama_cpp_python (/extras/tokenize) | estimate
    device: str = "remote"
    backend: str = "openai_compat"
    bos_text: str = ""               # the server adds what the model needs
    warnings: list[str] = field(default_factory=list)
    _chat_tokenize: bool = True      # False once /tokenize refused chat messages
    _local: threading.local = field(default_factory=threading.local)   # per pane thread: last count estimated?

    @property
    def raw_continuation(self) -> bool:
        """Chat models cannot continue raw text: the engine asks zero-shot CoT's step 2 as a turn."""
        return not self.spec.is_chat

    @property
    def ran_on(self) -> str:
        return self.device

    @property
    def url(self) -> str:
        return self.server.base_url

    # rendering and counting -------------------------------------------------------------------

    def render_chat(self, messages: Sequence[Message]) -> str:
        return render_chat_form(messages)

    def count_tokens(self, text: str) -> int:
        """The server's own count where it can tokenize; otherwise an estimate (see warnings)."""
        messages = parse_chat_form(text)
        if messages is None:
            return self._count_text(text)
        joined = "\n".join(f"{m['role']}\n{m['content']}" for m in messages)
        overhead = CHAT_OVERHEAD_TOKENS * len(messages) + 3
        if self.tokenizer == "vllm" and self._chat_tokenize:
            try:   # vLLM applies the chat template itself: exact
                return _token_count(self._tokenize({"messages": messages, "add_generation_prompt": True}))
            except ServerTimeout:
                self._local.estimated = True
                return estimate_tokens(joined) + overhead
            except PlaygroundError:
                self._chat_tokenize = False
        return self._count_text(joined) + overhead

    def _count_text(self, text: str) -> int:
        """Exact from the server; when it is too busy to answer in time, an estimate that the next
        stream on this pane's thread reports as such."""
        try:
            if self.tokenizer == "vllm":
                return _token_count(self._tokenize({"prompt": text, "content": text}))
            if self.tokenizer == "llama_cpp_python":
                data = self.server.request_json("POST", f"{self.server.root_url}/extras/tokenize",
                                                api_key_env=self.spec.api_key_env,
                                                body={"model": self.model_name, "input": text},
                                                read_s=self.server.options.tokenize_timeout_s)
                return _token_count(data)
        except ServerTimeout:
            self._local.estimated = True
        return estimate_tokens(text)

    def _tokenize(self, fields: dict[str, Any]) -> Any:
        return self.server.request_json("POST", f"{self.server.root_url}/tokenize", api_key_env=self.spec.api_key_env,
                                        body={"model": self.model_name, **fields},
                                        read_s=self.server.options.tokenize_timeout_s)

    # streaming -------------------------------------------------------------------------------

    def stream(self, prompt: str, sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        """Chat form -> /v1/chat/completions; any other text -> /v1/completions as a raw prompt."""
        messages = parse_chat_form(prompt)
        path = "chat/completions" if messages is not None else "completions"
        top_k_off = -1 if self.tokenizer == "vllm" else 0
        body = {"model": self.model_name, "stream": True, **sampling_fields(sampling, top_k_off),
                **({"messages": messages} if messages is not None else {"prompt": prompt})}
        start = time.perf_counter()
        n_prompt = estimate_tokens(prompt)
        status: list[str] = []
        if getattr(self._local, "estimated", False):
            self._local.estimated = False
            status.append(f"the prompt's token count is an estimate: {self.url} was too busy to tokenize it")
        if not (yield from self._wait_for_slot(start, cancel, n_prompt)):
            yield Chunk("", n_prompt, 0, None, time.perf_counter() - start, "cancelled", notices=())
            return
        try:
            waited = time.perf_counter() - start
            if waited >= 0.5:
                status.append(f"waited {waited:.1f} s for a free slot on {self.url} "
                              f"(at most {self.server.gate.limit} requests at once)")
            yield Chunk("", n_prompt, 0, None, waited, notices=tuple(status))   # replaces the queue line
            yield from self._generate(path, body, cancel, start, n_prompt, status)
        finally:
            self.server.gate.release()

    def _wait_for_slot(self, start: float, cancel: threading.Event | None,
                       n_prompt: int) -> Iterator[Chunk]:
        """Queue for the server's gate, yielding the position as it changes; True once a slot is held."""
        gate, shown, held = self.server.gate, None, False
        ticket = gate.join()
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    return False
                position = gate.wait(ticket, POLL_S)
                if position == 0:
                    held = True
                    return True
                if position != shown:
                    shown = position
                    running, _ = gate.state()
                    notice = (f"waiting for {self.url}: number {position} in the queue "
                              f"({running} of at most {gate.limit} requests running)")
                    yield Chunk("", n_prompt, 0, None, time.perf_counter() - start, notices=(notice,))
        finally:
            if not held:
                gate.leave(ticket)

    def _generate(self, path: str, body: dict[str, Any], cancel: threading.Event | None, start: float,
                  n_prompt: int, status: list[str]) -> Iterator[Chunk]:
        """Attempts with backoff while nothing was streamed; never retried after the first token."""
        retries = self.server.options.retries
        attempt = 0
        while True:
            progress = _Progress()
            try:
                yield from self._attempt(path, body, cancel, start, n_prompt, status, progress)
                return
            except Retryable as exc:
                if exc.reason == "stream_options":   # resent at once without it
                    continue
                if progress.pieces or attempt >= retries:
                    raise PlaygroundError(f"{exc.reason} (gave up after {attempt + 1} attempts)") from None
                delay = exc.retry_after if exc.retry_after is not None else self.server.backoff(attempt)
                attempt += 1
                status.append(f"{exc.reason}: retrying in {delay:.1f} s (attempt {attempt + 1} of {retries + 1})")
                yield Chunk("", n_prompt, 0, None, time.perf_counter() - start, notices=tuple(status))
                if cancel is not None and cancel.wait(delay):
                    yield Chunk("", n_prompt, 0, None, time.perf_counter() - start, "cancelled")
                    return
                if cancel is None:
                    time.sleep(delay)

    def _attempt(self, path: str, body: dict[str, Any], cancel: threading.Event | None, start: float,
                 n_prompt: int, status: list[str], p: _Progress) -> Iterator[Chunk]:
        url = f"{self.url}/{path}"
        if self.server.stream_usage:
            body = {**body, "stream_options": {"include_usage": True}}
        stream = EventStream(self.server.client, url, self.server.headers(self.spec.api_key_env), body,
                              self.server.timeout())
        chat = path.startswith("chat")
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    stream.abort()
                    yield Chunk("", n_prompt, p.pieces, p.ttft, time.perf_counter() - start, "cancelled")
                    return
                event = stream.next(POLL_S)
                if event is None:
                    continue
                kind, payload = event
                if kind == "status":
                    self._raise_status(url, body, *payload)
                if kind == "error":
                    self._raise_transport(url, payload, p)
                if kind == "data":
                    piece = self._read_event(url, payload, chat, p, start)
                    if piece:
                        yield Chunk(piece, n_prompt, p.pieces, p.ttft, time.perf_counter() - start)
                    continue
                break   # done or eof
        except BaseException:   # errors, and the consumer closing this generator
            stream.abort()
            raise
        yield self._final_chunk(url, n_prompt, start, status, p)

    def _raise_status(self, url: str, body: dict[str, Any], status_code: int, text: str,
                      retry_after: str | None) -> None:
        if status_code in RETRY_STATUSES:
            raise Retryable(f"the server at {url} answered HTTP {status_code}: {server_message(text)}",
                             retry_after_s(retry_after))
        if status_code in (400, 422) and "stream_options" in body and "stream_options" in text:
            self.server.stream_usage = False   # a strict server: count pieces instead of usage
            raise Retryable("stream_options")
        raise self.server.http_error(url, status_code, text, self.spec.api_key_env)

    def _raise_transport(self, url: str, exc: Exception, p: _Progress) -> None:
        if isinstance(exc, httpx.ReadTimeout):
            raise PlaygroundError(f"no answer from {url} for {self.server.options.read_timeout_s:g} s "
                                  f"(after {p.pieces} tokens): the server may be overloaded") from None
        if p.pieces:
            raise PlaygroundError(f"the stream from {self.url} broke after {p.pieces} tokens "
                                  f"({type(exc).__name__}: {exc or 'connection closed'}): the server may "
                                  "have stopped; the text so far is kept") from None
        raise Retryable(connection_problem(self.url, exc))

    def _read_event(self, url: str, data: str, chat: bool, p: _Progress, start: float) -> str:
        """Apply one SSE data payload to the progress; returns the new text."""
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            raise PlaygroundError(f"the server at {url} sent a malformed stream event: {data[:200]!r}") from None
        if not isinstance(event, dict):
            return ""
        if event.get("error"):
            message = server_message(json.dumps(event))
            if p.pieces:
                raise PlaygroundError(f"the server at {url} failed after {p.pieces} tokens: {message}")
            raise Retryable(f"the server at {url} failed: {message}")
        if event.get("usage"):
            p.usage = event["usage"]
        choices = event.get("choices") or []
        if not choices:
            return ""
        choice = choices[0]
        piece = ((choice.get("delta") or {}).get("content") or "") if chat else (choice.get("text") or "")
        if choice.get("finish_reason"):
            p.finish = choice["finish_reason"]
        if piece:
            p.pieces += 1
            p.text += piece
            if p.ttft is None:
                p.ttft = time.perf_counter() - start
        return piece

    def _final_chunk(self, url: str, n_prompt: int, start: float, status: list[str], p: _Progress) -> Chunk:
        if p.finish is None:
            raise PlaygroundError(
                f"the server at {url} ended the answer after {p.pieces} tokens without saying why. "
                "llama-cpp-python's server does this when another request arrives: start it with "
                "--interrupt_requests False")
        usage = p.usage or {}
        n_out = usage.get("completion_tokens")
        if n_out is None:
            n_out = p.pieces
            status.append("output token count is an estimate (streamed pieces): the server sends no usage figures")
        n_prompt = usage.get("prompt_tokens") or n_prompt
        return Chunk("", int(n_prompt), int(n_out), p.ttft, time.perf_counter() - start,
                           map_finish_reason(p.finish), notices=tuple(status))

    # log-probabilities -----------------------------------------------------------------------

    def continuation_logprob(self, prompt: str, continuation: str) -> tuple[float, int]:
        """Scored by /v1/completions with echo (prompt log-probabilities), where the server offers it."""
        if parse_chat_form(prompt) is not None:
            raise PlaygroundError("log-probabilities need a plain-text prompt: the chat form is rendered "
                                  f"by the server at {self.url}, so its tokens cannot be scored")
        if not continuation:
            return 0.0, 0
        self._require_echo_logprobs()
        full = prompt + continuation
        data = self._score(full)
        total, n = _sum_span(_logprobs_of(data), len(prompt), len(full))
        if not math.isfinite(total):
            raise PlaygroundError(f"the server at {self.url} returned a log-probability that is not finite")
        return total, n

    def _unsupported(self, why: str) -> PlaygroundError:
        return PlaygroundError(f"log-probabilities are not supported by this server ({self.url}): {why}")

    def _score(self, text: str, **extra: Any) -> Any:
        body = {"model": self.model_name, "prompt": text, "max_tokens": 1, "temperature": 0.0,
                "echo": True, "logprobs": 1, **extra}
        if not self.server.gate.acquire():
            raise PlaygroundError("cancelled")
        try:
            return self.server.request_json("POST", f"{self.url}/completions", api_key_env=self.spec.api_key_env,
                                            body=body)
        except PlaygroundError as exc:
            refused = any(f"HTTP {code}" in str(exc) for code in (400, 404, 405, 422, 501))
            if refused or "logprob" in str(exc).lower():
                raise self._unsupported(str(exc)) from None
            raise
        finally:
            self.server.gate.release()

    def _require_echo_logprobs(self) -> None:
        """Probe once per server that echoed prompt log-probabilities exist and are aligned.

        llama-cpp-python's server shifts them by one token for models without a BOS token
        (abetlen/llama-cpp-python#1983) and llama.cpp's llama-server returns none for the prompt;
        a wrong number is worse than none, so both are refused with the reason.
        """
        with self.server.lock:
            if self.server.echo_logprobs is None:
                self.server.echo_logprobs = self._probe_echo_logprobs()
        if self.server.echo_logprobs:
            raise self._unsupported(self.server.echo_logprobs)

    def _probe_echo_logprobs(self) -> str:
        generated = self._score(LOGPROB_PROBE, echo=False)
        lp = _logprobs_of(generated)
        if not lp.get("tokens") or lp.get("token_logprobs", [None])[0] is None:
            return "it returns no log-probabilities"
        token, expected = lp["tokens"][0], lp["token_logprobs"][0]
        echoed = _logprobs_of(self._score(LOGPROB_PROBE + token))
        found = [v for off, v in zip(echoed.get("text_offset") or [], echoed.get("token_logprobs") or [], strict=False)
                 if off == len(LOGPROB_PROBE)]
        if not found or found[0] is None:
            return "it returns no log-probabilities for prompt tokens (echo)"
        if abs(found[0] - expected) > 0.05:
            return (f"its prompt log-probabilities are misaligned (the same token scores {found[0]:.3f} "
                    f"echoed but {expected:.3f} generated; llama-cpp-python's server shifts them by one "
                    "token, abetlen/llama-cpp-python#1983): use the llama_cpp backend or vLLM for scoring")
        return ""

    def close(self) -> None:
        """Nothing to free here: the server's connection pool is shared by its models."""


def _token_count(data: Any) -> int:
    if isinstance(data, dict):
        if isinstance(data.get("count"), int):
            return data["count"]
        if isinstance(data.get("tokens"), list):
            return len(data["tokens"])
    raise PlaygroundError(f"unexpected tokenize answer: {str(data)[:200]}")


def _logprobs_of(data: Any) -> dict[str, Any]:
    try:
        return data["choices"][0].get("logprobs") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        return {}


def _sum_span(lp: dict[str, Any], start: int, end: int) -> tuple[float, int]:
    """Sum of the logprobs of the echoed tokens that overlap text[start:end] (a token straddling the
    boundary counts, like the llama_cpp backend's shared-prefix rule); the first token has none."""
    offsets, tokens, values = lp.get("text_offset"), lp.get("tokens"), lp.get("token_logprobs")
    if not offsets or not tokens or values is None:
        raise PlaygroundError("the server returned no prompt log-probabilities")
    total, n = 0.0, 0
    for off, tok, value in zip(offsets, tokens, values, strict=False):
        if off >= end:
            break
        if off + len(tok) <= start or value is None:
            continue
        total += float(value)
        n += 1
    return total, n


# ---------------------------------------------------------------------------------------------
# the backend


class OpenAICompatBackend:
    """Connects ModelSpecs with source="remote" to their servers; one RemoteServer per base URL."""

    name = "openai_compat"
    devices = ("cpu",)   # nothing runs locally; the device is the server's

    def __init__(self) -> None:
        self._servers: dict[str, RemoteServer] = {}
        self._lock = threading.Lock()

    def server(self, base_url: str) -> RemoteServer:
        url = normalize_base_url(base_url)
        with self._lock:
            if url not in self._servers:
                self._servers[url] = RemoteServer(url, ServerOptions())
            return self._servers[url]

    def configure(self, base_url: str, **options: Any) -> RemoteServer:
        """Set a server's options (max_concurrency, timeouts, retries); unspecified ones are kept."""
        server = self.server(base_url)
        server.configure(replace(server.options, **{k: v for k, v in options.items() if v is not None}))
        return server

    def supports(self, spec: ModelSpec) -> bool:
        return spec.source == "remote" and bool(spec.base_url)

    def estimate_bytes(self, spec: ModelSpec) -> int:
        return 0   # the weights live on the server

    def load(self, spec: ModelSpec, *, device: str = "cpu", threads: int = 0, n_ctx: int = 0,
             compute_lock: threading.Lock | None = None) -> OpenAICompatModel:
        """Ask the server what it serves (model name, context) and how it tokenizes.

        compute_lock and threads are ignored: the server does the computing, and its own gate
        (max_concurrency) is what keeps it from being flooded.
        """
        if not spec.base_url:
            raise ModelError(f"{spec.id} has no base_url: it is not a remote model")
        server = self.server(spec.base_url)
        warnings: list[str] = []
        listing = self._listing(server, spec, warnings)
        name = spec.remote_model or (listing[0]["id"] if listing else None)
        if not name:
            raise ModelError(f"{spec.id}: no model name given and the server at {server.base_url} lists none")
        entry = next((m for m in listing if m.get("id") == name), None)
        if listing and entry is None:
            warnings.append(f"the server at {server.base_url} does not list '{name}' (it lists: "
                            f"{', '.join(str(m.get('id')) for m in listing[:5])})")
        tokenizer, max_len = self._tokenizer(server, spec, name)
        if tokenizer == "estimate":
            warnings.append(f"token counts for {spec.id} are estimates (4 characters per token): the server "
                            "has no tokenize endpoint")
        elif tokenizer == "llama_cpp_python" and spec.is_chat:
            warnings.append("chat prompt token counts are approximate: this server tokenizes text, "
                            "not chat messages (its template adds a few tokens per message)")
        context = spec.context_length or context_from_listing(entry or {}) or max_len
        if not context:
            context = DEFAULT_CONTEXT
            warnings.append(f"the server does not report {spec.id}'s context length: assuming {DEFAULT_CONTEXT} "
                            "tokens (set context_length in presets/remote_models.yaml)")
        if spec.api_key_env and api_key_from_env(spec.api_key_env) == "EMPTY":
            warnings.append(f"the environment variable {spec.api_key_env} is not set: requests carry no API key")
        return OpenAICompatModel(spec=spec, server=server, model_name=name, context_length=int(context),
                                 tokenizer=tokenizer, warnings=warnings)

    @staticmethod
    def _listing(server: RemoteServer, spec: ModelSpec, warnings: list[str]) -> list[dict[str, Any]]:
        try:
            data = server.request_json("GET", f"{server.base_url}/models", api_key_env=spec.api_key_env,
                                       read_s=30.0)
        except PlaygroundError as exc:
            if "HTTP 404" in str(exc) or "HTTP 405" in str(exc):
                warnings.append(f"the server at {server.base_url} has no /models listing")
                return []
            raise ModelError(str(exc)) from None
        return [m for m in (data.get("data") or []) if isinstance(m, dict)] if isinstance(data, dict) else []

    @staticmethod
    def _tokenizer(server: RemoteServer, spec: ModelSpec, name: str) -> tuple[str, int | None]:
        """Which tokenize endpoint answers: vLLM's /tokenize, llama-cpp-python's /extras/tokenize, none."""
        probes = (("vllm", f"{server.root_url}/tokenize", {"model": name, "prompt": "Hello", "content": "Hello"}),
                  ("llama_cpp_python", f"{server.root_url}/extras/tokenize", {"model": name, "input": "Hello"}))
        for kind, url, body in probes:
            try:
                data = server.request_json("POST", url, api_key_env=spec.api_key_env, body=body, read_s=30.0,
                                           retries=0)
                _token_count(data)
            except PlaygroundError:
                continue
            return kind, data.get("max_model_len") if isinstance(data.get("max_model_len"), int) else None
        return "estimate", None
