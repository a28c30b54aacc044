"""The llama.cpp backend on the real bundled model: streaming, stops, seeds, cancel, log-probs."""
from __future__ import annotations

import threading
import time

import pytest

from playground.errors import ModelError
from playground.models.catalog import spec_from_gguf
from playground.models.gguf_meta import read_gguf_info
from playground.sampling import SamplingParams

CHAT = [{"role": "user", "content": "Name three colours."}]


def _collect(model, prompt, sampling, cancel=None):
    chunks = list(model.stream(prompt, sampling, cancel))
    return "".join(c.text for c in chunks), chunks


def test_chat_template_render_matches_chatml(smol):
    text = smol.render_chat(CHAT)
    assert text.startswith("<|im_start|>system\n")
    assert text.endswith("<|im_start|>user\nName three colours.<|im_end|>\n<|im_start|>assistant\n")
    assert smol.bos_text == ""      # SmolLM2 does not add BOS
    assert smol.count_tokens("<|im_start|>") == 1   # special tokens are parsed, not spelled out


def test_greedy_stream_reports_counts_and_timings(smol):
    prompt = smol.render_chat(CHAT)
    text, chunks = _collect(smol, prompt, SamplingParams(max_new_tokens=12))
    last = chunks[-1]
    assert text.strip()
    assert last.finish_reason in ("length", "stop")
    assert last.n_prompt_tokens == smol.count_tokens(prompt)
    assert 1 <= last.n_output_tokens <= 12
    assert last.ttft_s is not None and 0 < last.ttft_s <= last.elapsed_s
    assert [c.n_output_tokens for c in chunks] == sorted(c.n_output_tokens for c in chunks)
    again, _ = _collect(smol, prompt, SamplingParams(max_new_tokens=12))
    assert again == text            # greedy is deterministic


def test_same_seed_same_sample(smol):
    prompt = smol.render_chat([{"role": "user", "content": "Write a word."}])
    hot = SamplingParams(temperature=1.2, top_k=0, max_new_tokens=10, seed=1234)
    a, _ = _collect(smol, prompt, hot)
    b, _ = _collect(smol, prompt, hot)
    assert a == b
    outs = {_collect(smol, prompt, hot.with_changes(seed=s))[0] for s in range(6)}
    assert len(outs) > 1             # different seeds do sample differently


def test_stop_string_stops_and_is_not_shown(smol):
    prompt = "1, 2, 3, 4, 5, 6,"
    free, _ = _collect(smol, prompt, SamplingParams(max_new_tokens=12))
    assert " 9" in free or "9" in free, free
    text, chunks = _collect(smol, prompt, SamplingParams(max_new_tokens=24, stop=("9",)))
    assert "9" not in text
    assert chunks[-1].finish_reason == "stop"
    assert free.startswith(text)


def test_cancel_stops_within_a_second(smol):
    prompt = smol.render_chat([{"role": "user", "content": "Tell me a long story about a dragon."}])
    cancel = threading.Event()
    stream = smol.stream(prompt, SamplingParams(max_new_tokens=2000), cancel)
    next(stream)
    cancel.set()
    t0 = time.perf_counter()
    rest = list(stream)
    assert time.perf_counter() - t0 < 1.0
    assert rest[-1].finish_reason == "cancelled"
    assert rest[-1].n_output_tokens < 2000


def test_continuation_logprob_prefers_the_plausible(smol):
    good, n_good = smol.continuation_logprob("The capital of France is", " Paris")
    bad, n_bad = smol.continuation_logprob("The capital of France is", " banana")
    assert n_good >= 1 and n_bad >= 1
    assert good < 0 and bad < 0
    assert good > bad
    # scoring leaves the model usable for generation
    text, _ = _collect(smol, "The capital of France is", SamplingParams(max_new_tokens=4))
    assert text


def test_multi_token_logprob_matches_step_by_step(smol):
    prompt, cont = "One, two, three,", " four, five"
    total, n = smol.continuation_logprob(prompt, cont)
    assert n >= 3
    # chain rule: log p(a b) = log p(a) + log p(b | a)
    tokens = smol.tokenize(prompt + cont)[len(smol.tokenize(prompt)):]
    first = smol.llm.detokenize(tokens[:1]).decode()
    part1, _ = smol.continuation_logprob(prompt, first)
    part2, _ = smol.continuation_logprob(prompt + first, cont[len(first):])
    assert total == pytest.approx(part1 + part2, abs=1e-3)


def test_prompt_longer_than_context_is_refused(smol):
    from playground.engine import check_context
    from playground.errors import ContextOverflowError

    with pytest.raises(ContextOverflowError, match="context of 2,048"):
        check_context(smol, "word " * 5000, SamplingParams())
    n, clipped, notice = check_context(smol, "word " * 2000, SamplingParams(max_new_tokens=512))
    assert clipped.max_new_tokens == 2048 - n and "limited" in notice


def test_load_errors_name_the_file(tmp_path, bundled_gguf):
    from playground.backends.llama_cpp import LlamaCppBackend

    info = read_gguf_info(bundled_gguf)
    bad = tmp_path / "fake.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    spec = spec_from_gguf("fake", "fake", "local", info)
    spec = spec.__class__(**{**spec.__dict__, "path": bad})
    with pytest.raises(ModelError, match="fake.gguf"):
        LlamaCppBackend().load(spec, device="cpu", threads=1, n_ctx=256)


@pytest.mark.parametrize("batched", [True, False], ids=["batch", "slots"])
def test_shared_prompt_prefix_is_reused_without_changing_the_answer(smol, batched):
    """Few-shot prompts share their exemplars: whole prefill chunks are kept from the previous
    prompt, and the answer is exactly the one a cold cache gives (in the shared batch, and in the
    one-context-per-generation slots used where a model cannot batch)."""
    from playground.backends.llama_cpp import PREFILL_CHUNK

    exemplars = "".join(f"Q: What is {i} plus {i}?\nA: {2 * i}.\n\n" for i in range(1, 30))
    first, second = exemplars + "Q: What is 3 plus 4?\nA:", exemplars + "Q: What is 5 plus 9?\nA:"
    assert smol.count_tokens(exemplars) > 3 * PREFILL_CHUNK
    greedy = SamplingParams(max_new_tokens=8)
    smol.batching = batched
    try:
        smol.forget_prompts()                   # cold: nothing to re-use
        cold, _ = _collect(smol, second, greedy)
        _collect(smol, first, greedy)           # leaves the exemplars in a slot / sequence
        if batched:
            warm_seq = next(i for i, p in smol._batch.sequences_primed.items() if p == smol.tokenize(first))
        else:
            warm_slot = max(smol._slots, key=lambda s: len(s.primed or []))
        warm, _ = _collect(smol, second, greedy)
        assert warm == cold
        if batched:   # the same sequence served it, re-using the prefix
            assert smol._batch.sequences_primed[warm_seq] == smol.tokenize(second)
        else:
            assert warm_slot.primed == smol.tokenize(second)   # the same slot served it, re-using the prefix
    finally:
        smol.batching = True
