"""The lab's scorers: lm-evaluation-harness's GSM8K strict/flexible, maj@k, option log-likelihood.

First on hand-made outputs whose right score is known (including the harness's own traps: commas
in numbers, "$", trailing units and full stops), then through the real bundled model.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from playground.lab import LabConfig, load_items, prepare_lab, run_lab, summarize
from playground.lab import choices as mc
from playground.lab import gsm8k
from playground.lab.metrics import item_scores
from storage import open_database

REPO = Path(__file__).resolve().parent.parent
ARITHMETIC = REPO / "presets" / "tasks" / "arithmetic-word-problems.jsonl"


# ---------------------------------------------------------------- hand-made outputs

@pytest.mark.parametrize("output, gold, strict, strict_ok, flexible, flexible_ok", [
    ("5 + 4 = 9. The answer is 9.", "9", "9", True, "9.", True),
    ("So 1,000 + 234 = 1,234. The answer is 1,234.", "1234", "1,234", True, "1,234.", True),    # commas
    ("She earns 9 * 2 = 18 dollars. The answer is $18.", "18", "[invalid]", False, "$18.", True),  # "$"
    ("The answer is 18 dollars.", "18", "18", True, "18", True),                               # trailing unit
    ("The answer is 42", "42", "4", False, "42", True),          # strict needs one character after the number
    ("It costs 18.00 dollars in total", "18", "[invalid]", False, "18.00", False),  # "18.00" != "18"
    ("The pool holds 1,250 litres.", "1250", "[invalid]", False, "1,250", True),
    ("The pool holds 1,250.", "1250", "[invalid]", False, "1,250.", True),          # trailing full stop
    ("He lost 3 - 8 = -5 points. The answer is -5.", "-5", "-5", True, "-5.", True),
    ("I do not know.", "7", "[invalid]", False, "[invalid]", False),
    ("The answer is 8. Q: a new question with 12 apples", "8", "8.", True, "12", False),  # flexible: LAST number
])
def test_gsm8k_strict_and_flexible_as_the_harness(output, gold, strict, strict_ok, flexible, flexible_ok):
    assert gsm8k.strict_extract(output) == strict
    assert gsm8k.harness_match(strict, gold) is strict_ok
    assert gsm8k.flexible_extract(output) == flexible
    assert gsm8k.harness_match(flexible, gold) is flexible_ok


def test_harness_normalisation_on_gold_answers():
    assert gsm8k.normalise("The work...\n#### 1,234") == "1234"     # the gsm8k task's full gold answer
    assert gsm8k.normalise("$1,234.") == "1234"


def test_majority_at_k_with_its_vote_table():
    paths = ["2 + 6 = 8. The answer is 8.", "The answer is 7.", "so 8. The answer is 8", "The answer is 1,234."]
    vote = gsm8k.majority_at_k(paths, "8")
    assert vote.answer == "8" and vote.correct and vote.k == 4
    assert vote.table == (("8", 2), ("7", 1), ("1,234", 1))
    first = gsm8k.majority_at_k(paths, "8", k=2)                       # the first k paths, as take_first_k
    assert first.k == 2 and first.answer == "8" and first.table == (("8", 1), ("7", 1))   # tie: first seen
    assert gsm8k.majority_at_k(["no idea", "no idea", "The answer is 3."], "3").answer == "[invalid]"
    assert gsm8k.majority_at_k([], "3") is None


def test_item_scores_from_a_stored_row():
    row = {"gold": "8", "output": "The answer is $8.", "error": None,
           "samples": json.dumps({"paths": [{"text": "The answer is 8."}, {"text": "The answer is 9."},
                                            {"text": "The answer is 8."}]})}
    scores = item_scores(row)
    assert (scores["strict_correct"], scores["flexible_correct"]) == (0, 1)
    assert (scores["maj_k"], scores["maj_answer"], scores["maj_correct"], scores["maj_votes"]) == (3, "8", 1, "8: 2; 9: 1")
    assert item_scores({"gold": "B", "output": "(B)", "error": None})["strict_correct"] is None   # not a number


def test_option_picks_with_and_without_length_normalisation():
    short_wins = [mc.OptionScore(-3.0, 1, 2), mc.OptionScore(-4.0, 5, 20)]
    assert mc.picks(short_wins) == ("A", "B")      # raw favours the short option; per character the long one
    assert mc.picks([{"logprob": -2.0, "n_tokens": 1, "n_chars": 4}] * 2) == ("A", "A")   # ties: first option


# ---------------------------------------------------------------- through the real bundled model

def test_strict_and_flexible_columns_on_a_real_run(app_ctx, tmp_path):
    db_path = tmp_path / "gsm.db"
    job = prepare_lab(app_ctx, LabConfig(task_path=ARITHMETIC, models=("smollm2-135m-instruct",),
                                         modes=("few_shot_cot",), limit=2, shots=1, max_tokens=40, logprob=False))
    outcome = run_lab(app_ctx, job, db_path)
    with open_database(db_path) as db:
        (row,) = summarize(db, outcome.run_ids)
        items = load_items(db, outcome.run_ids)
    assert row.strict_accuracy is not None and row.flexible_accuracy is not None
    for it in items:   # the stored columns are the harness's filters applied to the stored output
        assert it["strict_extracted"] == gsm8k.strict_extract(it["output"])
        assert it["flexible_extracted"] == gsm8k.flexible_extract(it["output"])
        assert it["flexible_correct"] == int(gsm8k.harness_match(it["flexible_extracted"], it["gold"]))
    assert row.flexible_accuracy == sum(i["flexible_correct"] for i in items) / 2


def test_maj_at_k_on_a_real_self_consistency_run(app_ctx, tmp_path):
    db_path = tmp_path / "sc.db"
    job = prepare_lab(app_ctx, LabConfig(task_path=ARITHMETIC, models=("smollm2-135m-instruct",),
                                         modes=("self_consistency",), limit=1, shots=1, samples=3, max_tokens=24,
                                         logprob=False))
    outcome = run_lab(app_ctx, job, db_path)
    with open_database(db_path) as db:
        (row,) = summarize(db, outcome.run_ids)
        (item,) = load_items(db, outcome.run_ids)
    paths = json.loads(item["samples"])["paths"]
    assert len(paths) == 3 and row.maj_k == 3 and item["maj_k"] == 3
    vote = gsm8k.majority_at_k([p["text"] for p in paths], item["gold"])
    assert item["maj_answer"] == vote.answer and item["maj_votes"].count(":") == len(vote.table)
    assert sum(int(part.rsplit(": ", 1)[1]) for part in item["maj_votes"].split("; ")) == 3
    assert row.maj_accuracy == item["maj_correct"]


def test_option_loglikelihood_on_a_real_run(app_ctx, smol, tmp_path):
    tasks = tmp_path / "mc.jsonl"
    rows = [{"input": "What colour is the sky on a clear day?", "target": "blue", "choices": ["blue", "green", "loud"]},
            {"input": "How many legs does a spider have?", "target": "8", "choices": ["2", "8"]}]
    tasks.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    db_path = tmp_path / "mc.db"
    job = prepare_lab(app_ctx, LabConfig(task_path=tasks, models=("smollm2-135m-instruct",), modes=("zero_shot",),
                                         max_tokens=8))
    outcome = run_lab(app_ctx, job, db_path)
    with open_database(db_path) as db:
        (row,) = summarize(db, outcome.run_ids)
        items = load_items(db, outcome.run_ids)
    first = json.loads(items[0]["option_logprobs"])
    assert len(first) == 3 and all(o["logprob"] < 0 and o["n_tokens"] >= 1 for o in first)
    # the stored score is the model's own log-likelihood of " blue" after the harness's frame
    context = mc.context_for(smol, job.items[0])
    assert context.endswith("Question: What colour is the sky on a clear day?\nAnswer:")
    assert first[0]["logprob"] == pytest.approx(smol.continuation_logprob(context, " blue")[0], abs=1e-4)
    picks = [mc.picks(json.loads(i["option_logprobs"])) for i in items]
    assert [i["choice_pick"] for i in items] == [p[0] for p in picks]
    assert row.choice_accuracy == sum(i["choice_correct"] for i in items) / 2
    assert row.choice_accuracy_norm is not None


def test_lab_json_has_both_gsm8k_columns(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "lab", "--tasks", str(ARITHMETIC), "--modes", "few_shot_cot",
                          "--shots", "1", "--limit", "1", "--max-tokens", "24", "--no-logprob",
                          "--db", str(tmp_path / "cli.db"), "--out", str(tmp_path / "out"), "--json"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    (run,) = json.loads(out.stdout)["runs"]
    assert {"strict_accuracy", "flexible_accuracy"} <= set(run) and run["flexible_accuracy"] is not None
