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
