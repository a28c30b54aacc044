"""Task files: GSM8K lines, the generic format with choices, and malformed input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.lab.tasks import load_task_file

GSM8K = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
PRESET_TASKS = Path(__file__).resolve().parent.parent / "presets" / "tasks"


def test_gsm8k_parser_on_real_lines(tmp_path):
    if not GSM8K.is_file():
        pytest.skip("../shared/data/gsm8k/test.jsonl is not beside the repo")
    lines = GSM8K.read_text(encoding="utf-8").splitlines()[:50]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tasks = load_task_file(path)
    assert len(tasks.items) == 50 and not tasks.errors
    first = json.loads(lines[0])
    gold = first["answer"].split("####")[-1].strip().replace(",", "")
    assert tasks.items[0].question == first["question"] and tasks.items[0].gold == gold
    assert all(i.answer_kind == "number" for i in tasks.items)
    assert "gsm8k" in tasks.formats


def test_gold_numbers_with_commas_are_normalised(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"question": "How many?", "answer": "so\n#### 1,234"}) + "\n")
    assert load_task_file(path).items[0].gold == "1234"


def test_generic_format_with_choices(tmp_path):
    path = tmp_path / "mc.jsonl"
    rows = [{"input": "Which is a fruit?", "target": "apple", "choices": ["stone", "apple", "chair"]},
            {"input": "Is ice cold?", "target": "yes"}, {"input": "Great film!", "target": "positive"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_task_file(path).items
    assert items[0].gold == "B" and "(A) stone" in items[0].question and items[0].answer_kind == "choice"
    assert items[1].answer_kind == "yes_no" and items[1].gold == "yes"
    assert items[2].answer_kind == "text"


def test_malformed_lines_are_reported_with_line_numbers(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "1+1?", "answer": "#### 2"}\nnot json\n[1, 2]\n{"input": "x"}\n')
    tasks = load_task_file(path)
    assert len(tasks.items) == 1
    assert [e.line for e in tasks.errors] == [2, 3, 4]


@pytest.mark.parametrize("content", [b"", b"\n \n", b"\x00\x01\xff" * 50])
def test_unusable_files(tmp_path, content):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(PlaygroundError, match="x.jsonl"):
        load_task_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(PlaygroundError, match="nope.jsonl"):
        load_task_file(tmp_path / "nope.jsonl")


def test_shipped_task_sets_load():
    for path in PRESET_TASKS.glob("*.jsonl"):
        tasks = load_task_file(path)
        assert len(tasks.items) >= 15 and not tasks.errors, path


def test_gsm8k_test_split_ships_whole_with_its_licence():
    tasks = load_task_file(PRESET_TASKS / "gsm8k-test.jsonl")
    assert len(tasks.items) == 1319 and not tasks.errors and tasks.formats == ("gsm8k",)
    assert tasks.items[0].gold == "18" and tasks.items[0].question.startswith("Janet’s ducks lay 16 eggs")
    assert {i.answer_kind for i in tasks.items} == {"number"}
    assert tasks.sha256 == "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"   # unchanged
    licence = (PRESET_TASKS / "LICENSE-gsm8k").read_text()
    assert "gsm8k-test.jsonl" in licence and "MIT License" in licence and "Copyright (c) 2021 OpenAI" in licence


# ---------------------------------------------------------------- scoring and normalisation

from playground.lab import answer_prefix, scoring_continuation, scoring_prompt  # noqa: E402
from playground.lab.tasks import TaskItem, infer_family, match_label, score_answer  # noqa: E402
from playground.prompting.plan import PromptPlan  # noqa: E402


def item(gold: str, kind: str) -> TaskItem:
    return TaskItem(index=0, line=1, question="q", gold=gold, answer_kind=kind)


@pytest.mark.parametrize("extracted, gold, kind, correct", [
    ("1,234", "1234", "number", True), ("$1234.00", "1234", "number", True), ("0.5", "1/2", "number", True),
    ("1235", "1234", "number", False), (None, "1234", "number", False),
    ("Yes", "yes", "yes_no", True), ("no", "yes", "yes_no", False),
    ("b", "B", "choice", True), ("C", "B", "choice", False),
])
def test_exact_match_by_kind(extracted, gold, kind, correct):
    assert score_answer(item(gold, kind), extracted, "")[1] is correct


def test_text_answers_are_scored_by_label():
    labels = ("negative", "positive")
    sentiment = item("positive", "text")
    assert score_answer(sentiment, "This review is Positive", "This review is Positive. Not negative.", labels) \
        == ("positive", True)
    assert score_answer(sentiment, "Hard to say", "Hard to say. Overall negative.", labels) == ("negative", False)
    assert match_label("nothing here", labels) is None
    assert score_answer(item("Paris", "text"), "paris", "paris") == ("paris", True)   # no labels: plain text match


def test_family_is_inferred_from_the_answers():
    assert infer_family((item("3", "number"),)) == "arithmetic"
    assert infer_family((item("yes", "yes_no"), item("no", "yes_no"))) == "commonsense_yes_no"
    assert infer_family((item("positive", "text"), item("negative", "text"))) == "sentiment"
    assert infer_family((item("B", "choice"),)) == "general"


def plan(mode: str, followup: str | None = None) -> PromptPlan:
    return PromptPlan(mode=mode, messages=None, text="Q: x\nA:", stop=(), followup=followup)


def test_scoring_prompt_uses_the_modes_answer_prefix():
    assert answer_prefix(plan("zero_shot")) == "" and answer_prefix(plan("instruction")) == ""
    for mode in ("few_shot", "few_shot_cot", "self_consistency"):
        assert answer_prefix(plan(mode)) == "The answer is"
    assert answer_prefix(plan("zero_shot_cot", "Therefore, the answer (arabic numerals) is")).startswith("Therefore")
    assert scoring_prompt("Q: x\nA:", plan("few_shot_cot")) == "Q: x\nA: The answer is"
    assert scoring_prompt("<|im_start|>assistant\n", plan("few_shot_cot")) == "<|im_start|>assistant\nThe answer is"
    assert scoring_prompt("Q: x\nA:", plan("zero_shot")) == "Q: x\nA:"


def test_scoring_continuation_follows_the_prompt_end():
    assert scoring_continuation("A: The answer is", item("42", "number")) == " 42"
    assert scoring_continuation("assistant\n", item("yes", "yes_no")) == "Yes"   # a reply starts capitalised
    assert scoring_continuation("assistant\n", item("42", "number")) == "42"
    assert scoring_continuation("The answer is", item("B", "choice")) == " (B)"
