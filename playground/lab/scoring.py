"""Scoring one answer beyond exact match: the gold answer's log-likelihood under the model.

The mean per-token log-probability of the gold answer given the prompt,
`model.continuation_logprob(scoring_prompt, continuation)`, moves smoothly with scale while
accuracy can jump (Schaeffer et al. 2023: emergence is partly the metric). The scoring prompt
is the exact prompt the model saw, followed by the mode's answer prefix:

- zero_shot, instruction: nothing (the answer would come right away);
- few_shot, few_shot_cot, self_consistency: "The answer is" (their exemplars end that way;
  self-consistency uses its few-shot CoT prompt, which is its exact prompt);
- zero_shot_cot: the preset's answer trigger ("Therefore, the answer (arabic numerals) is"),
  or "The answer is" when it has none.

The reasoning the model wrote is NOT inserted: the score is about the prompt, identical for
every model, so models are compared on the same conditional. The continuation is " " + gold;
when the scoring prompt ends in whitespace (a chat template's "assistant\\n") the space is
dropped and a word answer is capitalised, as a reply would start. Multiple choice scores "(B)".
"""
from __future__ import annotations

from typing import Any

from playground.errors import PlaygroundError
from playground.lab.tasks import TaskItem
from playground.prompting.plan import PromptPlan

ANSWER_PREFIX = "The answer is"
PREFIX_MODES = ("few_shot", "few_shot_cot", "self_consistency", "zero_shot_cot")


def answer_prefix(plan: PromptPlan) -> str:
    """The text that precedes the gold answer when scoring its log-likelihood (module docstring)."""
    if plan.mode == "zero_shot_cot":
        return plan.followup or ANSWER_PREFIX
    return ANSWER_PREFIX if plan.mode in PREFIX_MODES else ""


def scoring_prompt(exact: str, plan: PromptPlan) -> str:
    """The exact prompt plus the mode's answer prefix, joined by a space unless the prompt ends in one."""
    prefix = answer_prefix(plan)
    if not prefix:
        return exact
    return exact + prefix if not exact or exact[-1].isspace() else f"{exact} {prefix}"


def scoring_continuation(prompt: str, item: TaskItem) -> str:
    """' ' + gold after text; at the start of a reply no space and a capital letter."""
    gold = f"({item.gold})" if item.answer_kind == "choice" else item.gold
    if prompt and prompt[-1].isspace():
        return gold[:1].upper() + gold[1:] if gold[:1].isalpha() else gold
    return " " + gold


def gold_logprob(model: Any, prompt: str, item: TaskItem) -> tuple[float | None, int | None]:
    """(mean per-token log-prob of the gold answer, its token count); None when it cannot be scored."""
    continuation = scoring_continuation(prompt, item)
    try:
        total, n = model.continuation_logprob(prompt, continuation)
    except (PlaygroundError, NotImplementedError):
        return None, None
    return (total / n if n else None), n
