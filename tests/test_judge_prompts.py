"""Judge prompts load and validate like the other presets; verdict parsing on hand-made outputs."""
from __future__ import annotations

from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.judge.prompts import (UNPARSEABLE, label_to_side, load_judge_prompt, load_judge_prompts,
                                      parse_verdict)

REPO = Path(__file__).resolve().parent.parent


def test_shipped_judge_prompts_load_without_errors():
    lib = load_judge_prompts(REPO / "presets")
    assert lib.errors == []
    assert {"general", "reference"} <= set(lib.prompts)
    assert lib.prompts["general"].kind == "pairwise" and lib.prompts["reference"].kind == "reference"
    msgs = lib.prompts["reference"].messages("What is 2+2?", "4", "5", reference="4")
    assert msgs[0]["role"] == "system" and "[[D]]" in msgs[0]["content"]
    assert "[The Start of Reference Answer]\n4\n" in msgs[1]["content"]
    assert "Assistant A's Answer]\n4\n" in msgs[1]["content"] and "Assistant B's Answer]\n5\n" in msgs[1]["content"]
    with pytest.raises(PlaygroundError, match="reference answer"):
        lib.prompts["reference"].messages("q", "a", "b")
    with pytest.raises(PlaygroundError, match="no judge prompt 'nope'"):
        lib.get("nope")


@pytest.mark.parametrize("output, expected", [
    ("Assistant A is more accurate.\n\n[[A]]", "A"),
    ("B explains the steps. Final verdict: [[B]]", "B"),
    ("Both are equally good. [[C]]", "tie"),
    ("[[ tie ]]", "tie"),
    ("Neither answer is right. [[D]]", "both_bad"),
    ("[[both bad]]", "both_bad"),
    ("verdict [[b]]", "B"),
    ("[[A]] ... after reflection, still [[A]]", "A"),
    ("I prefer assistant A.", UNPARSEABLE),                 # no marker: never guessed from wording
    ("Output [[A]] if A is better, [[B]] if B is better", UNPARSEABLE),   # echoed format: conflicting
    ("[A]", UNPARSEABLE),
    ("", UNPARSEABLE),
    ("[[E]]", UNPARSEABLE),
])
def test_parse_verdict(output, expected):
    assert parse_verdict(output, allow_both_bad=True) == expected


# What real judges wrote with the general prompt (docs/benchmarks.md "Judges of three sizes"), and
# what each rule makes of it: (output, the MT-Bench rule the app uses, the rule with the variants).
RECORDED = [
    ("[[B]]", "B", "B"),                                    # Qwen 1.5B and 0.5B on GSM8K Arena battles
    ("[[[A]]]", "A", "A"),                                  # Qwen 0.5B: an extra bracket, one marker inside
    ("[Assistant A]", UNPARSEABLE, "A"),                    # Qwen 0.5B and 1.5B on the test suite's toy battles
    ("[Assistant A] is better.\n\nExplanation:\nAssistant A's response is more detailed and provides a clear "
     "calculation. It starts by stating that Omar saves $15 every week, which is a straightforward and accurate "
     "statement. Then, it calculates how many weeks it will take him to save $240 by dividing $240 by $15. "
     "Assistant A's response is also more concise and to the point, which is a good practice in writing answers. "
     "Assistant B's", UNPARSEABLE, "A"),                    # Qwen 1.5B, toy battle, cut at 96 tokens
    ("[Assistant A's Answer]", UNPARSEABLE, UNPARSEABLE),   # Qwen 0.5B: the template's header, nothing else
    ("[The Start of Assistant C's Answer]\nThe answer to the question is: 337.5", UNPARSEABLE, UNPARSEABLE),  # 135M
    ("The answer is: 12", UNPARSEABLE, UNPARSEABLE),        # 135M: answers the question instead
    ("[[Assistant B]]", UNPARSEABLE, "B"),
    ("[Assistant A] is clearer than [Assistant B]", UNPARSEABLE, UNPARSEABLE),   # two sides named: no verdict
    ("[[A]] ... [Assistant B]", "A", UNPARSEABLE),          # with variants, two different markers conflict
]


@pytest.mark.parametrize("output, strict, variants", RECORDED)
def test_recorded_judge_outputs_under_both_rules(output, strict, variants):
    assert parse_verdict(output, allow_both_bad=True) == strict
    assert parse_verdict(output, allow_both_bad=True, variants=True) == variants


def test_both_bad_is_unparseable_when_the_prompt_does_not_allow_it():
    assert parse_verdict("[[D]]", allow_both_bad=False) == UNPARSEABLE
    assert parse_verdict("[[A]]", allow_both_bad=False) == "A"


def test_labels_map_to_battle_sides_in_both_orders():
    assert label_to_side("A", "AB") == "left" and label_to_side("B", "AB") == "right"
    assert label_to_side("A", "BA") == "right" and label_to_side("B", "BA") == "left"
    assert label_to_side("tie", "BA") == "tie" and label_to_side(UNPARSEABLE, "AB") == UNPARSEABLE


GOOD = """id: mine
kind: pairwise
allow_both_bad: false
system_prompt: 'Say "[[A]]", "[[B]]" or "[[C]]".'
template: "Q: {question}\\nA: {answer_a}\\nB: {answer_b}"
"""


@pytest.mark.parametrize("change, field, problem", [
    (("kind: pairwise", "kind: single"), "kind", "not one of"),
    (("{answer_b}", "{answer_c}"), "template", "{answer_b}"),
    (("kind: pairwise", "kind: reference"), "template", "{reference}"),
    (("allow_both_bad: false", "allow_both_bad: true"), "system_prompt", "[[D]]"),
    (("allow_both_bad: false", "allow_both_bad: false\nmax_token: 3"), "max_token", "unknown field"),
    (("allow_both_bad: false", "allow_both_bad: false\nmax_tokens: 0"), "max_tokens", "out of range"),
    (("id: mine", "id: 'a@b'"), "id", "may only use"),
    (("allow_both_bad: false", "allow_both_bad: 'no'"), "allow_both_bad", "expected bool"),
])
def test_bad_judge_prompt_files_are_reported_and_skipped(tmp_path, change, field, problem):
    (tmp_path / "judges").mkdir()
    assert load_judge_prompt(_write(tmp_path / "judges" / "good.yaml", GOOD)).id == "mine"
    bad = _write(tmp_path / "judges" / "bad.yaml", GOOD.replace(*change).replace("id: mine", "id: other")
                 if change[0] != "id: mine" else GOOD.replace(*change))
    lib = load_judge_prompts(tmp_path)
    assert list(lib.prompts) == ["mine"]
    assert len(lib.errors) == 1
    err = lib.errors[0]
    assert err.path == str(bad) and err.field == field and problem in err.problem
    with pytest.raises(PlaygroundError, match="skipped .*bad.yaml"):
        lib.get("other")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
