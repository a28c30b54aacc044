"""The DPO-effect study's building blocks (bench/bench_dpo_effect.py), without a model: the property
checker, the pair builder, and stored pairs read back through the training data path (real SQLite,
the export's filters) with the property on the chosen side whichever side won the battle."""
from __future__ import annotations

import importlib.util
import random
import sys
from contextlib import closing
from pathlib import Path

import storage
from playground.export import PreferenceFilters
from playground.training.data import load_preferences

BENCH = Path(__file__).resolve().parent.parent / "bench"


def load_bench():
    """The bench module (bench/ is not a package; its modules import `common` from there)."""
    if "bench_dpo_effect" in sys.modules:
        return sys.modules["bench_dpo_effect"]
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_dpo_effect", BENCH / "bench_dpo_effect.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dpo_effect"] = module
    spec.loader.exec_module(module)
    return module


def test_property_is_the_exact_first_word():
    b = load_bench()
    assert b.has_property("The moon is bright.") and b.has_property('  "The" moon') and b.has_property("The, ")
    assert b.has_property("**The moon**")
    assert not b.has_property("Theory says") and not b.has_property("the moon")   # another word; lower case
    assert not b.has_property("A moon. The moon.") and not b.has_property("") and not b.has_property("The")


def test_pairs_put_an_answer_with_the_property_against_one_without():
    b = load_bench()
    answers = ["The sea.", "A sea.", "The ocean.", "Oceans are big.", "Water."]
    pairs = b.build_pairs(answers, per_prompt=4)
    assert len(pairs) == 4 and len(set(pairs)) == 4
    assert all(b.has_property(answers[c]) and not b.has_property(answers[r]) for c, r in pairs)
    assert {c for c, _ in pairs} == {0, 2} and {r for _, r in pairs} == {1, 3, 4}   # spread over the answers
    assert b.build_pairs(["The a", "The b"], 3) == [] and b.build_pairs(["A", "B"], 3) == []
    assert b.build_pairs(answers, per_prompt=10) and len(b.build_pairs(answers, 10)) == 6   # 2 x 3 combinations


def test_stored_pairs_come_back_through_the_export_with_the_property_chosen(tmp_path):
    b = load_bench()
    samples = [b.Sample(t, "length", 5) for t in ("The cat sat.", "Cats sit.", "The dog ran.", "Dogs run.")]
    pairs = b.build_pairs([s.text for s in samples], per_prompt=4)
    with closing(storage.open_database(tmp_path / "v.db")) as db:
        stored = b.store_pairs(db, "Tell me about pets.", samples, pairs, {"temperature": 0.8}, random.Random(1))
        sides = [r[0] for r in db.execute("SELECT winner FROM votes")]
        split = load_preferences(db, PreferenceFilters(include_truncated=True), held_out_fraction=0.0)
    assert stored == 4 and set(sides) == {"left", "right"}          # both sides won some battles
    assert len(split.train) == 4
    for row in split.train:
        assert row["prompt"] == [{"role": "user", "content": "Tell me about pets."}]
        assert b.has_property(row["chosen"][0]["content"]) and not b.has_property(row["rejected"][0]["content"])


def test_bootstrap_interval_brackets_the_observed_difference():
    b = load_bench()
    before, after = [0, 1, 2, 0, 1, 3], [4, 5, 3, 6, 4, 7]
    lo, hi = b.bootstrap_difference(before, after, n=8, rounds=500)
    observed = (sum(after) - sum(before)) / (6 * 8)
    assert 0 < lo <= observed <= hi < 1
    lo, hi = b.bootstrap_difference([2, 2, 2], [2, 2, 2], n=8, rounds=200)
    assert lo == hi == 0
