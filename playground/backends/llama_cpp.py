"""llama.cpp through llama-cpp-python: GGUF models on CPU or GPU.

One loaded model (weights, tokenizer) serves several generations at once:

- normally through its *batch* (`backends/llama_batch.py`): one context whose sequences are the
  generations in flight, decoded together one step at a time, prompts in fixed 64-token chunks
  interleaved with the others' decoding (shortest prompt first);
- where that context cannot be made, through *slots*: each its own llama.cpp context (own KV
  cache) on the shared weights, running the single-sequence computation token by token under
  the device's core share; `continuation_logprob` (lab scoring) always uses a slot.

Either way a greedy answer never depends on what ran before or beside it: prompts are decoded in
the same fixed chunks at the same positions (whole chunks shared with the previous prompt are
re-used), and batched rows are computed independently (docs/architecture.md, measured).

Our own token loop (rather than `create_completion`) gives the exact token count at every chunk,
stops within one token when cancelled, and cuts stop strings without ever showing them.
"""
from __future__ import annotations

import codecs
import math
import random
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from playground.backends.base import Chunk, Message
from playground.backends.llama_batch import (BATCH_WIDTH, END, PREFILL_CHUNK, BatchDecoder, reusable_prefix,
                                             shared_prefix)
from playground.errors import ModelError, PlaygroundError
from playground.models.gguf_meta import GGUFInfo, gguf_info
from playground.models.spec import ModelSpec
from playground.sampling import SamplingParams

DEFAULT_SLOTS = 4
TURN_S = 0.05        # how long a generation keeps its cores while others wait (see _Turn)
PENALTY_LAST_N = 64   # llama.cpp's default window for the repeat penalty


def _stop_cut(text: str, stops: Sequence[str], search_from: int) -> int | None:
    """Index of the earliest stop string in text at or after search_from, or None."""
    hits = [i for i in (text.find(s, search_from) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _follow_share(ctx: Any, share: Any, held: int) -> None:
    """Run the context's next step on the threads `held` cores of the share allow now (fewer when
    other processes keep cores busy, see backends/free_cores.py): a C call setting two ints."""
    n = share.threads(held)
    ctx.set_n_threads(n, n)


class _Turn:
    """A generation's claim on the CPU between decode steps: it keeps its cores for up to
    TURN_S while others wait (as long as it likes when none does), and re-balances when the
    number of generations on the device changes. Threads of the context follow the claim and
    the cores other processes leave free."""

    def __init__(self, share: Any, ctx: Any) -> None:
        self.share, self.ctx = share, ctx
        self.held, self.since = 0, 0.0

    def take(self) -> None:
        if self.share is None:
            return
        fair = self.share.fair_share()
        if self.held and (self.held != fair or
                          (time.perf_counter() - self.since >= TURN_S and self.share.has_waiters())):
            self.give_back()
        if not self.held:
            self.held = self.share.acquire(fair)
            self.since = time.perf_counter()
        _follow_share(self.ctx, self.share, self.held)

    def give_back(self) -> None:
        if self.held:
            self.share.release(self.held)
            self.held = 0


@dataclass
class _Slot:
    """One llama.cpp context on the shared weights, and the prompt its KV cache holds."""

    ctx: Any        # llama_cpp._internals.LlamaContext
    batch: Any      # llama_cpp._internals.LlamaBatch
    primed: list[int] | None = None


def _make_sampler(sampling: SamplingParams, n_vocab: int) -> Any:
    """The sampler chain llama-cpp-python builds for `generate`, from our SamplingParams."""
    from llama_cpp._internals import LlamaSampler

    sampler = LlamaSampler()
    if sampling.repeat_penalty != 1.0:
        sampler.add_penalties(n_vocab, PENALTY_LAST_N, sampling.repeat_penalty, 0.0, 0.0)
    if sampling.temperature <= 0:
        sampler.add_greedy()
        return sampler
    seed = sampling.seed if sampling.seed is not None else random.randrange(2**31)
    if sampling.top_k > 0:
        sampler.add_top_k(sampling.top_k)
    sampler.add_top_p(sampling.top_p, 1)
    sampler.add_min_p(sampling.min_p, 1)
    sampler.add_temp(sampling.temperature)
    sampler.add_dist(seed)
    return sampler


@dataclass
class LlamaCppModel:
    """A loaded GGUF model; up to `max_slots` generations at once on one copy of the weights."""

    spec: ModelSpec
    info: GGUFInfo
    llm: Any                         # llama_cpp.Llama: weights, tokenizer, and slot 0's context
    device: str
    context_length: int
    compute_lock: Any = None   # a backends.cache.CoreShare
    max_slots: int = DEFAULT_SLOTS
    warnings: list[str] = field(default_factory=list)
    backend: str = "llama_cpp"
    placement: Any = None    # llama_placement.Placement: where llama.cpp really put the layers
    _slots: list[_Slot] = field(default_factory=list)
    _free: list[_Slot] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False
    batching: bool = True            # same-model generations share one batched context
    _batch: BatchDecoder | None = None
    _spread: list[BatchDecoder] = field(default_factory=list)   # more single-thread ones, under contention
    _pick_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        slot = _Slot(ctx=self.llm._ctx, batch=self.llm._batch)
        self._slots.append(slot)
        self._free.append(slot)

    @property
    def ran_on(self) -> str:
        """Where it really runs, for a pane's figures: device and layers on the GPU."""
        return self.placement.describe() if self.placement is not None else self.device

    @property
    def raw_continuation(self) -> bool:
        return True

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

    # --- slots ---------------------------------------------------------------------------------

    def _new_slot(self) -> _Slot:
        from llama_cpp._internals import LlamaBatch, LlamaContext

        ctx = LlamaContext(model=self.llm._model, params=self.llm.context_params, verbose=False)
        batch = LlamaBatch(n_tokens=self.llm.n_batch, embd=0, n_seq_max=1, verbose=False)
        return _Slot(ctx=ctx, batch=batch)

    @contextmanager
    def _slot(self, prompt: Sequence[int] | None = None) -> Iterator[_Slot]:
        """Borrow a slot, preferring one that already holds this prompt; make one if all are busy."""
        with self._cond:
            while True:
                if self._closed:
                    raise PlaygroundError(f"{self.spec.id} was unloaded")
                if self._free:
                    slot = max(reversed(self._free), key=lambda s: shared_prefix(s.primed, prompt))
                    self._free.remove(slot)
                    break
                if len(self._slots) < self.max_slots:
                    slot = None
                    break
                self._cond.wait()
        if slot is None:
            try:
                slot = self._new_slot()
            except (ValueError, RuntimeError) as exc:
                raise ModelError(f"could not create another llama.cpp context for {self.spec.id}: {exc}") from None
            with self._cond:
                self._slots.append(slot)
        try:
            yield slot
        finally:
            with self._cond:
                self._free.append(slot)
                self._cond.notify()

    def _decode(self, slot: _Slot, tokens: Sequence[int], n_past: int, logits_all: bool = False) -> None:
        """Decode tokens at positions n_past.. in n_batch chunks, each under the compute lock."""
        n_batch = self.llm.n_batch
        for i in range(0, len(tokens), n_batch):
            chunk = list(tokens[i: i + n_batch])
            slot.batch.set_batch(batch=chunk, n_past=n_past + i, logits_all=logits_all)
            with self._all_cores(slot):
                slot.ctx.decode(slot.batch)

    @contextmanager
    def _all_cores(self, slot: _Slot) -> Iterator[None]:
        """Every core of the device (a prefill, a scoring pass), on as many threads as are free."""
        if self.compute_lock is None:
            yield
            return
        with self.compute_lock:
            _follow_share(slot.ctx, self.compute_lock, self.compute_lock.cores)
            yield

    def _next_token(self, slot: _Slot, sampler: Any, token: int, pos: int, turn: _Turn) -> int:
        """Decode one token and sample the next, inside this generation's turn on the CPU."""
        slot.batch.set_batch(batch=[token], n_past=pos, logits_all=False)
        turn.take()
        slot.ctx.decode(slot.batch)
        return sampler.sample(slot.ctx, -1)

    def _prefill(self, slot: _Slot, tokens: list[int]) -> None:
        """KV cache := tokens[:-1], computed the same way every time (see the module docstring).

        The prompt is decoded in fixed chunks of PREFILL_CHUNK tokens at fixed positions, so a chunk
        is the same computation whether it runs now or ran for an earlier prompt: whole chunks shared
        with the previous prompt (few-shot exemplars, earlier turns) are kept, the rest re-decoded.
        """
        if slot.primed == tokens:
            slot.ctx.kv_cache_seq_rm(-1, len(tokens) - 1, -1)   # drop the last answer, keep the prompt
            return
        target = tokens[:-1]
        keep = reusable_prefix(slot.primed, tokens)
        slot.primed = None
        if keep:
            slot.ctx.kv_cache_seq_rm(-1, keep, -1)
        else:
            slot.ctx.kv_cache_clear()
        for start in range(keep, len(target), PREFILL_CHUNK):
            self._decode(slot, target[start: start + PREFILL_CHUNK], start)
        slot.primed = list(tokens)

    # --- generation ----------------------------------------------------------------------------

    def stream(self, prompt: str, sampling: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        tokens = self.tokenize(prompt)
        n_prompt = len(tokens)
        if not tokens:
            raise PlaygroundError("the prompt is empty")
        max_new = min(sampling.max_new_tokens, self.context_length - n_prompt)
        if max_new < 1:
            raise PlaygroundError(f"the prompt is {n_prompt} tokens, the context holds {self.context_length}")
        stops = tuple(s for s in sampling.stop if s)
        hold = max((len(s) for s in stops), default=1) - 1
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        start = time.perf_counter()
        ttft: float | None = None
        text, emitted, n_out = "", 0, 0
        cut: int | None = None
        outcome = {"finish": "length"}
        batch = self._batch_decoder()
        source = (self._batched_tokens(batch, tokens, sampling, max_new, cancel, outcome) if batch is not None
                  else self._slot_tokens(tokens, sampling, max_new, cancel, outcome))
        try:
            for token in source:
                n_out += 1
                text += decoder.decode(self.llm.detokenize([token]))
                cut = _stop_cut(text, stops, max(0, emitted - hold)) if stops else None
                end = cut if cut is not None else len(text) - hold
                piece = text[emitted:end] if end > emitted else ""
                if piece:
                    emitted = end
                    if ttft is None:
                        ttft = time.perf_counter() - start
                if piece or cut is not None:
                    yield Chunk(piece, n_prompt, n_out, ttft, time.perf_counter() - start)
                if cut is not None:
                    outcome["finish"] = "stop"
                    break
        finally:
            source.close()   # a stop string or a consumer that left: the generation ends now
        tail = ""
        if cut is None:   # flush what was held back for stop-string matching
            tail = text[emitted:] + decoder.decode(b"", final=True)
            tail_cut = _stop_cut(tail, stops, 0) if stops else None
            tail = tail[:tail_cut] if tail_cut is not None else tail
        yield Chunk(tail, n_prompt, n_out, ttft, time.perf_counter() - start, finish_reason=outcome["finish"])

    def _slot_tokens(self, tokens: list[int], sampling: SamplingParams, max_new: int,
                     cancel: threading.Event | None, outcome: dict[str, str]) -> Iterator[int]:
        """Sampled token ids from a slot of its own (the path where a model cannot batch)."""
        import llama_cpp

        vocab = self.llm._model.vocab
        with self._slot(tokens) as slot:
            sampler = _make_sampler(sampling, self.llm.n_vocab())
            turn = _Turn(self.compute_lock, slot.ctx)
            if self.compute_lock is not None:
                self.compute_lock.enter()
            try:
                self._prefill(slot, tokens)
                next_input, pos, n_out = tokens[-1], len(tokens) - 1, 0
                while n_out < max_new:
                    if cancel is not None and cancel.is_set():
                        outcome["finish"] = "cancelled"
                        return
                    token = self._next_token(slot, sampler, next_input, pos, turn)
                    if llama_cpp.llama_vocab_is_eog(vocab, token):
                        outcome["finish"] = "stop"
                        return
                    next_input, pos, n_out = token, pos + 1, n_out + 1
                    yield token
            except RuntimeError as exc:   # llama_decode failed (e.g. out of KV space)
                slot.primed = None
                raise PlaygroundError(f"llama.cpp failed while generating with {self.spec.id}: {exc}") from None
            finally:
                turn.give_back()
                if self.compute_lock is not None:
                    self.compute_lock.leave()
                sampler.close()

    def _batched_tokens(self, batch: BatchDecoder, tokens: list[int], sampling: SamplingParams, max_new: int,
                        cancel: threading.Event | None, outcome: dict[str, str]) -> Iterator[int]:
        """Sampled token ids from this model's shared batch (see backends/llama_batch.py)."""
        try:
            with self._pick_lock:    # picked and submitted at once: the next pick sees this one's load
                batch = self._spread_decoder(batch, tokens)
                gen = batch.submit(tokens, _make_sampler(sampling, self.llm.n_vocab()), max_new, cancel)
        except RuntimeError as exc:   # it stopped or closed since _batch_decoder handed it out
            raise PlaygroundError(f"{exc}: send again ({self.spec.id})") from None
        try:
            while True:
                item = gen.next(lambda: batch.alive)
                if item is END:
                    break
                if cancel is not None and cancel.is_set():   # at once, not after the batch's next step
                    outcome["finish"] = "cancelled"
                    return
                yield item
        finally:
            gen.stop()   # a no-op once it has ended; else the scheduler drops it at its next step
        if gen.error:
            raise PlaygroundError(f"{gen.error} ({self.spec.id})")
        outcome["finish"] = gen.finish

    def _batch_decoder(self) -> BatchDecoder | None:
        """This model's shared batch, made on first use (under contention a generation may run on
        one of the decoders it spreads over instead, `_spread_decoder`); None where it cannot batch
        (the slots then serve every generation, as before, also once an error has stopped the batch)."""
        if not self.batching:
            return None
        dead = None
        with self._cond:
            if self._batch is not None and not self._batch.alive:   # an error stopped it: slots from now on
                dead, self._batch, self.batching = self._batch, None, False
                self.warnings.append(f"generations on {self.spec.id} are not batched any more (its batch "
                                     f"stopped: {dead.failure or 'its thread ended'})")
            elif self._batch is None and not self._closed:
                try:
                    self._batch = BatchDecoder(self.llm, self.context_length, share=self.compute_lock)
                except (ValueError, RuntimeError) as exc:
                    self.batching = False
                    self.warnings.append(f"generations on {self.spec.id} are not batched ({exc})")
            batch = self._batch
        if dead is not None:
            dead.close()
        return batch

    def _spread_decoder(self, main: BatchDecoder, tokens: Sequence[int]) -> BatchDecoder:
        """Where other processes leave one thread's worth of the cores, generations spread over up
        to `CoreShare.spread()` decoders of one thread each (two contexts beside two busy loops get a
        core where one gets 2/3: backends/cache.py, docs/benchmarks.md): the least loaded, or one
        at most one generation busier that already holds the prompt (a twin in flight, or an idle
        sequence's cache). Each decoder computes every row as a solo run would, so the answers do
        not depend on which one runs them."""
        share = self.compute_lock
        n = share.spread() if share is not None and hasattr(share, "spread") else 1
        if n <= 1 and not self._spread:
            return main
        with self._cond:
            dead = [d for d in self._spread if not d.alive]
            self._spread = [d for d in self._spread if d.alive]
            decoders = [main] + self._spread[: max(0, n - 1)]
        for d in dead:
            d.close()
        loads = {id(d): d.load for d in decoders}
        if len(decoders) < n and min(loads.values()) > 0:     # every decoder busy: one more, made once
            try:
                extra = BatchDecoder(self.llm, self.context_length, width=-(-BATCH_WIDTH // n) + 1, share=share)
            except (ValueError, RuntimeError) as exc:
                self.warnings.append(f"generations on {self.spec.id} share one context ({exc})")
            else:
                with self._cond:
                    keep = not self._closed and len(self._spread) < n - 1   # no other reader made one meanwhile
                    if keep:
                        self._spread.append(extra)
                        decoders.append(extra)
                        loads[id(extra)] = 0
                if not keep:
                    extra.close()
        if len(decoders) == 1:
            return main
        near = [d for d in decoders if loads[id(d)] <= min(loads.values()) + 1]
        return max(near, key=lambda d: (d.reusable(tokens), -loads[id(d)]))

    def continuation_logprob(self, prompt: str, continuation: str) -> tuple[float, int]:
        """One decode of prompt + continuation with logits at every continuation position."""
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
        n_vocab, n_batch = self.llm.n_vocab(), self.llm.n_batch
        total = 0.0
        with self._slot() as slot:
            slot.primed = None
            slot.ctx.kv_cache_clear()
            self._decode(slot, full[: shared - 1], 0)
            rows_in = full[shared - 1: -1]       # row i predicts cont[i]
            for i in range(0, len(rows_in), n_batch):
                batch = rows_in[i: i + n_batch]
                slot.batch.set_batch(batch=batch, n_past=shared - 1 + i, logits_all=True)
                with self._all_cores(slot):
                    slot.ctx.decode(slot.batch)
                    logits = np.ctypeslib.as_array(slot.ctx.get_logits(), shape=(len(batch), n_vocab))
                    logits = logits.astype(np.float64)
                targets = np.asarray(cont[i: i + len(batch)])
                peak = logits.max(axis=1, keepdims=True)
                log_z = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
                total += float((logits[np.arange(len(batch)), targets] - log_z).sum())
            slot.ctx.kv_cache_clear()
        if not math.isfinite(total):
            raise PlaygroundError("log-probability is not finite (numerical problem in the model output)")
        return total, len(cont)

    def forget_prompts(self) -> None:
        """Idle slots and sequences drop the prompts they remember: benchmarks measure cold prefills."""
        with self._cond:
            for slot in self._free:
                slot.primed = None
            batches = [b for b in [self._batch, *self._spread] if b is not None]
        for batch in batches:
            batch.forget()

    @property
    def n_slots(self) -> int:
        return len(self._slots)

    def close(self) -> None:
        """Free every context, then the weights (waits for generations in flight to end)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._free) == len(self._slots), timeout=30)
            self._closed = True
            extra = self._slots[1:]
            self._slots, self._free = self._slots[:1], []
            batches = [b for b in [self._batch, *self._spread] if b is not None]
            self._batch, self._spread = None, []
        for batch in batches:
            batch.close()
        for slot in extra:
            slot.batch.close()
            slot.ctx.close()
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
             compute_lock: Any = None) -> LlamaCppModel:
        """compute_lock: the device's backends.cache.CoreShare (None: no sharing)."""
        from llama_cpp import Llama

        if spec.path is None:
            raise ModelError(f"{spec.id} has no file on disk yet")
        from playground.backends.llama_placement import capture_load_log, gpu_layers_for, parse_load_log

        info = gguf_info(spec.path)   # fails fast, with a clear message, on foreign or truncated files
        ctx = min(n_ctx, info.context_length or n_ctx)
        n_gpu_layers, notices = gpu_layers_for(spec, ctx) if device == "gpu" else (0, [])
        try:
            with capture_load_log() as log:
                llm = Llama(model_path=str(spec.path), n_ctx=ctx, n_threads=threads, n_threads_batch=threads,
                            n_gpu_layers=n_gpu_layers, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {spec.path}: {exc}. The file may be corrupt or "
                             "use an architecture this llama.cpp build does not know.") from None
        placement = parse_load_log(log, int(info.metadata.get(f"{info.architecture}.block_count") or 0))
        if device == "gpu" and placement.device != "gpu":
            notices.append("GPU requested but llama.cpp put no layer on the GPU: running on CPU")
        return LlamaCppModel(spec=spec, info=info, llm=llm, device=placement.device, context_length=ctx,
                             compute_lock=compute_lock, warnings=notices, placement=placement)
