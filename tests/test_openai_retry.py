"""openai_compat without a model: retries, timeouts, errors, the request gate, log-probability
maths and remote catalog entries, against scripted stub servers on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playground.backends.openai_compat import CHAT_HEADER, OpenAICompatBackend, parse_chat_form, render_chat_form
from playground.backends.remote_http import SlotGate
from playground.errors import PlaygroundError
from playground.models.catalog import Catalog, build_catalog
from playground.models.remote import add_remote_model, load_remote_entries, remote_spec
from playground.sampling import SamplingParams
from tests.llama_server import StubServer, chat_events, free_port, send_json, send_sse

REPO = Path(__file__).resolve().parent.parent
LISTING = {"object": "list", "data": [{"id": "stub-model", "max_model_len": 1024}]}
FAST = dict(retries=2, backoff_s=0.01)


def routes(generate, tokenize=None, completions=None):
    """A stub handler: /v1/models lists one model; generation and tokenize are scripted."""
    def handler(req):
        if req.path == "/v1/models":
            return send_json(req, 200, LISTING)
        if req.path == "/v1/chat/completions":
            return generate(req)
        if req.path == "/v1/completions" and completions is not None:
            return completions(req)
        if req.path == "/tokenize" and tokenize is not None:
            return tokenize(req)
        return send_json(req, 404, {"detail": "Not Found"})
    return handler


@pytest.fixture
def stub_factory():
    stubs = []

    def make(handler):
        stub = StubServer(handler)
        stubs.append(stub)
        return stub
    yield make
    for stub in stubs:
        stub.close()


def load(stub_or_url, backend=None, api_key_env=None, **options):
    backend = backend or OpenAICompatBackend()
    url = stub_or_url if isinstance(stub_or_url, str) else stub_or_url.url
    backend.configure(url, **{**FAST, **options})
    spec = remote_spec(url, "stub-model", api_key_env=api_key_env, is_chat=True)
    return backend.load(spec)


def run(model, prompt=None, sampling=SamplingParams(max_new_tokens=16), cancel=None):
    prompt = prompt or render_chat_form([{"role": "user", "content": "hi"}])
    chunks = list(model.stream(prompt, sampling, cancel))
    return "".join(c.text for c in chunks), chunks


def gen_paths(stub):
    return [r for r in stub.requests if r[1].endswith("completions")]


# --- chat form -------------------------------------------------------------------------------

def test_chat_form_round_trips_and_is_stable():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ünïcode & \"quotes\""}]
    text = render_chat_form(messages)
    assert text.startswith(CHAT_HEADER) and text == render_chat_form(list(messages))
    assert "Ünïcode" in text                     # readable, not \\u-escaped
    assert parse_chat_form(text) == messages
    assert parse_chat_form("Q: plain text\nA:") is None
    with pytest.raises(PlaygroundError, match="not valid JSON"):
        parse_chat_form(CHAT_HEADER + "[{broken")


# --- retries and errors ----------------------------------------------------------------------

def test_503_then_success_is_retried_and_shown(stub_factory):
    calls = []

    def generate(req):
        calls.append(1)
        if len(calls) == 1:
            return send_json(req, 503, {"error": {"message": "loading model"}}, {"Retry-After": "0"})
        send_sse(req, chat_events(["Hel", "lo"], usage={"prompt_tokens": 7, "completion_tokens": 2}))

    stub = stub_factory(routes(generate))
    text, chunks = run(load(stub))
    assert text == "Hello" and len(calls) == 2
    notices = [n for c in chunks for n in (c.notices or ())]
    assert any("HTTP 503" in n and "loading model" in n and "retrying" in n for n in notices)
    final = chunks[-1]
    assert final.finish_reason == "stop" and final.n_output_tokens == 2 and final.n_prompt_tokens == 7
    assert not any("estimate" in n for n in final.notices)       # usage figures came from the server
    assert stub.requests[-1][2]["stream_options"] == {"include_usage": True}


def test_429_until_attempts_run_out(stub_factory):
    stub = stub_factory(routes(lambda req: send_json(req, 429, {"error": "slow down"})))
    with pytest.raises(PlaygroundError) as info:
        run(load(stub, retries=2))
    message = str(info.value)
    assert stub.url in message and "HTTP 429" in message and "slow down" in message and "3 attempts" in message
    assert len(gen_paths(stub)) == 3


def test_client_errors_are_not_retried(stub_factory):
    stub = stub_factory(routes(lambda req: send_json(req, 400, {"error": {"message": "max_tokens is too large"}})))
    with pytest.raises(PlaygroundError, match="HTTP 400: max_tokens is too large"):
        run(load(stub))
    assert len(gen_paths(stub)) == 1


def test_refused_key_names_the_variable_never_the_key(stub_factory, monkeypatch):
    monkeypatch.setenv("STUB_KEY_FOR_TEST", "s3cret-value")
    stub = stub_factory(routes(lambda req: send_json(req, 401, {"error": "Invalid API key"})))
    with pytest.raises(PlaygroundError) as info:
        run(load(stub, api_key_env="STUB_KEY_FOR_TEST"))
    message = str(info.value)
    assert "STUB_KEY_FOR_TEST" in message and "HTTP 401" in message and "s3cret-value" not in message
    sent = [r for r in stub.requests if r[1] == "/v1/chat/completions"]
    assert len(sent) == 1


def test_no_retry_once_tokens_were_streamed(stub_factory):
    def generate(req):   # two pieces, then the connection ends without a finish reason or [DONE]
        req.send_response(200)
        req.send_header("content-type", "text/event-stream")
        req.send_header("connection", "close")
        req.end_headers()
        req.close_connection = True
        for event in chat_events(["one", " two"])[:2]:
            req.wfile.write(f"data: {json.dumps(event)}\n\n".encode())

    stub = stub_factory(routes(generate))
    model = load(stub)
    seen = []
    with pytest.raises(PlaygroundError, match="after 2 tokens"):
        for chunk in model.stream(render_chat_form([{"role": "user", "content": "hi"}]), SamplingParams()):
            seen.append(chunk.text)
    assert "".join(seen) == "one two"            # what was streamed stays with the pane
    assert len(gen_paths(stub)) == 1


def test_silent_server_times_out_without_retry(stub_factory):
    release = threading.Event()

    def generate(req):
        release.wait(10)
        send_json(req, 500, {"error": "late"})

    stub = stub_factory(routes(generate))
    try:
        with pytest.raises(PlaygroundError, match=r"no answer from .*chat/completions for 0.5 s"):
            run(load(stub, read_timeout_s=0.5))
        assert len(gen_paths(stub)) == 1
    finally:
        release.set()


def test_server_down_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAICompatBackend()
    backend.configure(url, **FAST)
    with pytest.raises(PlaygroundError, match=rf"cannot reach the inference server at {url} \(connection refused\)"):
        backend.load(remote_spec(url, "m", context_length=512))


def test_strict_server_without_stream_options(stub_factory):
    def generate(req):
        if "stream_options" in req.body:
            return send_json(req, 400, {"error": "extra field stream_options not permitted"})
        send_sse(req, chat_events(["ok"], finish="length"))

    stub = stub_factory(routes(generate))
    text, chunks = run(load(stub))
    assert text == "ok" and chunks[-1].finish_reason == "length"
    assert any("estimate" in n for n in chunks[-1].notices)
    assert "stream_options" not in gen_paths(stub)[-1][2]


def test_sampling_and_stop_are_sent(stub_factory):
    stub = stub_factory(routes(lambda req: send_sse(req, chat_events(["x"]))))
    run(load(stub), sampling=SamplingParams(temperature=0.7, top_k=0, min_p=0.0, seed=11, stop=("\nQ:",),
                                            max_new_tokens=9))
    body = gen_paths(stub)[-1][2]
    assert body["seed"] == 11 and body["stop"] == ["\nQ:"] and body["max_tokens"] == 9
    assert body["temperature"] == 0.7 and body["top_k"] == 0 and body["min_p"] == 0.0
    assert body["messages"] == [{"role": "user", "content": "hi"}] and body["model"] == "stub-model"


def test_plain_text_prompt_goes_to_completions(stub_factory):
    def completions(req):
        send_sse(req, [{"choices": [{"text": " Paris", "finish_reason": None}]},
                       {"choices": [{"text": "", "finish_reason": "stop"}]}])

    stub = stub_factory(routes(lambda req: None, completions=completions))
    model = load(stub)
    text, chunks = run(model, prompt="Q: capital of France?\nA:")
    assert text == " Paris" and chunks[-1].finish_reason == "stop"
    assert gen_paths(stub)[-1][1] == "/v1/completions"
    assert gen_paths(stub)[-1][2]["prompt"] == "Q: capital of France?\nA:"


def test_cancel_during_backoff(stub_factory):
    stub = stub_factory(routes(lambda req: send_json(req, 503, {"error": "busy"})))
    model = load(stub, retries=5, backoff_s=30.0)
    cancel = threading.Event()
    for chunk in model.stream(render_chat_form([{"role": "user", "content": "hi"}]), SamplingParams(), cancel):
        if chunk.notices and any("retrying" in n for n in chunk.notices):
            cancel.set()
    assert chunk.finish_reason == "cancelled"


# --- the gate ----------------------------------------------------------------------------------

def test_slot_gate_is_fifo_with_positions():
    gate = SlotGate(1)
    assert gate.acquire()
    first, second = gate.join(), gate.join()
    assert gate.wait(first, 0.01) == 1 and gate.wait(second, 0.01) == 2
    gate.release()
    assert gate.wait(second, 0.01) == 2          # not its turn: first is ahead
    assert gate.wait(first, 0.01) == 0
    assert gate.wait(second, 0.01) == 1
    gate.set_limit(2)
    assert gate.wait(second, 0.01) == 0 and gate.state() == (2, 0)
    gate.leave(gate.join())
    assert gate.state() == (2, 0)


def test_limit_holds_and_the_queue_is_visible(stub_factory):
    release, lock = threading.Event(), threading.Lock()
    counts = {"active": 0, "max": 0}

    def generate(req):
        with lock:
            counts["active"] += 1
            counts["max"] = max(counts["max"], counts["active"])
        release.wait(20)
        with lock:
            counts["active"] -= 1
        send_sse(req, chat_events(["done"]))

    stub = stub_factory(routes(generate))
    model = load(stub, max_concurrency=2)
    notices: list[list[str]] = [[] for _ in range(4)]
    texts = [""] * 4

    def pane(i):
        for chunk in model.stream(render_chat_form([{"role": "user", "content": f"q{i}"}]), SamplingParams()):
            texts[i] += chunk.text
            notices[i].extend(chunk.notices or ())

    threads = [threading.Thread(target=pane, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while (counts["active"] < 2 or sum(any("in the queue" in n for n in ns) for ns in notices) < 2) \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    queued = [ns for ns in notices if any("in the queue" in n for n in ns)]
    assert counts["active"] == 2 and len(queued) == 2
    assert {next(n for n in ns if "in the queue" in n).split("number ")[1][0] for ns in queued} == {"1", "2"}
    release.set()
    for t in threads:
        t.join(20)
    assert texts == ["done"] * 4 and counts["max"] == 2
    assert model.server.gate.state() == (0, 0)


# --- log-probabilities -------------------------------------------------------------------------

def _echo_answer(req, shift: bool):
    """Echo logprobs for 'The capital of France is Paris' (tokens of 4/8/3/7/3/6 chars)."""
    prompt = req.body["prompt"]
    if not req.body.get("echo"):
        return send_json(req, 200, {"choices": [{"text": " Paris", "logprobs": {
            "tokens": [" Paris"], "text_offset": [len(prompt)], "token_logprobs": [-0.25]}}]})
    tokens, offsets, pos = [], [], 0
    for piece in ["The", " capital", " of", " France", " is", " Paris", " Paris"][: 7]:
        if pos >= len(prompt):
            break
        tokens.append(piece)
        offsets.append(pos)
        pos += len(piece)
    values = [None, -9.0, -1.0, -2.0, -0.5, (-7.0 if shift else -0.25), -3.0][: len(tokens)]
    send_json(req, 200, {"choices": [{"text": prompt + " x", "logprobs": {
        "tokens": tokens, "text_offset": offsets, "token_logprobs": values}}]})


@pytest.mark.parametrize("shift", [False, True])
def test_continuation_logprob_sums_the_continuation(stub_factory, shift):
    stub = stub_factory(routes(lambda req: None, completions=lambda req: _echo_answer(req, shift)))
    model = load(stub)
    if shift:
        with pytest.raises(PlaygroundError) as info:
            model.continuation_logprob("The capital of France", " is Paris")
        assert str(info.value).startswith(f"log-probabilities are not supported by this server ({stub.url})")
        assert "misaligned" in str(info.value)
    else:
        total, n = model.continuation_logprob("The capital of France", " is Paris")
        assert n == 2 and total == pytest.approx(-0.75)
        assert model.continuation_logprob("The capital", " of") == (pytest.approx(-1.0), 1)


def test_logprobs_refused_by_the_server(stub_factory):
    stub = stub_factory(routes(lambda req: None,
                               completions=lambda req: send_json(req, 400, {"error": "logprobs not supported"})))
    with pytest.raises(PlaygroundError, match=r"^log-probabilities are not supported by this server \(http://127"):
        load(stub).continuation_logprob("a", "b")


# --- loading, tokenizing, catalog --------------------------------------------------------------

def test_load_reads_context_and_uses_the_server_tokenizer(stub_factory):
    def tokenize(req):
        if "messages" in req.body:
            return send_json(req, 200, {"count": 42, "max_model_len": 1024})
        send_json(req, 200, {"tokens": list(range(len(req.body["prompt"].split()))), "max_model_len": 1024})

    stub = stub_factory(routes(lambda req: None, tokenize=tokenize))
    backend = OpenAICompatBackend()
    model = backend.load(remote_spec(stub.url, "stub-model"))
    assert model.context_length == 1024 and model.tokenizer == "vllm" and model.bos_text == ""
    assert model.raw_continuation is False and model.device == "remote" and not model.warnings
    assert model.count_tokens("one two three") == 3
    assert model.count_tokens(render_chat_form([{"role": "user", "content": "hi"}])) == 42


def test_no_tokenizer_means_a_labelled_estimate(stub_factory):
    stub = stub_factory(routes(lambda req: None))
    model = OpenAICompatBackend().load(remote_spec(stub.url, "stub-model", context_length=777))
    assert model.context_length == 777 and model.tokenizer == "estimate"
    assert model.count_tokens("x" * 40) == 10
    assert any("estimates" in w for w in model.warnings)


def test_catalog_reads_remote_models_and_survives_a_down_server(tmp_path):
    down = f"http://127.0.0.1:{free_port()}/v1"
    (tmp_path / "remote_models.yaml").write_text(f"""
models:
  - id: explicit-remote
    base_url: http://127.0.0.1:{free_port()}/v1
    model: some/model
    is_chat: false
    context_length: 2048
    max_concurrency: 2
  - base_url: {down}
    discover: true
""")
    catalog = build_catalog(tmp_path / "no-models", tmp_path, include_hub=False)
    spec = catalog.get("explicit-remote")
    assert spec.source == "remote" and spec.format == "openai" and spec.backends == ("openai_compat",)
    assert spec.is_chat is False and spec.context_length == 2048 and spec.available
    assert any(down in p and "connection refused" in p for p in catalog.problems)


def test_bad_remote_file_is_a_problem_line(tmp_path):
    (tmp_path / "remote_models.yaml").write_text("models:\n  - base_url: http://127.0.0.1:1/v1\n    modle: x\n")
    catalog = build_catalog(tmp_path / "none", tmp_path, include_hub=False)
    assert any("remote_models.yaml" in p and "modle" in p for p in catalog.problems)


def test_shipped_example_file_declares_nothing():
    assert load_remote_entries(REPO / "presets" / "remote_models.yaml") == []


def test_add_remote_model_at_run_time(stub_factory):
    stub = stub_factory(routes(lambda req: None))
    catalog = Catalog()
    spec = add_remote_model(catalog, stub.url, "stub-model", max_concurrency=3)
    assert catalog.get(spec.id) == spec and spec.context_length == 1024 and spec.remote_model == "stub-model"
    assert add_remote_model(catalog, stub.url).id == spec.id and len(catalog) == 1   # first listed, same entry
    with pytest.raises(PlaygroundError, match="connection refused"):
        add_remote_model(catalog, f"http://127.0.0.1:{free_port()}/v1", "x")


def test_cli_ask_with_a_down_server_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = subprocess.run([sys.executable, "app.py", "ask", "hi", "--backend", "openai_compat", "--base-url", url,
                          "--model", "m", "--json"], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PLAYGROUND_DB": str(tmp_path / "db.sqlite"),
                              "PLAYGROUND_MODELS": str(tmp_path / "models")})
    assert out.returncode == 2 and url in out.stderr and "connection refused" in out.stderr
    assert "Traceback" not in out.stderr
