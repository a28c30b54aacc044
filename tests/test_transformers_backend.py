"""transformers backend through the real bundled SmolLM2 GGUF (dequantised by transformers), plus
device resolution. The model is loaded once per module: GGUF parsing in Python takes a while."""
from __future__ import annotations

import math
import shutil
import threading
import time
from pathlib import Path

import pytest

from playground.backends import get_backend
from playground.backends.base import Chunk, LoadedModel
from playground.devices import gpu_summary, resolve_device
from playground.errors import ContextOverflowError, ModelError, PlaygroundError
from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from playground.backends.transformers_backend import (  # noqa: E402
    StopFilter, TransformersBackend, TransformersModel,
)

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
POEM = [{"role": "user", "content": "Write a long poem about the sea."}]


def gguf_spec(path: Path, **changes: object) -> ModelSpec:
    fields: dict = dict(id="smollm2-135m-instruct", display_name="SmolLM2 135M Instruct", source="bundled",
                        backends=("llama_cpp", "transformers"), path=path, format="gguf")
    fields.update(changes)
    return ModelSpec(**fields)


@pytest.fixture(scope="module")
def smol_tf(bundled_gguf: Path) -> TransformersModel:
    # One torch thread: on a busy 2-core machine two OpenMP threads wait on each other and a
    # 0.5 s generation can take 10 s; one thread keeps the timings stable. set_num_threads is
    # process-wide, so the previous value is restored for the tests that run after this module.
    before = torch.get_num_threads()
    model = TransformersBackend().load(gguf_spec(bundled_gguf), device="cpu", threads=1, n_ctx=2048)
    yield model
    model.close()
    torch.set_num_threads(before)


def collect(model: TransformersModel, prompt: str, sampling: SamplingParams,
            cancel: threading.Event | None = None) -> list[Chunk]:
    return list(model.stream(prompt, sampling, cancel))


# --- the real model ---------------------------------------------------------------------------

def test_loaded_model_meets_the_protocol(smol_tf: TransformersModel) -> None:
    assert isinstance(smol_tf, LoadedModel)
    assert smol_tf.backend == "transformers" and smol_tf.device == "cpu"
    assert smol_tf.context_length == 2048           # min(n_ctx, the model's 8192)
    assert smol_tf.warnings == []
    assert next(smol_tf.model.parameters()).dtype == torch.float32   # GGUF dequantised to fp32


def test_render_chat_and_exact_token_count(smol_tf: TransformersModel) -> None:
    prompt = smol_tf.render_chat(QUESTION)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    ids = smol_tf.encode(prompt)
    assert ids[0] == smol_tf.tokenizer.convert_tokens_to_ids("<|im_start|>")   # special token parsed
    assert ids.count(ids[0]) == 3                                              # nothing added in front
    assert smol_tf.count_tokens(prompt) == len(ids)
    assert smol_tf.bos_text == ""                   # this tokenizer adds no BOS by itself


def test_greedy_stream_fields_and_length(smol_tf: TransformersModel) -> None:
    prompt = smol_tf.render_chat(POEM)
    n_prompt = smol_tf.count_tokens(prompt)
    chunks = collect(smol_tf, prompt, SamplingParams(max_new_tokens=8))
    final = chunks[-1]
    assert final.finish_reason == "length"
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert all(c.n_prompt_tokens == n_prompt for c in chunks)
    assert final.n_output_tokens == 8
    counts = [c.n_output_tokens for c in chunks]
    assert counts == sorted(counts) and 0 < counts[0] <= 8
    assert final.ttft_s is not None and 0 < final.ttft_s <= final.elapsed_s
    text = "".join(c.text for c in chunks)
    assert text.strip() and "<|im_end|>" not in text


def test_eos_gives_stop(smol_tf: TransformersModel) -> None:
    chunks = collect(smol_tf, smol_tf.render_chat(QUESTION), SamplingParams(max_new_tokens=40))
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].n_output_tokens < 40
    assert "Paris" in "".join(c.text for c in chunks)


def test_same_seed_same_sample(smol_tf: TransformersModel) -> None:
    prompt = smol_tf.render_chat(POEM)
    hot = SamplingParams(temperature=1.5, top_p=0.98, top_k=100, min_p=0.01, max_new_tokens=6, seed=7)
    first = "".join(c.text for c in collect(smol_tf, prompt, hot))
    second = "".join(c.text for c in collect(smol_tf, prompt, hot))
    other = "".join(c.text for c in collect(smol_tf, prompt, hot.with_changes(seed=8)))
    assert first == second
    assert other != first, "a different seed should give a different sample"


def test_stop_string_stops_and_is_hidden(smol_tf: TransformersModel) -> None:
    prompt = smol_tf.render_chat(QUESTION)
    chunks = collect(smol_tf, prompt, SamplingParams(max_new_tokens=40, stop=(" Paris",)))
    text = "".join(c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop"
    assert "Paris" not in text and text.strip()
    assert chunks[-1].n_output_tokens <= 10


def test_cancel_stops_within_a_token(smol_tf: TransformersModel) -> None:
    prompt = smol_tf.render_chat(POEM)
    cancel = threading.Event()
    seen_at_cancel = None
    chunks = []
    for chunk in smol_tf.stream(prompt, SamplingParams(max_new_tokens=200), cancel):
        chunks.append(chunk)
        if seen_at_cancel is None and chunk.text:
            cancel.set()
            seen_at_cancel = chunk.n_output_tokens
    assert chunks[-1].finish_reason == "cancelled"
    assert chunks[-1].n_output_tokens <= seen_at_cancel + 2


def test_cancel_before_start(smol_tf: TransformersModel) -> None:
    cancel = threading.Event()
    cancel.set()
    chunks = collect(smol_tf, "Hello", SamplingParams(max_new_tokens=5), cancel)
    assert [c.finish_reason for c in chunks] == ["cancelled"] and chunks[0].n_output_tokens == 0


def test_abandoned_stream_releases_the_model(smol_tf: TransformersModel) -> None:
    stream = smol_tf.stream(smol_tf.render_chat(POEM), SamplingParams(max_new_tokens=200))
    next(stream)
    stream.close()                                   # must stop the worker, not leave it decoding
    assert smol_tf._lock.acquire(timeout=5)
    smol_tf._lock.release()


def test_compute_lock_interleaves_two_panes(smol_tf: TransformersModel) -> None:
    """Two models sharing one compute lock decode in turn: both make progress at the same time."""
    lock = threading.Lock()
    panes = [TransformersModel(spec=smol_tf.spec, device="cpu", context_length=2048, tokenizer=smol_tf.tokenizer,
                               model=smol_tf.model, compute_lock=lock) for _ in range(2)]
    prompt = smol_tf.render_chat(POEM)
    times: dict[int, list[float]] = {0: [], 1: []}

    def run(i: int) -> None:
        for chunk in panes[i].stream(prompt, SamplingParams(max_new_tokens=10)):
            times[i].append(time.perf_counter())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert times[0] and times[1]
    assert times[1][0] < times[0][-1] and times[0][0] < times[1][-1]   # overlapping, not one after the other
    assert lock.acquire(blocking=False)
    lock.release()


def test_generation_failure_ends_with_error_then_raises(smol_tf: TransformersModel) -> None:
    class Broken:
        config = smol_tf.model.config
        generation_config = smol_tf.model.generation_config

        def generate(self, **kwargs: object) -> None:
            raise RuntimeError("boom")

    broken = TransformersModel(spec=smol_tf.spec, device="cpu", context_length=2048,
                               tokenizer=smol_tf.tokenizer, model=Broken())
    chunks: list[Chunk] = []
    with pytest.raises(ModelError, match="boom"):
        for chunk in broken.stream("Hello", SamplingParams(max_new_tokens=4)):
            chunks.append(chunk)
    assert [c.finish_reason for c in chunks] == ["error"]
    assert broken.last_error == "RuntimeError: boom"


def test_continuation_logprob(smol_tf: TransformersModel) -> None:
    good, n_good = smol_tf.continuation_logprob("The capital of France is", " Paris")
    bad, n_bad = smol_tf.continuation_logprob("The capital of France is", " banana")
    assert math.isfinite(good) and good < 0 and n_good >= 1
    assert math.isfinite(bad) and n_bad >= 1
    assert good > bad
    assert smol_tf.continuation_logprob("The capital of France is", "") == (0.0, 0)


def test_context_overflow_is_raised_before_streaming(smol_tf: TransformersModel) -> None:
    long_prompt = "word " * 2100
    with pytest.raises(ContextOverflowError, match="context"):
        smol_tf.stream(long_prompt, SamplingParams(max_new_tokens=4))


def test_gpu_request_falls_back_with_warning(bundled_gguf: Path, smol_tf: TransformersModel,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: nothing to fall back from")
    loaded: list[str] = []

    def fake_load(spec: ModelSpec, path: Path, device: str) -> tuple[object, object]:
        loaded.append(device)                        # skip the slow GGUF parse: reuse the loaded model
        return smol_tf.tokenizer, smol_tf.model

    monkeypatch.setattr("playground.backends.transformers_backend._load_tokenizer_and_model", fake_load)
    model = TransformersBackend().load(gguf_spec(bundled_gguf), device="cuda", threads=1, n_ctx=512)
    assert loaded == ["cpu"] and model.device == "cpu"
    assert len(model.warnings) == 1 and model.warnings[0].startswith("CUDA requested but")
    assert "running on CPU" in model.warnings[0]


def test_base_model_has_no_chat(smol_tf: TransformersModel) -> None:
    base = TransformersModel(spec=smol_tf.spec, device="cpu", context_length=2048, tokenizer=smol_tf.tokenizer,
                             model=smol_tf.model)
    original = smol_tf.tokenizer.chat_template
    try:
        smol_tf.tokenizer.chat_template = None
        with pytest.raises(PlaygroundError, match="base model"):
            base.render_chat(QUESTION)
    finally:
        smol_tf.tokenizer.chat_template = original


# --- errors before transformers is reached --------------------------------------------------

def test_truncated_gguf_names_the_path(tmp_path: Path, bundled_gguf: Path) -> None:
    broken = tmp_path / "broken.gguf"
    with open(bundled_gguf, "rb") as src, open(broken, "wb") as dst:
        dst.write(src.read(2_000_000))
    with pytest.raises(ModelError, match=str(broken)):
        TransformersBackend().load(gguf_spec(broken), device="cpu", threads=1, n_ctx=512)


def test_foreign_file_and_missing_paths(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04 not a gguf at all")
    backend = TransformersBackend()
    with pytest.raises(ModelError, match="not a GGUF file"):
        backend.load(gguf_spec(junk), device="cpu", threads=1, n_ctx=64)
    with pytest.raises(ModelError, match="does not exist"):
        backend.load(gguf_spec(tmp_path / "nope.gguf"), device="cpu", threads=1, n_ctx=64)
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        backend.load(gguf_spec(folder, format="hf"), device="cpu", threads=1, n_ctx=64)
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="no .safetensors"):
        backend.load(gguf_spec(folder, format="hf"), device="cpu", threads=1, n_ctx=64)
    with pytest.raises(ModelError, match="not on disk"):
        backend.load(gguf_spec(None, hub_ref="hf:o/r/x.gguf"), device="cpu", threads=1, n_ctx=64)


def test_corrupt_gguf_header_names_the_path(tmp_path: Path, bundled_gguf: Path) -> None:
    broken = tmp_path / "garbage-header.gguf"
    shutil.copyfile(bundled_gguf, broken)
    with open(broken, "r+b") as fh:       # keep the magic, destroy the key/value section
        fh.seek(24)
        fh.write(b"\xff" * 4096)
    with pytest.raises(ModelError, match=str(broken)):
        TransformersBackend().load(gguf_spec(broken), device="cpu", threads=1, n_ctx=64)


def test_gguf_transformers_cannot_read_gives_model_error(tmp_path: Path) -> None:
    """A well-formed GGUF that transformers rejects (unknown architecture) fails as a ModelError
    naming the path and pointing to the llama_cpp backend."""
    import numpy as np
    from gguf import GGUFWriter

    odd = tmp_path / "odd-arch.gguf"
    writer = GGUFWriter(odd, "zzzzz")
    writer.add_context_length(64)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match=str(odd)) as err:
        TransformersBackend().load(gguf_spec(odd), device="cpu", threads=1, n_ctx=64)
    assert "llama_cpp backend" in str(err.value)


def test_estimate_bytes(bundled_gguf: Path) -> None:
    backend = TransformersBackend()
    assert backend.estimate_bytes(gguf_spec(bundled_gguf, n_params=135_000_000)) >= 135_000_000 * 4
    by_size = backend.estimate_bytes(gguf_spec(bundled_gguf, quantization="Q4_1"))
    assert by_size > 5 * bundled_gguf.stat().st_size          # Q4 dequantised to fp32 grows ~6x


def test_registry_and_stop_filter() -> None:
    assert isinstance(get_backend("transformers"), TransformersBackend)
    f = StopFilter(("\nQ:", "###"))
    shown = f.feed("Answer: 4") + f.feed("2\n") + f.feed("Q: next")
    assert f.stopped and shown == "Answer: 42" and f.flush() == ""
    g = StopFilter(())
    assert g.feed("abc") == "abc" and g.flush() == ""


# --- devices ------------------------------------------------------------------------------------

def test_resolve_device_for_transformers() -> None:
    assert resolve_device("cpu", "transformers") == ("cpu", None)
    if not torch.cuda.is_available():
        used, warning = resolve_device("cuda", "transformers")
        assert used == "cpu" and warning.startswith("CUDA requested but") and "running on CPU" in warning
        if torch.version.cuda is None:          # a CPU-only torch: the notice names the reinstall command
            from playground.devices import INSTALL_TORCH_CUDA

            assert INSTALL_TORCH_CUDA in warning
        if not torch.backends.mps.is_available():
            assert resolve_device("auto", "transformers") == ("cpu", None)
            used, warning = resolve_device("mps", "transformers")
            assert used == "cpu" and "MPS requested" in warning
    with pytest.raises(PlaygroundError, match="unknown device"):
        resolve_device("tpu", "transformers")


def test_resolve_device_for_llama_cpp_and_summary() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    used, warning = resolve_device("gpu", "llama_cpp")
    if llama_cpp.llama_supports_gpu_offload():
        assert (used, warning) == ("gpu", None)
    else:
        assert used == "cpu" and "GPU" in warning
    assert resolve_device("cpu", "llama_cpp") == ("cpu", None)
    summary = gpu_summary()
    assert "transformers:" in summary and "llama.cpp:" in summary
