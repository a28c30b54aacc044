"""Per-annotator statistics and inter-annotator agreement, on votes with planted agreement.

Planting: each battle has a true verdict drawn from shares p; each annotator reports it with
probability a, else an independent draw from p. Then every annotator's verdicts have shares p and
two annotators agree with probability a^2 + (1 - a^2) * sum(p^2), so Cohen's and Fleiss' kappa are
both a^2: the value the bootstrap intervals must cover.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

import storage
from playground.agreement import annotator_stats, report_markdown, team_kappa, team_report
from playground.stats import cohen_kappa, fleiss_kappa
from playground.verdicts import WINNERS

SHARES = (0.4, 0.3, 0.2, 0.1)


def planted_votes(n_battles: int, annotators: list[str], accuracy: float, seed: int) -> list[tuple[int, str, str]]:
    rng = random.Random(seed)
    votes = []
    for battle in range(1, n_battles + 1):
        truth = rng.choices(WINNERS, SHARES)[0]
        for voter in annotators:
            votes.append((battle, voter, truth if rng.random() < accuracy else rng.choices(WINNERS, SHARES)[0]))
    return votes


def test_cohen_kappa_textbook_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> po 0.7, pe 0.5, kappa 0.4
    a = ["left"] * 25 + ["right"] * 25
    b = ["left"] * 20 + ["right"] * 5 + ["left"] * 10 + ["right"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 items, 14 raters, 5 categories
    counts = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                       [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(counts) == pytest.approx(0.210, abs=0.001)


def test_fleiss_equals_cohen_direction_and_nan_without_variation():
    assert math.isnan(fleiss_kappa(np.array([[2, 0, 0, 0], [3, 0, 0, 0]])))
    assert math.isnan(fleiss_kappa(np.array([[1, 0, 0, 0]])))        # no item with two ratings


@pytest.mark.parametrize("annotators, method", [(["ann", "bob"], "cohen"), (["ann", "bob", "cy"], "fleiss")])
@pytest.mark.parametrize("accuracy", [0.8, 0.5])
def test_kappa_interval_covers_the_planted_value(annotators, method, accuracy):
    votes = planted_votes(400, annotators, accuracy, seed=7)
    kappa = team_kappa(votes, resamples=400)
    assert kappa.method == method and kappa.n_battles == 400 and kappa.annotators == tuple(annotators)
    assert kappa.low <= accuracy ** 2 <= kappa.high
    assert kappa.low < kappa.kappa < kappa.high and kappa.high - kappa.low < 0.25


def test_kappa_interval_coverage_over_seeds():
    """Not one lucky seed: over 20 planted data sets the 95% interval misses the planted value rarely."""
    covered = sum(k.low <= 0.49 <= k.high for k in
                  (team_kappa(planted_votes(150, ["ann", "bob"], 0.7, seed=s), resamples=200) for s in range(20)))
    assert covered >= 16


def test_team_kappa_is_none_without_overlap():
    assert team_kappa([(1, "ann", "left"), (2, "bob", "right")]) is None


def test_annotator_stats_on_known_votes():
    votes = [(1, "ann", "left"), (1, "bob", "left"), (1, "cy", "right"),
             (2, "ann", "tie"), (2, "bob", "right"), (2, "cy", "right"),
             (3, "ann", "left"), (3, "bob", "both_bad"),
             (4, "ann", "right")]
    stats = {s.voter: s for s in annotator_stats(votes)}
    ann = stats["ann"]
    assert (ann.votes, ann.tie_rate, ann.left_rate) == (4, 0.25, pytest.approx(2 / 3))
    # ann: battle 1 others split (left/right) -> no majority; 2 majority right, ann tie -> no; 3 others = bob both_bad
    assert (ann.shared_battles, ann.majority_battles, ann.agreement_with_majority) == (3, 2, 0.0)
    bob = stats["bob"]
    # bob: battles 1 (ann left, cy right) and 2 (ann tie, cy right) split; 3: ann left, bob both_bad
    assert (bob.votes, bob.both_bad_rate, bob.majority_battles, bob.agreement_with_majority) == (
        3, pytest.approx(1 / 3), 1, 0.0)
    cy = stats["cy"]          # battle 1: others both left, cy right; battle 2: others split
    assert (cy.shared_battles, cy.majority_battles, cy.agreement_with_majority) == (2, 1, 0.0)
    agreeing = {s.voter: s for s in annotator_stats([(1, "a", "left"), (1, "b", "left"), (1, "c", "left"),
                                                     (2, "a", "tie"), (2, "b", "tie"), (2, "c", "right")])}
    assert agreeing["a"].agreement_with_majority == 1.0 and agreeing["c"].agreement_with_majority == 0.5
    assert math.isnan(annotator_stats([(1, "ann", "tie")])[0].left_rate)


def test_team_report_reads_counted_votes_of_a_real_database(tmp_path: Path):
    db = storage.open_database(tmp_path / "p.db")
    votes = planted_votes(60, ["ann", "bob"], 0.9, seed=3)
    battle_ids = {}
    for battle, voter, winner in votes:
        if battle not in battle_ids:
            conv = [{"role": "user", "content": f"q{battle}"}]
            ids = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=conv, output=m))
                   for m in ("a", "b")]
            battle_ids[battle] = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1],
                                                       anonymous=True, session_id="s")
        storage.record_vote(db, battle_id=battle_ids[battle], winner=winner, session_id=f"user:{voter}/s")
    report = team_report(db, resamples=100)
    db.close()
    assert report["votes"] == 120 and report["overlapping_battles"] == 60
    assert report["agreement"]["method"] == "cohen" and tuple(report["agreement"]["annotators"]) == ("ann", "bob")
    assert report["agreement"]["kappa"] == pytest.approx(team_kappa(votes, resamples=10).kappa)
    assert [s["voter"] for s in report["annotators"]] == ["ann", "bob"]
    text = report_markdown(report)
    assert "Cohen's kappa" in text and "| ann | 60 |" in text


def _judge(db, question: str, verdicts: dict[str, str]) -> None:
    conv = [{"role": "user", "content": question}]
    ids = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=conv, output=f"{m} {question}"))
           for m in ("a", "b")]
    battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True,
                                   session_id="s")
    for voter, winner in verdicts.items():
        storage.record_vote(db, battle_id=battle, winner=winner, session_id=f"user:{voter}/s")


def test_agreed_only_export_and_team_sidecar_through_the_cli(tmp_path: Path):
    import json
    import subprocess
    import sys

    db_path = tmp_path / "p.db"
    db = storage.open_database(db_path)
    _judge(db, "agreed", {"ann": "left", "bob": "left"})
    _judge(db, "split", {"ann": "left", "bob": "right"})
    _judge(db, "tie against left", {"ann": "tie", "bob": "left"})
    _judge(db, "alone", {"ann": "right"})
    _judge(db, "agreed both bad", {"ann": "both_bad", "bob": "both_bad", "cy": "both_bad"})
    db.close()
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "dpo.jsonl"
    run = subprocess.run([sys.executable, "app.py", "export", "dpo", "--agreed-only", "--out", str(out),
                          "--db", str(db_path)], cwd=root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and "agreed" in rows[0]["prompt"] and rows[0]["chosen"] == "a agreed"
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    assert summary["agreed_only"] is True
    assert summary["left_out"] == {"agreed_pair_repeat": 1, "annotators_disagree": 3, "single_annotator": 1}
    team = json.loads(Path(str(out) + ".team.json").read_text())
    assert team["overlapping_battles"] == 4 and team["agreement"]["method"] == "fleiss"
    assert {s["voter"] for s in team["annotators"]} == {"ann", "bob", "cy"}

    kto = tmp_path / "kto.jsonl"
    assert subprocess.run([sys.executable, "app.py", "export", "kto", "--agreed-only", "--out", str(kto),
                           "--db", str(db_path)], cwd=root, capture_output=True, text=True, timeout=120).returncode == 0
    labels = [json.loads(line)["label"] for line in kto.read_text().splitlines()]
    assert sorted(labels) == [False, False, False, True]     # agreed left: 1 true + 1 false; agreed both bad: 2 false

    everything = subprocess.run([sys.executable, "app.py", "export", "dpo", "--out", str(tmp_path / "all.jsonl"),
                                 "--db", str(db_path), "--no-dedupe"], cwd=root, capture_output=True, text=True,
                                timeout=120)
    assert everything.returncode == 0
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == 6   # every decisive vote: 2 + 2 + 1 + 1

    report = subprocess.run([sys.executable, "app.py", "team", "report", "--json", "--db", str(db_path)], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["votes"] == 10
    text = subprocess.run([sys.executable, "app.py", "team", "report", "--db", str(db_path)], cwd=root,
                          capture_output=True, text=True, timeout=120).stdout
    assert "Fleiss' kappa" in text and "| ann | 5 |" in text
