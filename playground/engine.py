"""Runs one PromptPlan on one loaded model: the exact prompt, streaming, the extra steps of a mode.

This is the only place that knows how a mode turns into calls: zero-shot CoT's optional second
step (append the reasoning and "Therefore, the answer is", generate the short answer) and
self-consistency's n sampled paths with a majority vote. Everything it reports is in `PaneResult`.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Sequence

from playground.backends.base import LoadedModel
from playground.errors import ContextOverflowError
from playground.prompting.extract import Extracted, extract_answer, majority_vote
from playground.prompting.plan import PromptPlan
from playground.sampling import SamplingParams

SELF_CONSISTENCY_TEMPERATURE = 0.7
FOLLOWUP_MAX_TOKENS = 32


@dataclass
class SamplePath:
    """One sampled reasoning path of self-consistency."""

    text: str
    answer: str | None = None
    n_output_tokens: int = 0
    finish_reason: str | None = None


@dataclass
class PaneResult:
    """Everything one pane shows and stores; updated in place while streaming (a snapshot is
    taken with `copy()` before it leaves the worker thread)."""

    exact_prompt: str = ""
    output: str = ""
    followup_output: str = ""
    extracted: Extracted | None = None
    samples: list[SamplePath] = field(default_factory=list)
    tally: list[tuple[str, int]] = field(default_factory=list)
    n_prompt_tokens: int = 0
    n_output_tokens: int = 0
    ttft_s: float | None = None
    total_s: float = 0.0
    last_token_s: float | None = None   # when the last token arrived (tokens/s stops there)
    finish_reason: str | None = None
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    done: bool = False
    device: str = ""     # where it really ran (cpu | gpu | cuda | mps | remote), not what was asked
    ran_on: str = ""     # the same for people, with llama.cpp's layers on the GPU: "cpu (0/31 layers on GPU)"
    calls: list[dict[str, Any]] = field(default_factory=list)  # every prompt sent, with the sampling that ran
    system_prompt: str | None = None   # the plan's own system prompt (the contestant's, not the user's)

    @property
    def sampling_used(self) -> dict[str, Any] | None:
        """The sampling the answer really ran with (after clipping, stops, overrides)."""
        return self.calls[0]["sampling"] if self.calls else None

    @property
    def tokens_per_s(self) -> float | None:
        decode = (self.last_token_s or self.total_s) - (self.ttft_s or 0.0)
        if self.n_output_tokens < 2 or decode <= 0:
            return None
        return (self.n_output_tokens - 1) / decode

    @property
    def answer_text(self) -> str:
        """The full answer as the user reads it (reasoning plus the follow-up step, if any)."""
        if self.followup_output:
            return f"{self.output.rstrip()}\n{self.followup_output.strip()}"
        return self.output

    def copy(self) -> "PaneResult":
        return replace(self, samples=[replace(s) for s in self.samples], tally=list(self.tally),
                       notices=list(self.notices), calls=[dict(c) for c in self.calls])

    def samples_json(self) -> dict[str, Any] | None:
        if not self.samples:
            return None
        return {"paths": [{"text": s.text, "answer": s.answer, "n_output_tokens": s.n_output_tokens,
                           "finish_reason": s.finish_reason} for s in self.samples],
                "tally": [[a, n] for a, n in self.tally]}


def exact_prompt(model: LoadedModel, plan: PromptPlan) -> str:
    """The text the model sees, special tokens included (chat template or base frame, plus BOS)."""
    text = model.render_chat(list(plan.messages)) if plan.messages is not None else (plan.text or "")
    if model.bos_text and not text.startswith(model.bos_text):
        text = model.bos_text + text
    return text


def check_context(model: LoadedModel, prompt: str, sampling: SamplingParams) -> tuple[int, SamplingParams, str | None]:
    """Prompt token count, sampling with max_new_tokens clipped to the room left, and a notice."""
    n_prompt = model.count_tokens(prompt)
    room = model.context_length - n_prompt
    if room < 1:
        raise ContextOverflowError(
            f"the prompt is {n_prompt:,} tokens but {model.spec.id} has a context of "
            f"{model.context_length:,}: shorten the question, use fewer shots, or clear the history")
    if sampling.max_new_tokens > room:
        return n_prompt, sampling.with_changes(max_new_tokens=room), (
            f"only {room} tokens left in the context: the answer is limited to {room} tokens")
    return n_prompt, sampling, None


def _replace_status(result: PaneResult, shown: list[str], lines: Sequence[str] | None) -> None:
    """A backend may put status lines on a chunk (`notices`, e.g. a remote server's queue position
    or a retry); each set replaces the lines the same generation showed before."""
    if lines is None:
        return
    for line in shown:
        if line in result.notices:
            result.notices.remove(line)
    shown[:] = [line for line in lines if line not in result.notices]
    result.notices.extend(shown)


def _stream_into(model: LoadedModel, prompt: str, sampling: SamplingParams, cancel: threading.Event | None,
                 result: PaneResult, start: float, attr: str) -> Iterator[PaneResult]:
    """Stream one generation, appending to result.<attr> and updating counts as chunks come."""
    base_tokens = result.n_output_tokens
    shown: list[str] = []
    for chunk in model.stream(prompt, sampling, cancel):
        _replace_status(result, shown, chunk.notices)
        setattr(result, attr, getattr(result, attr) + chunk.text)
        result.n_output_tokens = base_tokens + chunk.n_output_tokens
        if result.ttft_s is None and chunk.text:
            result.ttft_s = time.perf_counter() - start   # as the user sees it: from the click
        result.total_s = time.perf_counter() - start
        if chunk.text:
            result.last_token_s = result.total_s
        if chunk.finish_reason:
            result.finish_reason = chunk.finish_reason
        yield result


def run_plan(model: LoadedModel, plan: PromptPlan, sampling: SamplingParams,
             cancel: threading.Event | None = None) -> Iterator[PaneResult]:
    """Yield the growing PaneResult; the last one has done=True. Errors propagate to the caller."""
    start = time.perf_counter()
    result = PaneResult()
    result.exact_prompt = exact_prompt(model, plan)
    stops = tuple(dict.fromkeys(plan.stop + sampling.stop))
    result.n_prompt_tokens, sampling, notice = check_context(model, result.exact_prompt, sampling)
    sampling = sampling.with_changes(stop=stops)
    result.system_prompt = plan.system
    if notice:
        result.notices.append(notice)
    if plan.n_samples > 1:
        yield from _self_consistency(model, plan, sampling, cancel, result, start)
    else:
        result.calls.append({"step": "answer", "prompt": result.exact_prompt, "sampling": sampling.to_dict()})
        yield from _stream_into(model, result.exact_prompt, sampling, cancel, result, start, "output")
        if plan.followup and result.finish_reason != "cancelled" and not (cancel and cancel.is_set()):
            yield from _followup(model, plan, sampling, cancel, result, start)
        result.extracted = extract_answer(result.answer_text, plan.answer_kind)
    result.total_s = time.perf_counter() - start
    result.done = True
    yield result


def _followup(model: LoadedModel, plan: PromptPlan, sampling: SamplingParams,
              cancel: threading.Event | None, result: PaneResult, start: float) -> Iterator[PaneResult]:
    """Zero-shot CoT step 2 (Kojima et al.): reasoning + answer trigger, then a short answer."""
    if model.raw_continuation:
        second = f"{result.exact_prompt}{result.output.rstrip()}\n{plan.followup}"
    else:   # a server that applies its own chat template: ask in a second turn instead
        second = model.render_chat([*(plan.messages or ()), {"role": "assistant", "content": result.output},
                                    {"role": "user", "content": plan.followup}])
    step = sampling.with_changes(max_new_tokens=FOLLOWUP_MAX_TOKENS, temperature=0.0)
    try:
        _, step, _ = check_context(model, second, step)
    except ContextOverflowError:
        result.notices.append("no room left in the context for the answer-extraction step")
        return
    result.calls.append({"step": "answer_extraction", "prompt": second, "sampling": step.to_dict(),
                         "ends": "at the end of its first line with text"})
    result.followup_output = plan.followup + " "
    reason = result.finish_reason
    holder = PaneResult(n_output_tokens=result.n_output_tokens, ttft_s=result.ttft_s, notices=result.notices)
    stream = _stream_into(model, second, step, cancel, holder, start, "output")
    try:
        for update in stream:
            line, complete = first_answer_line(update.output)
            result.followup_output = f"{plan.followup} {line}"
            result.n_output_tokens, result.total_s = update.n_output_tokens, update.total_s
            result.ttft_s, result.last_token_s = update.ttft_s, update.last_token_s or result.last_token_s
            if update.finish_reason == "cancelled":
                reason = "cancelled"
            yield result
            if complete:
                break
    finally:
        stream.close()   # the answer's line is complete: the generation ends here
    result.finish_reason = reason


def first_answer_line(text: str) -> tuple[str, bool]:
    """The answer-extraction step's text up to the end of its first non-empty line, and whether that
    line has ended.

    The step gives one answer. Past its line the small model imitates its prompt ("1.\\n2. 2 is\\n
    Therefore, the answer is 3."): a second, usually wrong answer for the extractor (Kojima et al. take
    the first) and the mode's trigger on a blind Arena side. A stop string cannot say "a newline after
    some text": the model may begin with one.
    """
    lead = len(text) - len(text.lstrip())
    end = text.find("\n", lead)
    return (text, False) if end < 0 or lead == len(text) else (text[:end], True)


def _self_consistency(model: LoadedModel, plan: PromptPlan, sampling: SamplingParams,
                      cancel: threading.Event | None, result: PaneResult, start: float) -> Iterator[PaneResult]:
    """n sampled CoT paths (Wang et al. 2022), each answer extracted, then a majority vote."""
    if sampling.temperature <= 0:
        sampling = sampling.with_changes(temperature=SELF_CONSISTENCY_TEMPERATURE)
        result.notices.append(f"self-consistency needs sampling: temperature set to {SELF_CONSISTENCY_TEMPERATURE}")
    seeds = None if sampling.seed is None else [sampling.seed + i for i in range(plan.n_samples)]
    result.calls.append({"step": "samples", "prompt": result.exact_prompt, "sampling": sampling.to_dict(),
                         "n": plan.n_samples, "seeds": seeds})
    for i in range(plan.n_samples):
        if cancel is not None and cancel.is_set():
            result.finish_reason = "cancelled"
            break
        seed = None if sampling.seed is None else sampling.seed + i
        path = SamplePath(text="")
        result.samples.append(path)
        base_tokens = result.n_output_tokens
        holder = PaneResult(n_output_tokens=base_tokens, ttft_s=result.ttft_s, notices=result.notices)
        for update in _stream_into(model, result.exact_prompt, sampling.with_changes(seed=seed),
                                   cancel, holder, start, "output"):
            path.text = update.output
            if i == 0:   # the first path streams into the answer until the vote replaces it
                result.output = path.text
            result.n_output_tokens, result.ttft_s = update.n_output_tokens, update.ttft_s
            result.total_s = update.total_s
            yield result
        path.finish_reason = holder.finish_reason
        path.n_output_tokens = holder.n_output_tokens - base_tokens
        found = extract_answer(path.text, plan.answer_kind)
        path.answer = found.value if found else None
        vote = majority_vote([s.answer for s in result.samples])
        result.tally = list(vote.tally)
        yield result
    vote = majority_vote([s.answer for s in result.samples])
    winner_path = next((s for s in result.samples if vote.winner is not None and s.answer == vote.winner),
                       result.samples[0] if result.samples else None)
    result.output = winner_path.text if winner_path else ""
    result.extracted = extract_answer(result.output, plan.answer_kind)
    if result.finish_reason != "cancelled":
        result.finish_reason = winner_path.finish_reason if winner_path else "stop"
    if vote.tie:
        result.notices.append("the vote is tied: the first answer to reach the top count wins")
