"""GSM8K scored as lm-evaluation-harness scores it: strict-match, flexible-extract, and maj@k.

The regular expressions and the answer normalisation are the harness's, copied from its task
files (EleutherAI/lm-evaluation-harness, read at commit 47f16bf6 of `lm_eval/tasks/gsm8k/gsm8k.yaml`
and `gsm8k-cot.yaml`, `gsm8k-cot-self-consistency.yaml`; filters in `lm_eval/filters/extraction.py`
and `selection.py`, the metric `exact_match_hf_evaluate` in `lm_eval/api/metrics.py`):

- strict-match (`gsm8k-cot`): regex `The answer is (\\-?[0-9\\.\\,]+).`, first match. Note the final
  `.` is "any character": "The answer is 42" at the very end of an output extracts "4", and
  "The answer is $18." extracts nothing (`$` is not in the class). Both are the harness's
  behaviour, kept on purpose so the numbers compare with published ones.
- flexible-extract (`gsm8k`, `gsm8k-cot`): regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, the LAST match
  (`group_select: -1`), the first non-empty group of it.
- no match gives "[invalid]" (the harness's fallback), which is wrong against any gold.
- exact match: `regexes_to_ignore` `,`, `\\$`, `(?s).*#### `, `\\.$` removed (in that order) from the
  prediction and the gold, `ignore_case`, then string equality. So "1,234" = "1234" and "$18." =
  "18", but "18.00" != "18" and "18 dollars" != "18".
- maj@k (`gsm8k-cot-self-consistency`): the first k sampled paths, regex
  `The answer is (\\-?[0-9\\.\\,]*[0-9]+)` on each, a majority vote over the extracted strings
  ("[invalid]" votes too; ties go to the answer seen first, as `Counter.most_common`), then the
  same exact match. The votes are counted before normalisation, as in the harness.

Issue #2034 of the harness shows why both columns are always shown: on the same outputs
flexible-extract gave 0.785 and strict-match 0.202.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

STRICT_PATTERN = r"The answer is (\-?[0-9\.\,]+)."             # gsm8k-cot.yaml, strict-match
STRICT_HASH_PATTERN = r"#### (\-?[0-9\.\,]+)"                   # gsm8k.yaml, strict-match (not used:
                                                                # our prompts never ask for "####")
FLEXIBLE_PATTERN = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"              # gsm8k(-cot).yaml, flexible-extract
SELF_CONSISTENCY_PATTERN = r"The answer is (\-?[0-9\.\,]*[0-9]+)"   # gsm8k-cot-self-consistency.yaml
REGEXES_TO_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")        # metric_list of gsm8k(-cot).yaml
FALLBACK = "[invalid]"

_STRICT = re.compile(STRICT_PATTERN)
_FLEXIBLE = re.compile(FLEXIBLE_PATTERN)
_SELF_CONSISTENCY = re.compile(SELF_CONSISTENCY_PATTERN)


def regex_filter(pattern: re.Pattern[str], text: str, group_select: int = 0) -> str:
    """The harness's RegexFilter on one response: findall, pick one match, first non-empty group."""
    found = pattern.findall(text)
    if not found:
        return FALLBACK
    match = found[group_select]
    if isinstance(match, tuple):
        match = [m for m in match if m][0]
    return match.strip()


def strict_extract(text: str) -> str:
    return regex_filter(_STRICT, text)


def flexible_extract(text: str) -> str:
    return regex_filter(_FLEXIBLE, text, group_select=-1)


def normalise(answer: str) -> str:
    """The metric's normalisation: regexes_to_ignore removed in order, then lower case."""
    for pattern in REGEXES_TO_IGNORE:
        answer = re.sub(pattern, "", answer)
    return answer.lower()


def harness_match(prediction: str, gold: str) -> bool:
    return normalise(prediction) == normalise(gold)


@dataclass(frozen=True)
class Vote:
    """maj@k of one item: the winning answer, whether it is right, and the vote table."""

    k: int
    answer: str
    correct: bool
    table: tuple[tuple[str, int], ...]


def majority_at_k(paths: Sequence[str], gold: str, k: int | None = None) -> Vote | None:
    """maj@k over the first k paths (all when k is None); None without paths."""
    chosen = list(paths[:k] if k else paths)
    if not chosen:
        return None
    counts = Counter(regex_filter(_SELF_CONSISTENCY, p) for p in chosen)
    answer = counts.most_common(1)[0][0]
    return Vote(k=len(chosen), answer=answer, correct=harness_match(answer, gold),
                table=tuple(counts.most_common()))
