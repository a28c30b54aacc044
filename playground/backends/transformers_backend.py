"""transformers backend: local safetensors folders and GGUF files, run with PyTorch.

GGUF files are dequantised to fp32 by transformers' GGUF loader (needs `gguf` and `accelerate`),
so a Q4 file takes ~7x its size in memory: useful for looking inside a model and for exact
log-probabilities, not for speed (the llama_cpp backend is the fast path for GGUF).

Threads: `torch.set_num_threads` is process-wide. Loading a model with `threads=n` changes the
thread count of every torch model in the process; the last load wins.

Concurrency: one model serialises its own use with a private lock. A `compute_lock` shared by
the caller (one per device) is held while the model computes and is released and re-taken
after every token, so two panes on a 2-core CPU decode in turn, token by token, instead of
fighting over the cores.
"""
from __future__ import annotations

import gc
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import torch
from transformers import (
    AutoModelForCausalLM, AutoTokenizer, LogitsProcessor, LogitsProcessorList, MinPLogitsWarper,
    StoppingCriteria, StoppingCriteriaList, TemperatureLogitsWarper, TextStreamer, TopKLogitsWarper,
    TopPLogitsWarper,
)

from playground.backends.base import Chunk, Message, shared_prefix
from playground.devices import resolve_device
from playground.errors import ContextOverflowError, ModelError, PlaygroundError
from playground.models.hf_meta import is_hf_folder, read_hf_folder
from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams

log = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
# Bits per weight of common GGUF quantisations, to guess fp32 memory from the file size.
_GGUF_BITS = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.6, "Q5_1": 6.0, "Q5_K": 5.5,
    "Q5_0": 5.5, "Q4_1": 5.0, "Q4_K": 4.5, "Q4_0": 4.5, "IQ4": 4.3, "Q3_K": 3.4, "IQ3": 3.4,
    "Q2_K": 2.6, "IQ2": 2.4,
}
_DEFAULT_GGUF_BITS = 4.5
_LOAD_OVERHEAD = 1.15          # activations, KV cache, tokenizer


class ComputeLock(Protocol):
    """What the caller's compute lock must offer (threading.Lock does)."""

    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...


class TransformersBackend:
    """Loads GGUF files and HF safetensors folders with transformers; never runs remote code."""

    name = "transformers"
    devices = ("cpu", "cuda", "mps", "auto")

    def supports(self, spec: ModelSpec) -> bool:
        return spec.format in ("gguf", "hf")

    def load(self, spec: ModelSpec, *, device: str = "cpu", threads: int = 0, n_ctx: int = 0,
             compute_lock: ComputeLock | None = None) -> "TransformersModel":
        """Load spec on device (falls back to CPU with a warning); n_ctx 0 = the model's own limit."""
        path = check_model_path(spec)
        used, warning = resolve_device(device, self.name)
        tokenizer, model = _load_tokenizer_and_model(spec, path, used)
        if threads and threads > 0:
            torch.set_num_threads(threads)   # process-wide, see the module docstring
        model_ctx = _model_context_length(model) or spec.context_length or 2048
        context = min(n_ctx, model_ctx) if n_ctx and n_ctx > 0 else model_ctx
        return TransformersModel(spec=spec, device=used, context_length=context, tokenizer=tokenizer,
                                 model=model, compute_lock=compute_lock,
                                 warnings=[warning] if warning else [])

    def estimate_bytes(self, spec: ModelSpec) -> int:
        """fp32 weights (4 bytes a parameter, what this backend loads on CPU) plus some overhead."""
        n_params = spec.n_params
        if n_params is None and spec.format == "hf" and spec.path and is_hf_folder(Path(spec.path)):
            try:
                n_params = read_hf_folder(Path(spec.path)).get("n_params")
            except PlaygroundError:
                n_params = None
        if n_params:
            return int(n_params * 4 * _LOAD_OVERHEAD)
        size = spec.file_size or _path_size(spec.path)
        if not size:
            return 0
        if spec.format == "gguf":
            bits = _gguf_bits(spec.quantization or Path(spec.path or "").name)
            return int(size * 32 / bits * _LOAD_OVERHEAD)
        return int(size * 2 * _LOAD_OVERHEAD)   # safetensors are usually 16-bit: fp32 doubles them


def _gguf_bits(label: str) -> float:
    text = label.upper()
    for key in sorted(_GGUF_BITS, key=len, reverse=True):
        if key in text:
            return _GGUF_BITS[key]
    return _DEFAULT_GGUF_BITS


def _path_size(path: Path | None) -> int:
    if path is None:
        return 0
    p = Path(path)
    try:
        if p.is_file():
            return p.stat().st_size
        if p.is_dir():
            return sum(f.stat().st_size for f in p.glob("*.safetensors"))
    except OSError:
        return 0
    return 0


# --- loading ---------------------------------------------------------------------------------

def check_model_path(spec: ModelSpec) -> Path:
    """The spec's file or folder, checked before transformers sees it; problems -> ModelError with the fix."""
    if spec.path is None:
        hint = f" (download it first: {spec.hub_ref})" if spec.hub_ref else ""
        raise ModelError(f"{spec.display_name} is not on disk{hint}")
    path = Path(spec.path)
    if not path.exists():
        raise ModelError(f"{path} does not exist: check the path, or put the model in ./models")
    if spec.format == "gguf":
        if not path.is_file():
            raise ModelError(f"{path} is not a file: a GGUF model is one .gguf file")
        _check_gguf_file(path)
        return path
    if not path.is_dir():
        raise ModelError(f"{path} is not a folder: a Hugging Face model is a folder with config.json "
                         "and .safetensors files (for a single .gguf file use format gguf)")
    if not (path / "config.json").is_file():
        raise ModelError(f"{path} has no config.json: it is not a Hugging Face model folder "
                         "(download the whole repository, e.g. `hf download owner/repo --local-dir <folder>`)")
    if not is_hf_folder(path):
        raise ModelError(f"{path} has config.json but no .safetensors weights: download the model's "
                         "*.safetensors files (only safetensors are loaded, never pickled .bin files)")
    return path


def _check_gguf_file(path: Path) -> None:
    """Fail fast, with the catalog's precise message, on a foreign or truncated GGUF file
    (transformers would spend seconds parsing before failing with a less helpful error)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if magic != GGUF_MAGIC:
        raise ModelError(f"{path} is not a GGUF file (it does not start with 'GGUF'): re-download it")
    try:
        from playground.models.gguf_meta import gguf_info
    except ImportError:
        return
    gguf_info(path)        # raises ModelError naming the path for truncated or corrupt headers


def _load_tokenizer_and_model(spec: ModelSpec, path: Path, device: str) -> tuple[Any, Any]:
    """Tokenizer and model on device; every failure becomes a ModelError naming the path."""
    gguf = spec.format == "gguf"
    folder, extra = (path.parent, {"gguf_file": path.name}) if gguf else (path, {})
    on_cpu = device == "cpu"
    dtype: Any = torch.float32 if on_cpu else (torch.float16 if gguf else "auto")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, dtype=dtype, **extra)
        model.to(device)
        model.eval()
    except ImportError as exc:
        raise ModelError(f"loading {path} with transformers needs a missing package ({exc}): "
                         "run `pip install gguf accelerate`") from None
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, struct errors...
        raise ModelError(_load_failure_message(path, gguf, exc)) from exc
    return tokenizer, model


def _load_failure_message(path: Path, gguf: bool, exc: Exception) -> str:
    detail = f"{type(exc).__name__}: {exc}".strip()
    if len(detail) > 300:
        detail = detail[:300] + "..."
    if gguf:
        return (f"cannot load {path} with transformers ({detail}). The file may be truncated or "
                "corrupt (re-download it and compare its size), or its architecture or quantisation "
                "is not supported by transformers' GGUF loader (use the llama_cpp backend)")
    return (f"cannot load {path} with transformers ({detail}). Check that config.json and every "
            ".safetensors file are complete (re-download the repository), and that this "
            "transformers version supports the architecture")


def _model_context_length(model: Any) -> int | None:
    config = model.config
    candidates = [config]
    get_text = getattr(config, "get_text_config", None)
    if callable(get_text):
        candidates.append(get_text())
    for cfg in candidates:
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, key, None)
            if isinstance(value, int) and value > 0:
                return value
    return None


def _bos_prefix(tokenizer: Any) -> list[int]:
    """The ids the tokenizer puts before text by itself (usually [BOS] or nothing).

    Found by comparing an encoding with and without special tokens, so it follows the
    tokenizer's own `add_bos_token` behaviour whatever the model family.
    """
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(plain) + 1):
        if full[start:start + len(plain)] == plain:
            return list(full[:start])
    return []


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config):
        value = getattr(source, "eos_token_id", None) if source is not None else None
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(v for v in value if isinstance(v, int))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


# --- the loaded model --------------------------------------------------------------------------

@dataclass
class TransformersModel:
    """A transformers model in memory: chat rendering, token counts, streaming, log-probabilities."""

    spec: ModelSpec
    device: str
    context_length: int
    tokenizer: Any
    model: Any
    compute_lock: ComputeLock | None = None
    warnings: list[str] = field(default_factory=list)
    backend: str = "transformers"
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _prefix: list[int] = field(default_factory=list, repr=False)   # ids the tokenizer adds (BOS)
    _eos: set[int] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self._prefix = _bos_prefix(self.tokenizer)
        self._eos = _eos_ids(self.model, self.tokenizer)

    @property
    def bos_text(self) -> str:
        """What the tokenizer would put before text by itself ("" when it adds nothing)."""
        if not self._prefix:
            return ""
        return "".join(self.tokenizer.convert_ids_to_tokens(self._prefix))

    # -- text and tokens --

    def render_chat(self, messages: Sequence[Message]) -> str:
        """The chat template's text for messages, ending with the assistant's turn opening."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise PlaygroundError(f"{self.spec.display_name} has no chat template: it is a base model. "
                                  "Use a plain-text prompt (a base-model frame or few-shot mode) instead of chat")
        try:
            text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # jinja2 errors, e.g. a template that refuses a system message
            raise PlaygroundError(f"the chat template of {self.spec.display_name} rejected these messages: {exc}") from None
        return str(text)

    def encode(self, text: str) -> list[int]:
        """Exactly the tokens of this text: special tokens written in it are parsed, nothing is
        added (no BOS: the engine prepends `bos_text` where the model wants one, and chat
        templates such as Llama 3's write it themselves, so it is never doubled)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    # -- generation --

    def stream(self, prompt: str, sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        """Generate from the exact prompt text; chunks as text arrives, the last with finish_reason.

        Raises ContextOverflowError at once (before any chunk) if the prompt does not fit. If
        generation itself fails, the last chunk has finish_reason "error" and the next step of
        the iteration raises ModelError with the cause (also kept in `last_error`).
        """
        start = time.perf_counter()
        ids = self.encode(prompt)
        if len(ids) >= self.context_length:
            raise ContextOverflowError(
                f"the prompt has {len(ids)} tokens but {self.spec.display_name} is loaded with a context of "
                f"{self.context_length}: shorten the prompt or the conversation")
        max_new = max(1, min(sampling.max_new_tokens, self.context_length - len(ids)))
        return self._stream(ids, sampling, max_new, cancel, start)

    def _stream(self, ids: list[int], sampling: SamplingParams, max_new: int,
                cancel: threading.Event | None, start: float) -> Iterator[Chunk]:
        n_prompt = len(ids)
        if cancel is not None and cancel.is_set():
            yield Chunk("", n_prompt, 0, None, time.perf_counter() - start, "cancelled")
            return
        events: queue.Queue[tuple[str, Any, int]] = queue.Queue()
        streamer = _QueueStreamer(self.tokenizer, events, self._eos)
        interrupt = _Interrupt(cancel, self.compute_lock)
        stop_filter = StopFilter(sampling.stop)
        kwargs = self._generate_kwargs(ids, sampling, max_new, streamer, interrupt)
        worker = threading.Thread(target=self._generate, args=(kwargs, interrupt, events),
                                  name=f"generate:{self.spec.id}", daemon=True)
        ttft: float | None = None
        n_out, error = 0, None
        worker.start()
        try:
            while True:
                kind, payload, count = events.get()
                if kind == "done":
                    break
                if kind == "error":
                    error = payload
                    break
                n_out = count
                visible = stop_filter.feed(payload)
                if stop_filter.stopped:
                    interrupt.halt.set()
                if visible:
                    now = time.perf_counter() - start
                    ttft = now if ttft is None else ttft
                    yield Chunk(visible, n_prompt, n_out, ttft, now)
            tail = stop_filter.flush()
            now = time.perf_counter() - start
            if tail and ttft is None:
                ttft = now
            reason = self._finish_reason(error, stop_filter, interrupt, streamer, max_new)
            yield Chunk(tail, n_prompt, streamer.n_output, ttft, now, reason)
            if error is not None:     # Chunk has no message field: the reason follows as an exception
                raise ModelError(f"{self.spec.display_name} failed while generating ({self.last_error}); "
                                 "the partial answer above is kept") from error
        finally:
            interrupt.halt.set()       # a consumer that stops early must not leave the model decoding
            worker.join()

    def _generate_kwargs(self, ids: list[int], sampling: SamplingParams, max_new: int,
                         streamer: "_QueueStreamer", interrupt: "_Interrupt") -> dict[str, Any]:
        """generate() arguments. Sampling happens in _SeededSampler (see there): do_sample stays False."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "max_new_tokens": max_new,
            "do_sample": False,
            "repetition_penalty": float(sampling.repeat_penalty),
            "streamer": streamer,
            "stopping_criteria": StoppingCriteriaList([interrupt]),
            "pad_token_id": _pad_id(self.model, self.tokenizer),
        }
        if sampling.temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList([_SeededSampler(sampling)])
        if sampling.stop:
            kwargs["stop_strings"] = list(sampling.stop)
            kwargs["tokenizer"] = self.tokenizer
        return kwargs

    def _generate(self, kwargs: dict[str, Any], interrupt: "_Interrupt",
                  events: "queue.Queue[tuple[str, Any, int]]") -> None:
        """Worker thread: model lock, then compute lock (always in this order), then generate."""
        try:
            with self._lock:
                interrupt.take_compute()
                try:
                    with torch.inference_mode():
                        self.model.generate(**kwargs)
                finally:
                    interrupt.drop_compute()
        except Exception as exc:  # reported as finish_reason "error"; the message is kept
            log.exception("generation failed for %s", self.spec.id)
            events.put(("error", exc, 0))
            return
        events.put(("done", None, 0))

    def _finish_reason(self, error: Exception | None, stop_filter: "StopFilter", interrupt: "_Interrupt",
                       streamer: "_QueueStreamer", max_new: int) -> str:
        if error is not None:
            self.last_error = f"{type(error).__name__}: {error}"
            return "error"
        self.last_error = None
        if stop_filter.stopped:
            return "stop"
        if interrupt.cancelled:
            return "cancelled"
        if streamer.saw_eos:
            return "stop"
        if streamer.n_generated >= max_new:
            return "length"
        return "stop"          # transformers' StopStringCriteria ended it

    # -- scoring --

    def continuation_logprob(self, prompt: str, continuation: str) -> tuple[float, int]:
        """Sum of log P(continuation tokens | prompt) in one forward pass, and the token count.

        Boundary: prompt+continuation is tokenised as one text (the tokenisation the model would
        really see), and the continuation's tokens are those after the longest common prefix with
        the prompt's own tokenisation. When a token straddles the boundary (a merge across it),
        that token counts as continuation. Keep the space inside the continuation, not at the end
        of the prompt: "The capital of France is" + " Paris".
        """
        context = self.encode(prompt)
        whole = self.encode(prompt + continuation)
        boundary = shared_prefix(context, whole)
        if boundary >= len(whole):
            return 0.0, 0
        boundary = max(boundary, 1)          # the very first token has nothing to be predicted from
        if len(whole) > self.context_length:
            raise ContextOverflowError(
                f"prompt + continuation is {len(whole)} tokens but {self.spec.display_name} is loaded "
                f"with a context of {self.context_length}: shorten them")
        n_scored = len(whole) - boundary
        input_ids = torch.tensor([whole], dtype=torch.long, device=self.device)
        with self._lock:
            interrupt = _Interrupt(None, self.compute_lock)
            interrupt.take_compute()
            try:
                with torch.inference_mode():
                    logits = self._forward_logits(input_ids, n_scored + 1)
            finally:
                interrupt.drop_compute()
        with torch.inference_mode():
            logprobs = torch.log_softmax(logits[0, -(n_scored + 1):-1].float(), dim=-1)
            targets = torch.tensor(whole[boundary:], dtype=torch.long, device=logprobs.device)
            total = logprobs.gather(1, targets[:, None]).sum().item()
        return float(total), n_scored

    def _forward_logits(self, input_ids: torch.Tensor, keep: int) -> torch.Tensor:
        """Logits of the last `keep` positions (all positions if the model has no logits_to_keep)."""
        try:
            return self.model(input_ids=input_ids, logits_to_keep=keep).logits
        except TypeError:
            return self.model(input_ids=input_ids).logits

    @property
    def ran_on(self) -> str:
        return self.device

    @property
    def raw_continuation(self) -> bool:
        return True

    def close(self) -> None:
        with self._lock:
            self.model = None
            self.tokenizer = None
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()


def _pad_id(model: Any, tokenizer: Any) -> int | None:
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "pad_token_id", None), tokenizer.pad_token_id,
                  getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            return value
        if isinstance(value, (list, tuple)) and value:
            return int(value[0])
    return None


# --- generation helpers ---------------------------------------------------------------------------

class StopFilter:
    """Cuts streamed text at the first stop string, so the stop string is never shown.

    While streaming it holds back the last len(longest stop)-1 characters, which could be the
    start of a stop string completed by the next piece.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.hold = max((len(s) for s in self.stops), default=1) - 1
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        """Add piece; return the text that is now safe to show."""
        if self.stopped or not piece:
            return ""
        self.text += piece
        cut = self._first_stop()
        if cut is not None:
            self.stopped = True
            return self._emit_to(cut)
        return self._emit_to(len(self.text) - self.hold)

    def flush(self) -> str:
        """The held-back tail once generation has ended."""
        if self.stopped:
            return ""
        return self._emit_to(len(self.text))

    def _first_stop(self) -> int | None:
        search_from = max(0, self.emitted - self.hold)
        hits = [i for i in (self.text.find(s, search_from) for s in self.stops) if i >= 0]
        return min(hits) if hits else None

    def _emit_to(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        out = self.text[self.emitted:end]
        self.emitted = end
        return out


class _QueueStreamer(TextStreamer):
    """TextStreamer that queues (text, output token count) and notes whether EOS was produced.

    TextStreamer decodes with the tokenizer and releases whole words; counting happens in put(),
    which generate() calls with each new token (and once with the prompt, skipped).
    """

    def __init__(self, tokenizer: Any, events: "queue.Queue[tuple[str, Any, int]]", eos: set[int]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.events = events
        self.eos = eos
        self.n_generated = 0      # every generated id, EOS included (for the length limit)
        self.n_output = 0         # generated ids that are not EOS (what the answer cost)
        self.saw_eos = False

    def put(self, value: torch.Tensor) -> None:
        if not self.next_tokens_are_prompt:
            ids = value.reshape(-1).tolist()
            self.n_generated += len(ids)
            eos_here = sum(1 for t in ids if t in self.eos)
            self.n_output += len(ids) - eos_here
            self.saw_eos = self.saw_eos or eos_here > 0
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.events.put(("text", text, self.n_output))


class _Interrupt(StoppingCriteria):
    """Ends generation within one token when the user cancels or the stream is abandoned, and
    hands the shared compute lock to other panes between tokens."""

    def __init__(self, cancel: threading.Event | None, compute_lock: ComputeLock | None) -> None:
        self.cancel = cancel
        self.halt = threading.Event()
        self.compute_lock = compute_lock
        self.cancelled = False
        self._held = False

    def take_compute(self) -> None:
        if self.compute_lock is not None:
            self.compute_lock.acquire()
            self._held = True

    def drop_compute(self) -> None:
        if self.compute_lock is not None and self._held:
            self._held = False
            self.compute_lock.release()

    def _yield_compute(self) -> None:
        if self.compute_lock is None or not self._held:
            return
        self.drop_compute()
        time.sleep(0.0005)        # let a waiting pane wake up and take the lock (Lock is not fair)
        self.take_compute()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        self._yield_compute()
        stop = False
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled, stop = True, True
        elif self.halt.is_set():
            stop = True
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)


class _SeededSampler(LogitsProcessor):
    """Temperature / top-k / top-p / min-p with transformers' own warpers, then one draw from a
    private torch.Generator; returns scores that are -inf except the drawn token, so generate's
    greedy step (do_sample=False) picks it.

    Why not do_sample=True + torch.manual_seed: the global RNG is shared by every thread, and
    panes that decode in turn would consume each other's random numbers, so the same seed would
    not give the same text. A per-request generator makes seeds reproducible under concurrency.
    """

    def __init__(self, sampling: SamplingParams) -> None:
        warpers: list[LogitsProcessor] = []
        if sampling.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(float(sampling.temperature)))
        if sampling.top_k > 0:
            warpers.append(TopKLogitsWarper(top_k=int(sampling.top_k)))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=float(sampling.top_p)))
        if sampling.min_p > 0.0:
            warpers.append(MinPLogitsWarper(min_p=float(sampling.min_p)))
        self.warpers = LogitsProcessorList(warpers)
        seed = sampling.seed if sampling.seed is not None else int.from_bytes(os.urandom(4), "little")
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(int(seed))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        warped = self.warpers(input_ids, scores.float())
        probs = torch.softmax(warped, dim=-1).cpu()
        token = torch.multinomial(probs, num_samples=1, generator=self.generator).to(scores.device)
        chosen = torch.full_like(scores, -math.inf)
        chosen.scatter_(1, token, 0.0)
        return chosen
