"""Task files: GSM8K lines, the generic format with choices, and malformed input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.lab_tasks import load_task_file

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
