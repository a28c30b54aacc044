"""Prompting modes: (mode, preset, question, history) -> `PromptPlan`. Pure: no model, no I/O.

The frames follow the papers so results can be compared with them:

- few-shot / few-shot CoT (Brown et al. 2020; Wei et al. 2022): `Q: ...\\nA: ...` blocks. Standard
  few-shot answers are written "The answer is X." exactly like Wei et al.'s standard-prompting
  baseline, so the only difference between few_shot and few_shot_cot is the worked reasoning.
- zero-shot CoT (Kojima et al. 2022): the trigger starts the answer, `Q: {q}\\nA: {trigger}`; the
  engine may run the second, answer-extraction step with `followup`.
- instruction (FLAN-style, Wei et al. 2021): a natural-language task template, no exemplars.
- self-consistency (Wang et al. 2022): the few-shot CoT prompt sampled `n_samples` times at a
  temperature > 0, answers majority-voted by the engine.
"""
from __future__ import annotations

import random
from collections.abc import Sequence

from playground.errors import PlaygroundError
from playground.prompting.extract import resolve_answer_kind
from playground.prompting.plan import MODE_TITLES, MODES, Message, PromptPlan
from playground.prompting.presets import (
    MAX_SAMPLES, MAX_SHOTS, QUESTION_SLOT, ExemplarSet, Exemplar, PromptPreset,
)

SELF_CONSISTENCY_MIN_TEMPERATURE = 0.7
"""Suggested sampling temperature for self-consistency: greedy decoding would give n identical paths."""

BASE_STOP: tuple[str, ...] = ("\nQ:",)
"""Base-model frames: stop when the model starts inventing the next question."""
SHORT_ANSWER_STOP: tuple[str, ...] = ("\nQ:", "\n\n")
"""Base-model frames whose answer is one line (no reasoning, short answer kind)."""
SHORT_ANSWER_KINDS = ("number", "yes_no", "choice")
BASE_ANSWER_CUE = "Answer:"
ROLES = ("user", "assistant")


def mode_title(mode: str) -> str:
    """Human title of a mode id, for the UI and reports."""
    _check_mode(mode)
    return MODE_TITLES[mode]


# ---------------------------------------------------------------- validation

def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise PlaygroundError(f"unknown prompting mode '{mode}'; choose one of: {', '.join(MODES)}")


def _clean_question(question: str) -> str:
    if not isinstance(question, str) or not question.strip():
        raise PlaygroundError("the question is empty; type a question or pick an example")
    return question.strip()


def _check_history(history: Sequence[Message]) -> tuple[Message, ...]:
    """Earlier turns must alternate user/assistant and end with an answer, so the new question follows."""
    turns = tuple(history)
    for i, turn in enumerate(turns):
        role, content = (turn.get("role"), turn.get("content")) if isinstance(turn, dict) else (None, None)
        expected = ROLES[i % 2]
        if role != expected or not isinstance(content, str):
            raise PlaygroundError(
                f"conversation history turn {i + 1} should be a '{expected}' message with text content, got {turn!r}")
    if len(turns) % 2:
        raise PlaygroundError("conversation history ends with an unanswered user turn; wait for the answer first")
    return tuple({"role": t["role"], "content": t["content"]} for t in turns)


def _resolve_shots(mode: str, shots: int | None, preset: PromptPreset, exemplars: ExemplarSet | None) -> int:
    wanted = preset.shots if shots is None else shots
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 0 <= wanted <= MAX_SHOTS:
        raise PlaygroundError(f"shots must be a whole number from 0 to {MAX_SHOTS}, got {wanted!r}")
    if wanted == 0:
        return 0
    if exemplars is None:
        raise PlaygroundError(f"mode '{mode}' with {wanted} shots needs an exemplar set; preset "
                              f"'{preset.id}' has none; pick a preset with exemplars or set shots to 0")
    if wanted > len(exemplars.items):
        raise PlaygroundError(f"{wanted} shots requested but exemplar set '{exemplars.id}' has only "
                              f"{len(exemplars.items)} items")
    if mode in ("few_shot_cot", "self_consistency") and not all(e.reasoning for e in exemplars.items[:wanted]):
        raise PlaygroundError(f"mode '{mode}' needs worked reasoning, but exemplar set '{exemplars.id}' lacks it")
    return wanted


def _resolve_samples(samples: int | None, preset: PromptPreset) -> int:
    wanted = preset.samples if samples is None else samples
    if isinstance(wanted, bool) or not isinstance(wanted, int) or not 1 <= wanted <= MAX_SAMPLES:
        raise PlaygroundError(f"samples must be a whole number from 1 to {MAX_SAMPLES}, got {wanted!r}")
    return wanted


def _resolve_trigger(trigger: str | None, preset: PromptPreset) -> str:
    chosen = (preset.trigger if trigger is None else trigger).strip()
    if not chosen:
        raise PlaygroundError("the chain-of-thought trigger is empty; use e.g. \"Let's think step by step.\"")
    return chosen


def pick_template(templates: Sequence[str], template_index: int | None, rng_seed: int | None) -> str:
    """Choose an instruction template: by index, else at random with rng_seed, else the first."""
    if not templates:
        raise PlaygroundError("this preset has no instruction templates; pick an instruction preset")
    if template_index is not None:
        if isinstance(template_index, bool) or not 0 <= template_index < len(templates):
            raise PlaygroundError(f"template_index must be from 0 to {len(templates) - 1}, got {template_index!r}")
        return templates[template_index]
    if rng_seed is not None:
        return templates[random.Random(rng_seed).randrange(len(templates))]
    return templates[0]


def fill_template(template: str, question: str) -> str:
    """Plain replacement rather than str.format, so braces elsewhere in a template stay literal."""
    return template.replace(QUESTION_SLOT, question)


# ---------------------------------------------------------------- pieces shared by modes

def exemplar_answer(exemplar: Exemplar, with_reasoning: bool) -> str:
    """The answer side of a demonstration: worked steps (CoT) or Wei et al.'s 'The answer is X.'."""
    if with_reasoning:
        return exemplar.reasoning or f"The answer is {exemplar.answer}."
    return f"The answer is {exemplar.answer}."


def demonstrations(exemplars: ExemplarSet | None, shots: int, with_reasoning: bool) -> tuple[tuple[str, str], ...]:
    """The first `shots` items as (question, answer) pairs: a fixed prompt, as in the papers."""
    if not shots or exemplars is None:
        return ()
    return tuple((e.question, exemplar_answer(e, with_reasoning)) for e in exemplars.items[:shots])


def history_pairs(history: tuple[Message, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((history[i]["content"], history[i + 1]["content"]) for i in range(0, len(history), 2))


def chat_messages(system: str | None, pairs: Sequence[tuple[str, str]], user: str) -> tuple[Message, ...]:
    """[system] + alternating user/assistant turns + the new user turn."""
    messages: list[Message] = [{"role": "system", "content": system}] if system else []
    for question, answer in pairs:
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": user})
    return tuple(messages)


def qa_block(question: str, answer: str) -> str:
    return f"Q: {question}\nA: {answer}\n\n"


def base_frame(system: str | None, pairs: Sequence[tuple[str, str]], tail: str) -> str:
    """Plain text for base models: the system prompt as text, then Q/A blocks, then the open slot."""
    head = f"{system}\n\n" if system else ""
    return head + "".join(qa_block(q, a) for q, a in pairs) + tail


def base_instruction_tail(instruction: str) -> str:
    """A base model needs an answer cue unless the template already ends with one (e.g. 'Give the answer:')."""
    text = instruction.rstrip()
    return text if text.endswith(":") else f"{text}\n{BASE_ANSWER_CUE}"


def short_answer_stop(answer_kind: str) -> tuple[str, ...]:
    return SHORT_ANSWER_STOP if answer_kind in SHORT_ANSWER_KINDS else BASE_STOP


# ---------------------------------------------------------------- the entry point

def build_plan(mode: str, question: str, *, preset: PromptPreset, exemplars: ExemplarSet | None, chat: bool,
               history: Sequence[Message] = (), shots: int | None = None, samples: int | None = None,
               trigger: str | None = None, template_index: int | None = None, rng_seed: int | None = None,
               system_prompt: str | None = None) -> PromptPlan:
    """Build the prompt for one mode.

    chat=True (model with a chat template): `messages` = [system] + exemplar turns + history + question.
    For zero-shot CoT the trigger ends the *user* message: the rendered template already ends with
    the assistant generation prompt, so there is no place to start the answer with it without
    putting words in the assistant's mouth that the template would close with an end-of-turn token.
    chat=False (base model): `text` = the plain `Q:`/`A:` frame, with the trigger starting the answer.

    system_prompt overrides the preset's ("" removes it). Arguments left as None come from the preset.
    """
    _check_mode(mode)
    question = _clean_question(question)
    turns = _check_history(history)
    system = preset.system_prompt if system_prompt is None else (system_prompt.strip() or None)
    kind = resolve_answer_kind(preset.answer_kind, question)
    # base frames stop after one line only for a preset of short answers, and only when the
    # question asks for one ("Name three colours." may need several lines)
    stop_kind = preset.answer_kind if kind != "none" else "none"
    common = dict(mode=mode, answer_kind=kind, preset_id=preset.id)

    if mode == "instruction":
        instruction = fill_template(pick_template(preset.instruction_templates, template_index, rng_seed), question)
        return _plan(chat, system, history_pairs(turns), instruction, base_instruction_tail(instruction),
                     short_answer_stop(stop_kind), **common)

    if mode in ("zero_shot", "few_shot"):
        k = _resolve_shots(mode, shots, preset, exemplars) if mode == "few_shot" else 0
        pairs = demonstrations(exemplars, k, with_reasoning=False) + history_pairs(turns)
        return _plan(chat, system, pairs, question, f"Q: {question}\nA:", short_answer_stop(stop_kind),
                     **common)

    if mode == "zero_shot_cot":
        cue = _resolve_trigger(trigger, preset)
        return _plan(chat, system, history_pairs(turns), f"{question}\n\n{cue}", f"Q: {question}\nA: {cue}",
                     BASE_STOP, followup=preset.followup, **common)

    # few_shot_cot and self_consistency share the CoT prompt
    n = _resolve_samples(samples, preset) if mode == "self_consistency" else 1
    k = _resolve_shots(mode, shots, preset, exemplars)
    if k == 0 and mode == "self_consistency":
        cue = _resolve_trigger(trigger, preset)  # no exemplars: sample zero-shot CoT paths instead
        return _plan(chat, system, history_pairs(turns), f"{question}\n\n{cue}", f"Q: {question}\nA: {cue}",
                     BASE_STOP, n_samples=n, **common)
    pairs = demonstrations(exemplars, k, with_reasoning=True) + history_pairs(turns)
    return _plan(chat, system, pairs, question, f"Q: {question}\nA:", BASE_STOP, n_samples=n, **common)


def _plan(chat: bool, system: str | None, pairs: Sequence[tuple[str, str]], user: str, base_tail: str,
          base_stop: tuple[str, ...], **fields) -> PromptPlan:
    """Assemble the chat or base form of the same prompt; chat models rely on end-of-turn, not stop strings."""
    if chat:
        return PromptPlan(messages=chat_messages(system, pairs, user), text=None, stop=(), system=system, **fields)
    return PromptPlan(messages=None, text=base_frame(system, pairs, base_tail), stop=base_stop, system=system,
                      **fields)
