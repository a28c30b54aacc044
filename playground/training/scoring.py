"""Held-out preference accuracy: does a model put more probability on the chosen answer?

For each pair, `margin = log p(chosen | prompt) - log p(rejected | prompt)` (summed over the answer's
tokens, the prompt rendered with the model's chat template, as TRL does). Accuracy of a model =
share of pairs with margin > 0. The tuned model's DPO implicit reward prefers the chosen answer
when its margin exceeds the base's (the beta factor does not change the sign), so
`implicit_accuracy` = share of pairs with tuned margin > base margin. Intervals: Wilson 95%.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from playground.stats import wilson_interval


# Fewer held-out pairs than this and the before/after accuracies are noise: the Wilson 95% interval
# of an accuracy near 50% is 33%-67% at n = 30 (34 points wide; 42 points at n = 15, 53 at n = 10),
# wider than the change a preference-tuning run on a few hundred votes makes (a few to ~20 points),
# so no difference between base and tuned could be told from chance. Said before training starts.
MIN_HELD_OUT_PAIRS = 30


def noise_warning(n_held_out: int, n_pairs: int) -> str | None:
    """What to say before training when the held-out pairs are too few to measure anything."""
    if n_held_out >= MIN_HELD_OUT_PAIRS:
        return None
    if n_held_out == 0:
        width = "undefined"
    else:
        lo, hi = wilson_interval(n_held_out // 2, n_held_out)
        width = f"{hi - lo:.0%} wide at {n_held_out // 2}/{n_held_out}"
    return (f"only {n_held_out} held-out pair{'s' if n_held_out != 1 else ''} (of {n_pairs}): below "
            f"{MIN_HELD_OUT_PAIRS}, an accuracy's 95% interval is too wide ({width}) to tell base from tuned, so "
            "the before/after accuracies will be noise. More votes or a larger held-out share make them meaningful.")


@dataclass(frozen=True)
class Accuracy:
    """successes out of n, with its Wilson 95% interval."""

    successes: int
    n: int

    @property
    def value(self) -> float | None:
        return self.successes / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.successes, self.n) if self.n else None

    def label(self) -> str:
        if not self.n:
            return "n/a (no held-out pairs)"
        lo, hi = self.interval
        return f"{self.value:.0%} ({self.successes}/{self.n}; 95% CI {lo:.0%}-{hi:.0%})"

    def to_dict(self) -> dict[str, Any]:
        return {"successes": self.successes, "n": self.n, "value": self.value,
                "wilson_95": list(self.interval) if self.n else None}


def accuracy(margins: Sequence[float]) -> Accuracy:
    return Accuracy(sum(1 for m in margins if m > 0), len(margins))


def preference_margins(model: Any, tokenizer: Any, pairs: Sequence[dict[str, Any]], max_length: int) -> list[float]:
    """log p(chosen) - log p(rejected) for each conversational pair, answers cut at `max_length` tokens."""
    model.eval()
    margins = []
    with torch.no_grad():
        for pair in pairs:
            chosen = _answer_logprob(model, tokenizer, pair["prompt"], pair["chosen"], max_length)
            rejected = _answer_logprob(model, tokenizer, pair["prompt"], pair["rejected"], max_length)
            margins.append(chosen - rejected)
    return margins


def _answer_logprob(model: Any, tokenizer: Any, prompt: list[dict], answer: list[dict], max_length: int) -> float:
    prompt_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(prompt + answer, tokenize=False)
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_text, add_special_tokens=False)["input_ids"][:max(max_length, len(prompt_ids) + 1)]
    start = len(prompt_ids)
    if full_ids[:start] != prompt_ids or len(full_ids) <= start:
        start = min(start, len(full_ids) - 1)
    ids = torch.tensor([full_ids], device=model.device)
    logits = model(input_ids=ids).logits[0, :-1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    targets = ids[0, 1:]
    picked = logprobs.gather(1, targets.unsqueeze(1)).squeeze(1)
    return float(picked[start - 1:].sum())


def implicit_accuracy(base_margins: Sequence[float], tuned_margins: Sequence[float]) -> Accuracy:
    """Share of pairs where the tuned model's implicit reward prefers the chosen answer."""
    return accuracy([t - b for b, t in zip(base_margins, tuned_margins, strict=True)])
