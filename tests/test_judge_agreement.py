"""Agreement statistics: Cohen's kappa on a textbook table, on synthetic votes with a planted
kappa, and the database report (people's counted votes vs. judge pair verdicts, swap consistency)."""
from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from playground.judge.agreement import CATEGORIES, agreement_rate, bootstrap, confusion
from playground.judge.report import format_report, judge_report
from playground.prompting.presets import builtin_presets
from storage import GenerationRecord, create_battle, insert_generation, open_database, record_vote
from playground.stats import cohen_kappa
from storage.judge_verdicts import judge_identity, pair_verdicts, record_judge_verdict


def test_kappa_textbook_example():
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4
    a = ["left"] * 25 + ["right"] * 25
    b = ["left"] * 20 + ["right"] * 5 + ["left"] * 10 + ["right"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert agreement_rate(a, b) == pytest.approx(0.7)
    assert confusion(a, b)[:2] == [[20, 5, 0, 0], [10, 15, 0, 0]]


def test_kappa_edge_cases():
    assert math.isnan(cohen_kappa([], []))
    assert math.isnan(cohen_kappa(["tie"] * 5, ["tie"] * 5))     # no variation: undefined, not 1
    assert cohen_kappa(["left", "right"], ["left", "right"]) == pytest.approx(1.0)
    assert cohen_kappa(["left", "right"], ["right", "left"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="not among"):
        cohen_kappa(["left"], ["maybe"])
    with pytest.raises(ValueError, match="labelled 1 and 2"):
        cohen_kappa(["left"], ["left", "right"])


def planted(n: int, kappa: float, seed: int, p=(0.4, 0.35, 0.15, 0.1)) -> tuple[list[str], list[str]]:
    """People label from p; the judge copies the person with probability `kappa`, else draws
    independently from p. Then p_o = kappa + (1 - kappa) p_e, so Cohen's kappa = `kappa`."""
    rng = np.random.default_rng(seed)
    people = rng.choice(CATEGORIES, size=n, p=p)
    own = rng.choice(CATEGORIES, size=n, p=p)
    judge = np.where(rng.random(n) < kappa, people, own)
    return list(people), list(judge)


@pytest.mark.parametrize("kappa", [0.0, 0.3, 0.6, 0.9])
def test_planted_kappa_is_within_the_bootstrap_interval(kappa):
    covered = 0
    for seed in range(5):
        people, judge = planted(1500, kappa, seed)
        _rate, k = bootstrap(people, judge, rounds=400, seed=seed)
        assert k.low < k.value < k.high and k.high - k.low < 0.12
        assert k.value == pytest.approx(kappa, abs=0.08)
        covered += k.low <= kappa <= k.high
    assert covered >= 4   # 95 % intervals: at most one miss in five is plausible


def _battle(db, question: str, preset: str | None, tstamp: float) -> int:
    conv = [{"role": "user", "content": question}]
    left = insert_generation(db, GenerationRecord(model_id="m1", conversation=conv, output=f"m1 says {question}",
                                                  finish_reason="stop", preset=preset, tstamp=tstamp))
    right = insert_generation(db, GenerationRecord(model_id="m2", conversation=conv, output=f"m2 says {question}",
                                                   finish_reason="stop", preset=preset, tstamp=tstamp))
    return create_battle(db, left_generation_id=left, right_generation_id=right, anonymous=True, session_id="s")


def test_report_from_the_database(tmp_path):
    """Synthetic people votes and judge verdicts in a real SQLite file; kappa as planted, the
    inconsistent pairs counted as ties, swap consistency per judge, categories by preset family."""
    people, judge = planted(300, 0.6, seed=7)
    db = open_database(tmp_path / "p.db")
    me = judge_identity("judge-model", "general")
    other = judge_identity("judge-model", "reference")
    swap = {"left": "right", "right": "left", "tie": "tie", "both_bad": "both_bad"}
    inconsistent = 0
    for i, (h, j) in enumerate(zip(people, judge, strict=True)):
        preset = "arithmetic-zero-shot" if i % 2 else "general-chat"
        b = _battle(db, f"question {i}", preset, 1000.0 + i)
        record_vote(db, battle_id=b, winner=h, session_id="person")
        ba = j
        if i % 10 == 0 and j in ("left", "right"):   # every tenth decisive pair: the judge flips with the order
            ba, inconsistent = swap[j], inconsistent + 1
        for order, verdict in (("AB", j), ("BA", ba)):
            record_judge_verdict(db, battle_id=b, judge=me, judge_model="judge-model", prompt_id="general",
                                 order=order, judge_prompt="p", raw_output="[[?]]", label=None, verdict=verdict)
    b = _battle(db, "only a judge saw this", None, 5000.0)   # judged, no person: not in the agreement
    for order in ("AB", "BA"):
        record_judge_verdict(db, battle_id=b, judge=other, judge_model="judge-model", prompt_id="reference",
                             order=order, judge_prompt="p", raw_output="no marker", label=None, verdict="unparseable")
    # stored once: a rerun returns None and adds nothing
    assert record_judge_verdict(db, battle_id=b, judge=other, judge_model="judge-model", prompt_id="reference",
                                order="AB", judge_prompt="p", raw_output="x", label=None, verdict="tie") is None
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("UPDATE judge_verdicts SET verdict = 'left'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM judge_verdicts")
    with pytest.raises(sqlite3.IntegrityError, match="invalid"):
        db.execute("INSERT INTO judge_verdicts (created_at, tstamp, battle_id, judge, judge_model, prompt_id, "
                   "judge_order, judge_prompt, raw_output, verdict) VALUES ('x', 1, ?, ?, 'm', 'p', 'AB', 'p', 'o', "
                   "'maybe')", [b, me])

    report = judge_report(db, builtin_presets(), rounds=300)
    mine = report["judges"][me]
    assert mine["n"] == 300
    assert mine["swap"]["pairs"] == 300 and mine["swap"]["consistent"] == 300 - inconsistent
    expected_judge = [j if not (i % 10 == 0 and j in ("left", "right")) else "tie" for i, j in enumerate(judge)]
    assert mine["kappa"]["value"] == pytest.approx(cohen_kappa(people, expected_judge))
    assert mine["kappa"]["low"] <= mine["kappa"]["value"] <= mine["kappa"]["high"]
    assert sum(map(sum, mine["confusion"])) == 300
    assert set(mine["categories"]) == {"arithmetic", "general"}
    assert sum(c["n"] for c in mine["categories"].values()) == 300
    theirs = report["judges"][other]
    assert theirs["n"] == 0 and theirs["swap"]["unparseable_orders"] == 2 and theirs["swap"]["rate"] == 0.0
    dropped = judge_report(db, builtin_presets(), inconsistent="drop", rounds=50)
    assert dropped["judges"][me]["n"] == 300 - inconsistent
    pairs = pair_verdicts(db, other)
    assert pairs[0]["verdict"] == "unparseable" and pairs[0]["counted"] is None   # never guessed, never counted
    text = format_report(report)
    assert me in text and "Cohen's kappa" in text and "swap consistency" in text
    db.close()
    # the Leaderboard tab's panel: the same figures as Markdown tables
    from playground.ui.judges_panel import EMPTY, judges_markdown

    md = judges_markdown(tmp_path / "p.db", builtin_presets(), rounds=50)
    assert f"| `{me}` | 300 |" in md and f"| {300 - inconsistent}/300 (" in md and "| arithmetic | 150 |" in md
    assert judges_markdown(tmp_path / "missing.db") == EMPTY
