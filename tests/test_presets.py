"""Prompting presets and exemplar sets: the shipped files, and field-level errors for bad files."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.prompting import MODES, builtin_presets, builtin_presets_dir, default_preset_for, load_presets
from playground.prompting.extract import answers_match, extract_answer

GOOD_SET = """\
id: tiny-arith
title: Tiny
family: arithmetic
answer_kind: number
items:
  - question: What is 1 + 1?
    answer: "2"
    reasoning: One plus one is two. The answer is 2.
  - question: What is 2 + 3?
    answer: 5
    reasoning: Two plus three is five. The answer is 5.
"""

GOOD_PRESET = """\
id: tiny-few-shot
mode: few_shot
family: arithmetic
exemplar_set: tiny-arith
"""


def _folder(tmp_path: Path, prompting: dict[str, str | bytes], exemplars: dict[str, str | bytes] | None = None) -> Path:
    """A presets folder with the given files; by default one valid exemplar set."""
    for sub, files in (("prompting", prompting), ("exemplars", {"tiny.yaml": GOOD_SET} if exemplars is None else exemplars)):
        (tmp_path / sub).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            target = tmp_path / sub / name
            target.write_bytes(content) if isinstance(content, bytes) else target.write_text(textwrap.dedent(content))
    return tmp_path


def _only_error(tmp_path: Path, prompting: dict, exemplars: dict | None = None):
    library = load_presets(_folder(tmp_path, prompting, exemplars))
    assert len(library.errors) == 1, [str(e) for e in library.errors]
    return library, library.errors[0]


# ---------------------------------------------------------------- shipped files

def test_shipped_presets_load_cleanly():
    library = builtin_presets()
    assert library.errors == [], [str(e) for e in library.errors]
    assert {"arithmetic-word-problems", "commonsense-yes-no", "sentiment-reviews"} <= set(library.exemplars)
    for mode in MODES:
        assert default_preset_for(mode).family == "arithmetic"
        assert default_preset_for(mode).mode == mode
        assert default_preset_for(mode, "commonsense_yes_no").mode == mode
    assert default_preset_for("zero_shot", "general").id == "general-chat"
    for mode in ("zero_shot", "few_shot", "few_shot_cot", "instruction"):
        assert default_preset_for(mode, "sentiment").mode == mode


def test_default_preset_for_unknown_combination():
    with pytest.raises(PlaygroundError, match="no prompting preset"):
        default_preset_for("few_shot", "general")
    with pytest.raises(PlaygroundError, match="unknown mode"):
        default_preset_for("cot")


@pytest.mark.parametrize("set_id, answers", [
    ("arithmetic-word-problems", None), ("commonsense-yes-no", {"yes", "no"}), ("sentiment-reviews", {"positive", "negative"}),
])
def test_shipped_exemplar_sets(set_id, answers):
    exemplars = builtin_presets().exemplars[set_id]
    assert len(exemplars.items) == 8
    for item in exemplars.items:
        assert item.reasoning.endswith(f"The answer is {item.answer}.")
        found = extract_answer(item.reasoning, exemplars.answer_kind)
        assert found is not None and answers_match(found.value, item.answer, exemplars.answer_kind), item
        assert answers is None or item.answer in answers
    if answers:
        assert {item.answer for item in exemplars.items} == answers, "both labels must be demonstrated"


def test_arithmetic_worked_solutions_are_correct():
    """Every 'a op b = c' step in the shipped solutions is checked, so the CoT demonstrations never teach errors."""
    import re
    step = re.compile(r"(\d+(?:\s*[-+*/]\s*\d+)+)\s*=\s*(\d+)")
    checked = 0
    for item in builtin_presets().exemplars["arithmetic-word-problems"].items:
        for expression, result in step.findall(item.reasoning):
            assert eval(expression) == int(result), (expression, result)  # noqa: S307 - digits and operators only
            checked += 1
    assert checked >= 12


def test_a_user_adds_a_preset_by_dropping_a_file(tmp_path):
    library = load_presets(_folder(tmp_path, {"mine.yaml": GOOD_PRESET}))
    assert library.errors == []
    preset = library.prompting["tiny-few-shot"]
    assert preset.shots == 2, "default shots = all items of the set (at most 8)"
    assert preset.answer_kind == "number", "answer kind defaults from the family"
    assert library.exemplars["tiny-arith"].items[1].answer == "5", "numeric answers are read as text"


def test_missing_folders_give_an_empty_library(tmp_path):
    library = load_presets(tmp_path / "nowhere")
    assert (library.prompting, library.exemplars, library.errors) == ({}, {}, [])


# ---------------------------------------------------------------- validation errors: file + field

@pytest.mark.parametrize("content, field, problem", [
    ("id: p\nfamily: arithmetic\n", "mode", "is required"),
    ("mode: zero_shot\nfamily: arithmetic\n", "id", "is required"),
    ("id: p\nmode: cot\nfamily: arithmetic\n", "mode", "'cot' is not one of"),
    ("id: p\nmode: zero_shot\nfamily: maths\n", "family", "'maths' is not one of"),
    ("id: p\nmode: zero_shot\nfamily: arithmetic\nanswer_kind: integer\n", "answer_kind", "not one of"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\nexemplar_set: tiny-arith\nshots: eight\n", "shots", "expected int"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\nexemplar_set: tiny-arith\nshots: 9\n", "shots", "out of range"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\nexemplar_set: tiny-arith\nshots: true\n", "shots", "expected a number"),
    ("id: p\nmode: self_consistency\nfamily: arithmetic\nsamples: 50\n", "samples", "out of range"),
    ("id: p\nmode: zero_shot\nfamily: arithmetic\nsystem_prompt: [a, b]\n", "system_prompt", "expected a string"),
    ("id: p\nmode: instruction\nfamily: arithmetic\ninstruction_templates: ['Solve: {q}']\n",
     "instruction_templates[0]", "{question}"),
    ("id: p\nmode: instruction\nfamily: arithmetic\n", "instruction_templates", "at least one template"),
    ("id: p\nmode: instruction\nfamily: arithmetic\ninstruction_templates: '{question}'\n",
     "instruction_templates", "expected list"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\n", "exemplar_set", "needs an exemplar set"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\nexemplar_set: nope\n", "exemplar_set", "no exemplar set 'nope'"),
    ("id: p\nmode: few_shot\nfamily: sentiment\nexemplar_set: tiny-arith\n", "exemplar_set", "family 'arithmetic'"),
    ("id: p\nmode: few_shot\nfamily: arithmetic\nexemplar_set: tiny-arith\nshots: 3\n", "shots", "has 2 items"),
    ("id: p\nmode: zero_shot\nfamily: arithmetic\nshot: 3\n", "shot", "unknown field"),
    ("id: 'has space'\nmode: zero_shot\nfamily: arithmetic\n", "id", "may only use"),
    ("id: p\nmode: zero_shot_cot\nfamily: arithmetic\ntrigger: '  '\n", "trigger", "must not be empty"),
], ids=lambda value: value if isinstance(value, str) and "\n" not in value and len(value) < 30 else None)
def test_preset_field_errors(tmp_path, content, field, problem):
    library, error = _only_error(tmp_path, {"bad.yaml": content, "good.yaml": GOOD_PRESET})
    assert error.path.endswith("bad.yaml") and error.field == field, str(error)
    assert problem in error.problem
    assert "bad.yaml" in str(error) and field in str(error)
    assert "p" not in library.prompting and "tiny-few-shot" in library.prompting, "bad file skipped, others kept"


@pytest.mark.parametrize("content, problem", [
    ("id: p\nmode: [zero_shot\n", "invalid YAML at line"),
    ("- just\n- a list\n", "expected a mapping"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file"),
])
def test_unreadable_files_are_reported(tmp_path, content, problem):
    _, error = _only_error(tmp_path, {"broken.yaml": content})
    assert error.path.endswith("broken.yaml") and problem in error.problem


def test_duplicate_ids_are_reported_and_the_first_kept(tmp_path):
    library, error = _only_error(tmp_path, {"a.yaml": GOOD_PRESET, "b.yaml": GOOD_PRESET})
    assert error.path.endswith("b.yaml") and error.field == "id" and "duplicate" in error.problem
    assert library.prompting["tiny-few-shot"].path.endswith("a.yaml")


def test_followup_can_be_switched_off(tmp_path):
    library = load_presets(_folder(tmp_path, {"p.yaml": "id: p\nmode: zero_shot_cot\nfamily: arithmetic\nfollowup: null\n"}))
    assert library.errors == [] and library.prompting["p"].followup is None


@pytest.mark.parametrize("item, field, problem", [
    ("  - answer: '1'\n", "items[0].question", "is required"),
    ("  - question: Q?\n", "items[0].answer", "is required"),
    ("  - question: Q?\n    answer: yes\n", "items[0].answer", "quote it"),
    ("  - question: Q?\n    answer: '3'\n    reasoning: Three. The answer is 4.\n", "items[0].reasoning", "The answer is 3."),
    ("  - question: Q?\n    answer: '3'\n    explanation: x\n", "items[0].explanation", "unknown field"),
    ("  - just a string\n", "items[0]", "expected a mapping"),
])
def test_exemplar_item_errors(tmp_path, item, field, problem):
    content = "id: s\nfamily: arithmetic\nitems:\n" + item
    _, error = _only_error(tmp_path, {}, {"set.yaml": content})
    assert error.path.endswith("set.yaml") and error.field == field, str(error)
    assert problem in error.problem


def test_exemplar_set_errors(tmp_path):
    _, error = _only_error(tmp_path, {}, {"set.yaml": "id: s\nfamily: arithmetic\nitems: []\n"})
    assert error.field == "items" and "at least one" in error.problem
    _, error = _only_error(tmp_path / "2", {}, {"set.yaml": "id: s\nitems: []\n"})
    assert error.field == "family"


def test_cot_preset_needs_reasoning_in_its_set(tmp_path):
    bare_set = "id: bare\nfamily: arithmetic\nitems:\n  - question: Q?\n    answer: '1'\n"
    preset = "id: p\nmode: few_shot_cot\nfamily: arithmetic\nexemplar_set: bare\n"
    _, error = _only_error(tmp_path, {"p.yaml": preset}, {"bare.yaml": bare_set})
    assert error.field == "exemplar_set" and "worked reasoning" in error.problem


def test_shipped_folder_is_the_repository_presets():
    assert (builtin_presets_dir() / "prompting").is_dir() and (builtin_presets_dir() / "exemplars").is_dir()
