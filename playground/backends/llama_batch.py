"""Same-model generations decoded together: one llama.cpp context, one sequence per generation.

Panes on one model share each step instead of taking turns: measured on 2 cores, 4 sequences in
one batch take 2.5-3x the time of one, not 4x. The saving is in the steps, not the arithmetic: on
1 thread a batched row costs what it costs alone (the small model's kernels are bound by
arithmetic), so on 2 threads it comes from fewer graph computations and their thread barriers,
and from twin prompts read once (docs/benchmarks.md, "Where the batched context's per-token cost
goes"). A `BatchDecoder` owns:

- one context with `width` sequences, each with its own KV stream (`kv_unified=False`), so a
  sequence's cache cells sit at the positions a solo run would use;
- a scheduler thread that, step by step, decodes one prompt chunk of the waiting generation
  with the shortest prompt left (prompts are cut into PREFILL_CHUNK-token chunks at fixed
  positions, as in a solo run), then one token of every generation that is decoding, and hands
  each sampled token to its generation's queue (a prompt chunk has a decode call of its own:
  riding with the decoding tokens changed a seeded sample, see docs/architecture.md). A short
  prompt therefore shows its first token after its own prefill, not after everyone's, and
  prefills interleave with the others' decoding.

Greedy answers do not depend on the company: llama.cpp's CPU kernels compute each row of a batch
on its own (the weight matmuls as one dot product per row, attention per sequence stream), and
`bench/batch_determinism.py` checks it for 2, 3, 4 and 6 sequences joining and leaving at
different steps (every token equal to the solo run; see docs/architecture.md).

A sequence remembers the prompt its cache holds: the same prompt again (Regenerate,
self-consistency's later samples) skips the prefill, and a prompt sharing whole chunks with it
(few-shot exemplars) re-uses those chunks. Two generations in flight with the same prompt
(self-consistency beside few-shot CoT sends exactly its prompt) read it once: the second waits
and copies the first's KV stream (`_copy_prompt`).

No reader waits forever: whatever ends the scheduler thread (an unexpected error included) ends
every generation in flight with that error (`_fail`), and a reader also watches that the thread
is alive (`Generation.next`), in case even that clean-up failed.
"""
from __future__ import annotations

import ctypes
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from playground.backends.base import shared_prefix

BATCH_WIDTH = 6            # the Playground shows at most six panes
PREFILL_CHUNK = 64         # prompts are decoded in chunks of this size at fixed positions
END = object()             # put on a generation's queue when it has ended
WATCH_S = 1.0              # how often a waiting reader checks that the scheduler is still alive
AGAIN = "send again: this model's generations now run unbatched"   # what a reader of a dead batch can do


def reusable_prefix(previous: Sequence[int] | None, tokens: Sequence[int]) -> int:
    """How much of a cache holding previous[:-1] stays valid for tokens[:-1]: whole chunks only,
    since a partial chunk ran as a smaller batch than this prompt would run it."""
    if previous is None:
        return 0
    before = list(previous[:-1])
    whole = len(before) - len(before) % PREFILL_CHUNK
    return min(shared_prefix(before, tokens[:-1]), whole) // PREFILL_CHUNK * PREFILL_CHUNK


@dataclass
class _Sequence:
    """One sequence id of the shared context and the prompt its KV stream holds."""

    seq_id: int
    primed: list[int] | None = None


@dataclass
class Generation:
    """One stream's request; the scheduler puts sampled token ids, then END, on `out`."""

    tokens: list[int]
    sampler: Any                     # llama_cpp._internals.LlamaSampler
    max_new: int
    cancel: threading.Event | None = None
    out: "queue.Queue[Any]" = field(default_factory=queue.Queue)
    finish: str = "length"           # stop | length | cancelled | error
    error: str | None = None
    seq: _Sequence | None = None
    prefill_at: int = 0              # next prompt position to decode
    next_input: int = -1             # decoding: the token to feed at `pos`
    pos: int = -1
    n_out: int = 0
    stopped: bool = False            # the reader wants no more tokens

    @property
    def prefilling(self) -> bool:
        return self.pos < 0

    def prefill_left(self) -> int:
        return len(self.tokens) - 1 - self.prefill_at

    def next(self, alive: Callable[[], bool]) -> Any:
        """The next sampled token or END; END with an error if the scheduler is gone without
        having ended this generation (alive() is False and nothing is left on the queue)."""
        while True:
            try:
                return self.out.get(timeout=WATCH_S)
            except queue.Empty:
                if not alive() and self.out.empty():
                    self.finish, self.error = "error", self.error or f"llama.cpp's batch stopped unexpectedly; {AGAIN}"
                    return END

    def stop(self) -> None:
        """The reader ends it (stop string, cancel, consumer gone): the scheduler frees its sequence
        and closes its sampler at its next step; the reader need not wait for that."""
        self.stopped = True


class BatchDecoder:
    """One llama.cpp context whose sequences are the generations in flight on one model."""

    def __init__(self, llm: Any, context_length: int, width: int = BATCH_WIDTH,
                 share: Any = None, is_eog: Callable[[int], bool] | None = None) -> None:
        import llama_cpp
        from llama_cpp._internals import LlamaBatch, LlamaContext

        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = llm.context_params       # a copy: same kernels, types and threads
        params.n_seq_max = width
        params.n_ctx = context_length * width
        params.kv_unified = False                            # one KV stream per sequence
        params.n_batch = max(params.n_batch, PREFILL_CHUNK + width)
        self.ctx = LlamaContext(model=llm._model, params=params, verbose=False)
        self.batch = LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.width, self.share = width, share
        self.is_eog = is_eog or (lambda t: bool(llama_cpp.llama_vocab_is_eog(llm._model.vocab, t)))
        self._free = [_Sequence(i) for i in range(width)]
        self._waiting: list[Generation] = []     # submitted, no sequence yet (all taken)
        self._active: list[Generation] = []
        self._cond = threading.Condition()
        self._closed = False
        self._threads = 0
        self.failure: str | None = None          # why the scheduler stopped, if an error stopped it
        self.prompts_copied = 0                  # prompts taken from a twin's cache (tests, diagnostics)
        self._thread = threading.Thread(target=self._run, daemon=True, name="llama-batch")
        self._thread.start()

    # --- the readers' side ---------------------------------------------------------------------

    def submit(self, tokens: list[int], sampler: Any, max_new: int,
               cancel: threading.Event | None = None) -> Generation:
        gen = Generation(tokens=list(tokens), sampler=sampler, max_new=max_new, cancel=cancel)
        with self._cond:
            if self._closed:
                sampler.close()
                raise RuntimeError(f"the batch stopped ({self.failure})" if self.failure else "the batch is closed")
            self._waiting.append(gen)
            self._cond.notify_all()
        return gen

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=30)
        self.batch.close()
        self.ctx.close()

    @property
    def alive(self) -> bool:
        """The scheduler thread runs (it ends on close, or on an error: `failure` says which, unless
        even recording it failed)."""
        return self._thread.is_alive()

    def forget(self) -> None:
        """Idle sequences drop the prompts they remember (the next prefill starts cold)."""
        with self._cond:
            for seq in self._free:
                seq.primed = None

    @property
    def load(self) -> int:
        """Generations submitted and not ended (decoding, prefilling or waiting for a sequence)."""
        with self._cond:
            return len(self._active) + len(self._waiting)

    def reusable(self, tokens: Sequence[int]) -> int:
        """Prompt tokens of `tokens` this decoder would not have to read: a twin in flight (its
        cache is copied), else the whole chunks an idle sequence's cache already holds."""
        with self._cond:
            if any(g.tokens == list(tokens) for g in self._active + self._waiting) or \
                    any(s.primed == list(tokens) for s in self._free):
                return len(tokens) - 1
            return max((reusable_prefix(s.primed, tokens) for s in self._free), default=0)

    @property
    def sequences_primed(self) -> dict[int, list[int] | None]:
        """The prompt each idle sequence's cache holds, by sequence id (tests, diagnostics)."""
        with self._cond:
            return {s.seq_id: s.primed for s in self._free}

    # --- the scheduler --------------------------------------------------------------------------

    def _assign(self) -> None:
        """Give waiting generations a sequence, preferring the one that already holds most of
        the prompt; arrival order otherwise."""
        while self._waiting and self._free:
            gen = self._waiting.pop(0)
            seq = max(reversed(self._free), key=lambda s: shared_prefix(s.primed, gen.tokens))
            self._free.remove(seq)
            gen.seq = seq
            self._active.append(gen)
            self._prime(gen)

    def _prime(self, gen: Generation) -> None:
        """Keep what the sequence's cache can re-use; drop the rest."""
        seq = gen.seq
        if seq.primed == gen.tokens:
            self.ctx.kv_cache_seq_rm(seq.seq_id, len(gen.tokens) - 1, -1)   # drop the last answer
            gen.prefill_at = len(gen.tokens) - 1
        else:
            keep = reusable_prefix(seq.primed, gen.tokens)
            self.ctx.kv_cache_seq_rm(seq.seq_id, keep, -1)
            gen.prefill_at = keep
        seq.primed = None
        if gen.prefill_left() == 0:
            self._start_decoding(gen)

    def _copy_prompt(self, source: Generation, gen: Generation) -> None:
        """Give `gen` the prompt cache of `source` (the same prompt, already read): llama.cpp copies the
        whole KV stream (separate streams copy only whole), then the cells past the prompt are dropped.
        The cells hold what a prefill of `gen` would compute (same chunks at the same positions), so
        its answer is unchanged; self-consistency's samples and a pane repeated on one model read
        their shared prompt once."""
        last = len(gen.tokens) - 1
        self.ctx.kv_cache_seq_rm(gen.seq.seq_id, -1, -1)
        self.ctx.kv_cache_seq_cp(source.seq.seq_id, gen.seq.seq_id, -1, -1)
        self.ctx.kv_cache_seq_rm(gen.seq.seq_id, last, -1)
        gen.prefill_at = last
        self.prompts_copied += 1
        self._start_decoding(gen)

    def _start_decoding(self, gen: Generation) -> None:
        gen.seq.primed = list(gen.tokens)
        gen.next_input, gen.pos = gen.tokens[-1], len(gen.tokens) - 1

    def _end(self, gen: Generation, finish: str, error: str | None = None) -> None:
        """Free its sequence and close its sampler (the scheduler is the sampler's last user)."""
        gen.finish, gen.error = finish, error
        if error is not None and gen.seq is not None:
            gen.seq.primed = None
        if gen in self._active:
            self._active.remove(gen)
        if gen in self._waiting:
            self._waiting.remove(gen)
        if gen.seq is not None:
            self._free.append(gen.seq)
        gen.sampler.close()
        gen.out.put(END)

    def _run(self) -> None:
        entered = False
        try:
            while True:
                with self._cond:
                    for gen in [g for g in self._waiting if g.stopped or (g.cancel and g.cancel.is_set())]:
                        self._end(gen, "cancelled")
                    for gen in list(self._active):
                        if gen.stopped:
                            self._end(gen, "stop")
                        elif gen.cancel is not None and gen.cancel.is_set():
                            self._end(gen, "cancelled")
                    self._assign()
                    if not self._active:
                        if entered:
                            self._release_cores()
                            self.share.leave() if self.share is not None else None
                            entered = False
                        if self._closed:
                            return
                        self._cond.wait(timeout=0.1 if self._waiting else None)
                        continue
                    active = list(self._active)
                if not entered and self.share is not None:
                    self.share.enter()
                    entered = True
                self._step(active)
        except Exception as exc:   # a bug or an unexpected llama.cpp error: no reader may wait forever
            self._fail(f"{type(exc).__name__}: {exc}")
        finally:
            if entered:
                self._release_cores()
                if self.share is not None:
                    self.share.leave()

    def _fail(self, reason: str) -> None:
        """The scheduler cannot go on: every generation in flight ends with this error, and the
        decoder takes no more (its model falls back to slots, see LlamaCppModel._batch_decoder)."""
        with self._cond:
            self.failure, self._closed = reason, True
            gens, self._active, self._waiting = self._active + self._waiting, [], []
            for gen in gens:
                gen.finish, gen.error = "error", f"llama.cpp's batch stopped ({reason}); {AGAIN}"
                gen.out.put(END)
                try:
                    gen.sampler.close()
                except Exception:   # noqa: BLE001 - already failing; the readers know why
                    pass

    def _step(self, active: list[Generation]) -> None:
        """One prompt chunk (shortest prompt left first) and one token of each decoding generation."""
        for gen in [g for g in active if g.prefilling]:       # a twin's prompt is read once
            done = next((h for h in active if h is not gen and not h.prefilling and h.tokens == gen.tokens), None)
            if done is not None:
                self._copy_prompt(done, gen)
        filling = [g for g in active if g.prefilling]
        decoding = [g for g in active if not g.prefilling]
        readers = [g for g in filling if not any(h is not g and h.tokens == g.tokens and
                                                 (h.prefill_at, -active.index(h)) > (g.prefill_at, -active.index(g))
                                                 for h in filling)]
        chunk_gen = min(readers, key=lambda g: g.prefill_left(), default=None)
        if chunk_gen is not None:
            start = chunk_gen.prefill_at
            end = min(len(chunk_gen.tokens) - 1, (start // PREFILL_CHUNK + 1) * PREFILL_CHUNK)
            # Its own llama_decode, not riding with the decoding tokens: through the app a mixed call gave a
            # seeded sample other than the solo run's (tests/test_llama_batch.py), at no measured speed gain.
            self._decode_or_fail([(chunk_gen.tokens[p], p, chunk_gen.seq.seq_id, False) for p in range(start, end)],
                                 [chunk_gen])
            chunk_gen.prefill_at = end
        rows = list(enumerate(decoding))
        items = [(gen.next_input, gen.pos, gen.seq.seq_id, True) for gen in decoding]
        if rows and not self._decode_or_fail(items, decoding):
            return
        if chunk_gen is not None and chunk_gen.prefill_left() == 0 and chunk_gen in self._active:
            self._start_decoding(chunk_gen)
        with self._cond:
            for row, gen in rows:
                token = gen.sampler.sample(self.ctx, row)
                if self.is_eog(token):
                    self._end(gen, "stop")
                    continue
                gen.n_out += 1
                gen.next_input, gen.pos = token, gen.pos + 1
                gen.out.put(token)
                if gen.n_out >= gen.max_new:
                    self._end(gen, "length")

    def _decode_or_fail(self, items: list[tuple[int, int, int, bool]], gens: list[Generation]) -> bool:
        if not items:
            return True
        b = self.batch.batch
        b.n_tokens = len(items)
        for i, (token, pos, seq_id, logits) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = token, pos, 1, logits
            b.seq_id[i][0] = seq_id
        self._take_cores()
        try:
            self.ctx.decode(self.batch)
            return True
        except RuntimeError as exc:   # llama_decode failed (e.g. out of KV space)
            with self._cond:
                for gen in gens:
                    if gen in self._active:
                        self._end(gen, "error", f"llama.cpp failed while generating: {exc}")
            return False

    # --- the device's cores ---------------------------------------------------------------------

    def _take_cores(self) -> None:
        """All the cores this decoder may use now (see backends.cache.CoreShare), re-balanced
        when other generations on the device wait; the context's threads follow, as many as
        other processes leave free (backends/free_cores.py), re-decided at every step."""
        if self.share is None:
            return
        fair = self.share.fair_share()
        if self._threads and (self._threads != fair or self.share.has_waiters()):
            self._release_cores()
        if not self._threads:
            self._threads = self.share.acquire(fair)
        n = self.share.threads(self._threads)    # fewer while other processes keep cores busy
        self.ctx.set_n_threads(n, n)

    def _release_cores(self) -> None:
        if self._threads and self.share is not None:
            self.share.release(self._threads)
        self._threads = 0
