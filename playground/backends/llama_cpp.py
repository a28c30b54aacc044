"""llama.cpp through llama-cpp-python: GGUF models on CPU or GPU.

Generation is our own short loop over `Llama.generate` (the token generator that
`create_completion` itself wraps) so we know the exact token count at every chunk, can stop
within one token when cancelled, and can hand the CPU to another model between tokens.
"""
from __future__ import annotations

import codecs
import math
import random
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from playground.backends.base import Chunk, Message
from playground.errors import ModelError, PlaygroundError
from playground.models.gguf_meta import GGUFInfo, gguf_info
from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams


def _stop_cut(text: str, stops: Sequence[str], search_from: int) -> int | None:
    """Index of the earliest stop string in text at or after search_from, or None."""
    hits = [i for i in (text.find(s, search_from) for s in stops) if i >= 0]
    return min(hits) if hits else None


@dataclass
class LlamaCppModel:
    """A loaded GGUF model. One generation at a time (a Llama context is not thread-safe)."""

    spec: ModelSpec
    info: GGUFInfo
    llm: object
    device: str
    context_length: int
    compute_lock: threading.Lock | None = None
    warnings: list[str] = field(default_factory=list)
    backend: str = "llama_cpp"
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _primed: list[int] | None = None   # the prompt whose tokens[:-1] are in the KV cache

    @property
    def bos_text(self) -> str:
        return (self.info.bos_token or "") if self.info.add_bos else ""

    def render_chat(self, messages: Sequence[Message]) -> str:
        from playground.prompting.render import render_chat_template

        if not self.info.chat_template:
            raise PlaygroundError(f"{self.spec.id} is a base model (no chat template in its GGUF): "
                                  "it gets plain-text prompt frames, not chat messages")
        return render_chat_template(self.info.chat_template, list(messages),
                                    bos_token=self.info.bos_token or "", eos_token=self.info.eos_token or "")

    def tokenize(self, text: str) -> list[int]:
        """Exactly the tokens of this text: special tokens parsed, no BOS added."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    def _prefill(self, tokens: list[int]) -> None:
        """Evaluate all prompt tokens but the last, unless exactly this prompt is already in the KV cache.

        `Llama.generate` then always decodes the last prompt token alone, so the arithmetic is the
        same whether the prompt was cached or not: greedy output never depends on what ran before
        (re-using a partial prefix would change the batch split and, with it, the float sums).
        A repeated prompt (regenerate, self-consistency samples) skips the prefill entirely.
        """
        if tokens == self._primed:
            return
        self._primed = None
        self.llm.reset()
        if len(tokens) > 1:
            with self.compute_lock or nullcontext():
                self.llm.eval(tokens[:-1])
        self._primed = list(tokens)

    def _step(self, gen: Iterator[int]) -> int | None:
        with self.compute_lock or nullcontext():
            return next(gen, None)

    def stream(self, prompt: str, sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        import llama_cpp

        tokens = self.tokenize(prompt)
        n_prompt = len(tokens)
        max_new = min(sampling.max_new_tokens, self.context_length - n_prompt)
        if max_new < 1:
            raise PlaygroundError(f"the prompt is {n_prompt} tokens, the context holds {self.context_length}")
        stops = tuple(s for s in sampling.stop if s)
        hold = max((len(s) for s in stops), default=1) - 1
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        vocab = self.llm._model.vocab
        start = time.perf_counter()
        ttft: float | None = None
        text, emitted, n_out, finish = "", 0, 0, "length"
        cut: int | None = None
        with self._lock:
            self._prefill(tokens)
            self.llm.set_seed(sampling.seed if sampling.seed is not None else random.randrange(2**31))
            gen = self.llm.generate(tokens, top_k=sampling.top_k, top_p=sampling.top_p, min_p=sampling.min_p,
                                    temp=sampling.temperature, repeat_penalty=sampling.repeat_penalty)
            try:
                while n_out < max_new:
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    token = self._step(gen)
                    if token is None or llama_cpp.llama_vocab_is_eog(vocab, token):
                        finish = "stop"
                        break
                    n_out += 1
                    text += decoder.decode(self.llm.detokenize([token]))
                    cut = _stop_cut(text, stops, max(0, emitted - hold)) if stops else None
                    end = cut if cut is not None else len(text) - hold
                    piece = text[emitted:end] if end > emitted else ""
                    if piece:
                        emitted = end
                        if ttft is None:
                            ttft = time.perf_counter() - start
                    if cut is not None:
                        finish = "stop"
                    if piece or cut is not None:
                        yield Chunk(piece, n_prompt, n_out, ttft, time.perf_counter() - start)
                    if cut is not None:
                        break
            finally:
                gen.close()
            tail = ""
            if cut is None:   # flush what was held back for stop-string matching
                tail = text[emitted:] + decoder.decode(b"", final=True)
                tail_cut = _stop_cut(tail, stops, 0) if stops else None
                tail = tail[:tail_cut] if tail_cut is not None else tail
        yield Chunk(tail, n_prompt, n_out, ttft, time.perf_counter() - start, finish_reason=finish)

    def continuation_logprob(self, prompt: str, continuation: str) -> tuple[float, int]:
        """One batch decode of prompt + continuation; log-softmax at each continuation position."""
        p_tokens = self.tokenize(prompt)
        full = self.tokenize(prompt + continuation)
        shared = 0
        while shared < min(len(p_tokens), len(full)) and p_tokens[shared] == full[shared]:
            shared += 1
        shared = max(1, shared)   # the first token has no distribution to score it with
        cont = full[shared:]
        if not cont:
            return 0.0, 0
        if len(full) > self.context_length:
            raise PlaygroundError(f"prompt + continuation ({len(full)} tokens) exceed the context "
                                  f"of {self.context_length}")
        total = 0.0
        with self._lock, self.compute_lock or nullcontext():
            llm = self.llm
            self._primed = None
            llm.reset()
            llm._ctx.kv_cache_clear()
            if shared > 1:
                llm.eval(full[: shared - 1])
            rows_in = full[shared - 1: -1]       # each row predicts the next token
            n_vocab = llm.n_vocab()
            for i in range(0, len(rows_in), llm.n_batch):
                batch = rows_in[i: i + llm.n_batch]
                llm._batch.set_batch(batch=batch, n_past=llm.n_tokens, logits_all=True)
                llm._ctx.decode(llm._batch)
                logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(batch), n_vocab)).astype(np.float64)
                targets = np.asarray(cont[i: i + len(batch)])
                peak = logits.max(axis=1, keepdims=True)
                log_z = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
                total += float((logits[np.arange(len(batch)), targets] - log_z).sum())
                llm.n_tokens += len(batch)
            llm.reset()
            llm._ctx.kv_cache_clear()
        if not math.isfinite(total):
            raise PlaygroundError("log-probability is not finite (numerical problem in the model output)")
        return total, len(cont)

    def close(self) -> None:
        with self._lock:
            closer = getattr(self.llm, "close", None)
            if closer:
                closer()


class LlamaCppBackend:
    """Loads GGUF files with llama-cpp-python."""

    name = "llama_cpp"
    devices = ("cpu", "gpu")

    def supports(self, spec: ModelSpec) -> bool:
        return spec.format == "gguf"

    def estimate_bytes(self, spec: ModelSpec) -> int:
        return int((spec.file_size or 0) * 1.2) + 64 * 1024 * 1024

    def load(self, spec: ModelSpec, *, device: str, threads: int, n_ctx: int,
             compute_lock: threading.Lock | None = None) -> LlamaCppModel:
        from llama_cpp import Llama

        if spec.path is None:
            raise ModelError(f"{spec.id} has no file on disk yet")
        info = gguf_info(spec.path)   # fails fast, with a clear message, on foreign or truncated files
        ctx = min(n_ctx, info.context_length or n_ctx)
        try:
            llm = Llama(model_path=str(spec.path), n_ctx=ctx, n_threads=threads, n_threads_batch=threads,
                        n_gpu_layers=-1 if device == "gpu" else 0, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {spec.path}: {exc}. The file may be corrupt or "
                             "use an architecture this llama.cpp build does not know.") from None
        return LlamaCppModel(spec=spec, info=info, llm=llm, device=device, context_length=ctx,
                             compute_lock=compute_lock)
