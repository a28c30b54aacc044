"""Multiple choice scored by the log-likelihood of each option, as lm-evaluation-harness scores ARC/MMLU.

Generation asks a small model to write "(B)"; it often writes something else, and exact match
then says nothing. Scoring each option's log-likelihood needs no generation and shows signal
above chance at any size. As the harness's `multiple_choice` tasks (e.g. `arc_easy`:
`doc_to_text: "Question: {{question}}\\nAnswer:"`, target delimiter " "):

- context: "Question: <stem>\\nAnswer:" as plain text (no chat template, no options listed), with
  the model's BOS text in front as every prompt of the app has;
- each option scored as the continuation " <option text>": the sum of its token log-probs;
- `acc`: the option with the highest sum; `acc_norm`: the highest sum divided by the option's
  length in characters (the harness's `completion_len`), which removes the bias for short options.

Ties go to the first option (numpy's argmax, as in the harness).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from playground.errors import PlaygroundError
from playground.lab.tasks import CHOICE_LETTERS, TaskItem

CONTEXT = "Question: {stem}\nAnswer:"
DELIMITER = " "


@dataclass(frozen=True)
class OptionScore:
    """One option: its summed log-prob, token count and length in characters."""

    logprob: float
    n_tokens: int
    n_chars: int


def context_for(model: Any, item: TaskItem) -> str:
    text = CONTEXT.format(stem=item.stem or item.question)
    bos = getattr(model, "bos_text", "") or ""
    return text if not bos or text.startswith(bos) else bos + text


def score_options(model: Any, item: TaskItem) -> list[OptionScore] | None:
    """Every option's score, or None when the item has no options or the backend cannot score."""
    if not item.choices:
        return None
    context = context_for(model, item)
    scores = []
    for option in item.choices:
        try:
            total, n = model.continuation_logprob(context, DELIMITER + option)
        except (PlaygroundError, NotImplementedError):
            return None
        scores.append(OptionScore(logprob=float(total), n_tokens=int(n), n_chars=len(option)))
    return scores


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def picks(scores: Sequence[OptionScore | dict[str, Any]]) -> tuple[str, str]:
    """(letter by raw log-likelihood, letter by log-likelihood per character)."""
    rows = [s if isinstance(s, OptionScore) else OptionScore(**s) for s in scores]
    raw = _argmax([s.logprob for s in rows])
    norm = _argmax([s.logprob / max(1, s.n_chars) for s in rows])
    return CHOICE_LETTERS[raw], CHOICE_LETTERS[norm]
