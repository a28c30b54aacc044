"""Scores derived from a stored item: the harness's GSM8K columns, maj@k, option log-likelihood.

They are computed when a run is read, from what every row stores (the output, the sampled paths,
the options' log-likelihoods), never stored themselves: old rows get them too, and a fix to a
scorer applies to every past run alike. Adding a metric is one function here and one field of
`SummaryRow`.
"""
from __future__ import annotations

import json
import re
from typing import Any, Sequence

from playground.lab import choices as mc
from playground.lab import gsm8k

_NUMBER_GOLD = re.compile(r"^-?\d+(?:\.\d+)?$")


def samples_of(row: dict[str, Any]) -> list[str]:
    """The sampled paths' texts of a self-consistency item ([] otherwise)."""
    raw = row.get("samples")
    if not raw:
        return []
    data = json.loads(raw) if isinstance(raw, str) else raw
    return [p.get("text") or "" for p in data.get("paths", [])]


def item_scores(row: dict[str, Any], k: int | None = None) -> dict[str, Any]:
    """The derived per-item columns (None where a scorer does not apply to the item)."""
    out: dict[str, Any] = {"strict_extracted": None, "strict_correct": None, "flexible_extracted": None,
                           "flexible_correct": None, "maj_k": None, "maj_answer": None, "maj_correct": None,
                           "maj_votes": None, "choice_pick": None, "choice_correct": None,
                           "choice_pick_norm": None, "choice_correct_norm": None}
    gold = str(row.get("gold") or "")
    output = row.get("output") or ""
    if _NUMBER_GOLD.match(gold) and row.get("error") is None:
        strict, flexible = gsm8k.strict_extract(output), gsm8k.flexible_extract(output)
        out.update(strict_extracted=strict, strict_correct=int(gsm8k.harness_match(strict, gold)),
                   flexible_extracted=flexible, flexible_correct=int(gsm8k.harness_match(flexible, gold)))
        vote = gsm8k.majority_at_k(samples_of(row), gold, k)
        if vote is not None:
            out.update(maj_k=vote.k, maj_answer=vote.answer, maj_correct=int(vote.correct),
                       maj_votes="; ".join(f"{a}: {n}" for a, n in vote.table))
    options = row.get("option_logprobs")
    if options:
        raw, norm = mc.picks(json.loads(options) if isinstance(options, str) else options)
        out.update(choice_pick=raw, choice_correct=int(raw == gold), choice_pick_norm=norm,
                   choice_correct_norm=int(norm == gold))
    return out


def share(rows: Sequence[dict[str, Any]], column: str) -> tuple[int, int, float | None]:
    """(correct, n, accuracy) over the items where a derived column applies."""
    values = [r[column] for r in rows if r.get(column) is not None]
    return sum(values), len(values), (sum(values) / len(values) if values else None)
