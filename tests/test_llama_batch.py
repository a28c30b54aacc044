"""Same-model panes decoded in one batch (backends/llama_batch.py), on the real bundled model.

Every test compares answers token for token with solo runs: batching must never change a greedy
answer, whatever else is in the batch, whenever it joins or leaves.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest

from playground.backends.cache import CoreShare
from playground.backends.free_cores import FreeCores
from playground.backends.llama_batch import PREFILL_CHUNK
from playground.errors import PlaygroundError
from playground.sampling import SamplingParams

QUESTIONS = (
    "What is the capital of France?",
    "Name three primary colours.",
    "A baker makes 40 rolls and sells 17. How many rolls are left? Think step by step.",
    "Write a short poem about the sea.",
    "Explain what a prime number is, with two examples.",
    "List the planets of the solar system in order.",
)
FEW_SHOT = [m for i in range(1, 9) for m in ({"role": "user", "content": f"What is {i} + {i}?"},
                                             {"role": "assistant", "content": f"{i} + {i} = {2 * i}."})]


def prompts(smol, n: int) -> list[str]:
    """n chat prompts of very different lengths (every third one carries 8 exemplars)."""
    out = []
    for i in range(n):
        shots = FEW_SHOT if i % 3 == 2 else []
        out.append(smol.render_chat([*shots, {"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]))
    return out


def text_of(model, prompt: str, sampling: SamplingParams) -> tuple[str, str, int]:
    chunks = list(model.stream(prompt, sampling))
    return "".join(c.text for c in chunks), chunks[-1].finish_reason, chunks[-1].n_output_tokens


@contextmanager
def unbatched(model):
    """Today's path: one slot (own context) per generation."""
    model.batching = False
    try:
        yield model
    finally:
        model.batching = True


def run_together(model, prompts_: list[str], samplings: list[SamplingParams],
                 join_after: int = 0) -> list[tuple[str, str, int]]:
    """All at once; with join_after > 0, pane i starts once pane i-1 has streamed that many tokens."""
    results: list = [None] * len(prompts_)
    started = [threading.Event() for _ in prompts_]

    def work(i: int) -> None:
        chunks = []
        for chunk in model.stream(prompts_[i], samplings[i]):
            chunks.append(chunk)
            if chunk.n_output_tokens >= join_after and i + 1 < len(prompts_):
                started[i + 1].set()
        started[min(i + 1, len(prompts_) - 1)].set()
        results[i] = ("".join(c.text for c in chunks), chunks[-1].finish_reason, chunks[-1].n_output_tokens)

    threads = []
    for i in range(len(prompts_)):
        if join_after and i:
            assert started[i].wait(120)
        t = threading.Thread(target=work, args=(i,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(300)
    return results


GREEDY = SamplingParams(max_new_tokens=24)


@pytest.fixture(scope="module")
def solo(smol):
    """Each of six prompts alone on today's path (one context per generation), computed once."""
    ps = prompts(smol, 6)
    with unbatched(smol):
        return ps, [text_of(smol, p, GREEDY) for p in ps]


def test_one_sequence_in_the_batch_is_todays_single_context_path(smol, solo):
    ps, answers = solo
    assert [text_of(smol, p, GREEDY) for p in ps] == answers
    assert smol._batch is not None and smol.n_slots == 1   # every generation went through the batch


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_panes_in_one_batch_answer_exactly_as_alone(smol, solo, n):
    ps, answers = solo
    assert run_together(smol, ps[:n], [GREEDY] * n) == answers[:n]


@pytest.fixture(scope="module")
def qwen_solo(qwen05):
    """A second family (Qwen2.5-Coder 0.5B, Q4_K_M): four prompts alone, 16 tokens each."""
    ps = prompts(qwen05, 4)
    short = SamplingParams(max_new_tokens=16)
    with unbatched(qwen05):
        return ps, short, [text_of(qwen05, p, short) for p in ps]


@pytest.mark.parametrize("n", [2, 4])
def test_a_second_family_answers_exactly_as_alone_in_a_batch(qwen05, qwen_solo, n):
    """Q4_K_M weights take other CPU kernels (K-quants, 8-bit activations in blocks of 256) than the
    bundled Q4_1: batching must keep every row's arithmetic there too."""
    ps, short, answers = qwen_solo
    assert run_together(qwen05, ps[:n], [short] * n) == answers[:n]


def test_panes_that_join_and_leave_at_different_times(smol):
    """Six panes: each starts once the previous has streamed 5 tokens (its prompt chunks then run
    between the others' steps) and each stops after its own number of tokens."""
    ps = prompts(smol, 6)
    samplings = [SamplingParams(max_new_tokens=12 + 7 * i) for i in range(6)]
    with unbatched(smol):
        solo = [text_of(smol, p, s) for p, s in zip(ps, samplings, strict=True)]
    staggered = run_together(smol, ps, samplings, join_after=5)
    assert staggered == solo
    reversed_order = run_together(smol, ps[::-1], samplings[::-1], join_after=3)
    assert reversed_order == solo[::-1]


def test_seeded_sampling_and_stop_strings_in_a_batch(smol):
    ps = prompts(smol, 3)
    samplings = [SamplingParams(temperature=0.9, seed=7, max_new_tokens=24),
                 SamplingParams(max_new_tokens=30, stop=("\n",)),
                 SamplingParams(temperature=0.7, top_k=20, seed=3, max_new_tokens=20, repeat_penalty=1.2)]
    with unbatched(smol):
        solo = [text_of(smol, p, s) for p, s in zip(ps, samplings, strict=True)]
    assert run_together(smol, ps, samplings) == solo


def test_the_shortest_prompt_streams_first(smol):
    """A long few-shot prompt and a short one sent together: the short one's prefill goes first,
    so its first token comes while the long prompt is still being read."""
    long_prompt = smol.render_chat([*FEW_SHOT * 3, {"role": "user", "content": "What is 9 + 9?"}])
    short_prompt = smol.render_chat([{"role": "user", "content": "Say hi."}])
    assert smol.count_tokens(long_prompt) > 6 * PREFILL_CHUNK
    order: list[str] = []
    lock = threading.Lock()

    def work(name: str, prompt: str) -> None:
        for chunk in smol.stream(prompt, SamplingParams(max_new_tokens=4)):
            if chunk.text:
                with lock:
                    order.append(name)
                break

    threads = [threading.Thread(target=work, args=a) for a in (("long", long_prompt), ("short", short_prompt))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert order[0] == "short", order


def test_a_repeated_prompt_reuses_its_sequence_cache(smol):
    """Regenerate and self-consistency's later samples find the prompt already in a sequence."""
    prompt = prompts(smol, 3)[2]
    hot = SamplingParams(temperature=0.8, seed=11, max_new_tokens=16)
    first = text_of(smol, prompt, hot)
    held = [p for d in [smol._batch, *smol._spread] for p in d.sequences_primed.values()]   # any decoder
    assert smol.tokenize(prompt) in held
    assert text_of(smol, prompt, hot) == first


def test_cancel_in_a_batch_ends_only_that_pane(smol):
    ps = prompts(smol, 2)
    cancel = threading.Event()
    long_run = SamplingParams(max_new_tokens=400)
    other: list = []
    t = threading.Thread(target=lambda: other.append(text_of(smol, ps[1], SamplingParams(max_new_tokens=30))))
    stream = smol.stream(ps[0], long_run, cancel)
    next(stream)
    t.start()
    cancel.set()
    rest = list(stream)
    t.join(120)
    assert rest[-1].finish_reason == "cancelled"
    with unbatched(smol):
        assert other == [text_of(smol, ps[1], SamplingParams(max_new_tokens=30))]


def test_few_shot_items_in_a_row_reuse_the_exemplars_and_answer_as_from_scratch(app_ctx, smol):
    """The lab's pattern: few-shot items one after another share the exemplar prefix (whole chunks
    re-used from the previous item) and give exactly the answers of cold runs."""
    from playground.compare import PaneSpec, run_pane

    pane = PaneSpec(model_id="smollm2-135m-instruct", mode="few_shot_cot", shots=4,
                    sampling=SamplingParams(max_new_tokens=16))
    questions = [f"A shop has {n} apples and sells 5. How many are left?" for n in (12, 30, 47)]

    def answers(cold: bool) -> list[str]:
        out = []
        for q in questions:
            if cold:
                smol.forget_prompts()
            result = None
            for result in run_pane(app_ctx, pane, q):
                pass
            out.append(result.answer_text)
        return out

    assert answers(cold=False) == answers(cold=True)


def test_panes_with_the_same_prompt_read_it_once_and_answer_as_alone(smol, solo):
    """Self-consistency beside few-shot CoT, or one mode repeated, send the same prompt twice: the
    second copies the first's prompt cache (whole KV stream) instead of reading it again, and every
    answer is still token for token the solo one."""
    ps, alone = solo
    batch = smol._batch_decoder()
    before = batch.prompts_copied
    twice = [ps[2], ps[2], ps[0], ps[2], ps[5], ps[5]]           # a long few-shot prompt three times
    with one_decoder(smol):                                       # copies are counted on one decoder
        got = run_together(smol, twice, [GREEDY] * len(twice))
    assert got == [alone[2], alone[2], alone[0], alone[2], alone[5], alone[5]]
    assert batch.prompts_copied - before >= 3, batch.prompts_copied - before
    staggered = run_together(smol, [ps[2], ps[2]], [GREEDY, GREEDY], join_after=3)   # the twin is decoding
    assert staggered == [alone[2], alone[2]]


@contextmanager
def one_decoder(model):
    """Generations stay on the model's first decoder whatever the machine's load (no spreading)."""
    share = model.compute_lock
    share.spread = lambda: 1
    try:
        yield model
    finally:
        del share.spread


@contextmanager
def broken_batch(model, *, handler_too: bool = False):
    """The model's batch with a scheduler that raises an unexpected error at its next step (and,
    with handler_too, whose clean-up fails as well); the model gets a fresh batch afterwards."""
    batch = model._batch_decoder()
    warnings = list(model.warnings)

    def fault(*_: object) -> None:
        raise ValueError("injected fault")

    batch._step = fault
    if handler_too:
        batch._fail = fault
    try:
        yield batch
    finally:
        model.batching, model.warnings[:] = True, warnings
        with model._cond:
            model._batch = None if model._batch is batch else model._batch
        batch.close()


def ended_with(model, prompt: str, sampling: SamplingParams) -> tuple[bool, dict]:
    """Stream in a thread: (whether it ended within 2 minutes, its text or its error)."""
    out: dict = {}

    def work() -> None:
        try:
            out["text"] = text_of(model, prompt, sampling)
        except PlaygroundError as exc:
            out["error"] = str(exc)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    t.join(120)
    return not t.is_alive(), out


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # the injected fault
@pytest.mark.parametrize("handler_too", [False, True], ids=["scheduler-fails", "its-clean-up-fails-too"])
def test_a_dead_scheduler_never_leaves_a_pane_waiting(smol, solo, handler_too):
    """An unexpected error in the batch's thread ends every generation in flight with a clear error
    (none waits forever for a token that will never come), and the model's next generations run
    on slots of their own, with the same answers."""
    ps, alone = solo
    with broken_batch(smol, handler_too=handler_too) as batch:
        ended, out = ended_with(smol, ps[0], GREEDY)
        assert ended, "the reader still waits on a scheduler that is gone"
        assert "error" in out and smol.spec.id in out["error"], out
        if not handler_too:
            assert "injected fault" in out["error"] and batch.failure == "ValueError: injected fault"
        ended, out = ended_with(smol, ps[1], GREEDY)
        assert ended and out == {"text": alone[1]}
        assert smol._batch is not batch and any("not batched" in w for w in smol.warnings), smol.warnings


class _OneThreadFree(FreeCores):
    """Other processes leave one thread's worth of the cores (simulated contention)."""

    def usable(self) -> int:
        return 1


def _drop_batches(model) -> None:
    with model._cond:
        batches = [b for b in [model._batch, *model._spread] if b is not None]
        model._batch, model._spread = None, []
    for b in batches:
        b.close()


@contextmanager
def contended(model):
    """The model's generations on a 2-core share that sees one core taken: fresh decoders on it."""
    saved = model.compute_lock
    _drop_batches(model)
    model.compute_lock = CoreShare(2, _OneThreadFree(2))
    try:
        yield model
    finally:
        _drop_batches(model)
        model.compute_lock = saved


def test_under_contention_generations_spread_over_one_thread_contexts_and_answer_as_alone(smol, solo):
    """Beside busy processes a model's generations run on two one-thread decoders (a thread each
    gets more of a busy machine than one context does): each answer, greedy or seeded, is the
    one it gives alone, and both decoders really ran some of them."""
    import llama_cpp

    ps, answers = solo
    seeded = [SamplingParams(temperature=0.9, seed=11 + i, max_new_tokens=20) for i in range(2)]
    with unbatched(smol):
        seeded_alone = [text_of(smol, p, s) for p, s in zip(ps[:2], seeded, strict=True)]
    with contended(smol):
        assert run_together(smol, ps[:4], [GREEDY] * 4) == answers[:4]
        assert len(smol._spread) == 1
        decoders = [smol._batch, *smol._spread]
        held = [{tuple(p) for p in d.sequences_primed.values() if p} for d in decoders]
        assert all(held), held                        # each decoder ran at least one generation
        assert set().union(*held) == {tuple(smol.tokenize(p)) for p in ps[:4]}
        assert [llama_cpp.llama_n_threads(d.ctx.ctx) for d in decoders] == [1, 1]
        assert run_together(smol, ps[:2], seeded) == seeded_alone
