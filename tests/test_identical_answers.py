"""Two identical answers: no decisive vote (Arena and Playground handlers, real SQLite), a notice
before the vote, stored ones left out of every preference export (counted) and decisive ones out of
the leaderboard (noted). One rule: `storage.pairs.same_answer`, in Python and in SQL."""
from __future__ import annotations

import json
import random
import sqlite3
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

import storage
from playground.arena import Contestant, Round, SideState, record_answer
from playground.export import export_dpo, export_kto
from playground.leaderboard import select_battles
from playground.ui import arena_tab
from playground.ui.grid_rounds import MAX_PANES, judge_summary, new_grid_state, vote_on_pair
from storage.pairs import SAME_ANSWER_NOTICE, same_answer, same_answer_sql

QUESTION = "Name one colour."


def ctx_for(db_path: Path) -> SimpleNamespace:
    """What the vote handlers use of the app context: the database path."""
    return SimpleNamespace(settings=SimpleNamespace(db_path=db_path))


def generation(db, model: str, output: str, mode: str = "zero_shot", question: str = QUESTION) -> int:
    return storage.insert_generation(db, storage.GenerationRecord(
        model_id=model, conversation=[{"role": "user", "content": question}], output=output, mode=mode,
        session_id="s", finish_reason="stop"))


def stored_votes(db_path: Path) -> list[str]:
    with closing(sqlite3.connect(db_path)) as con:
        return [w for (w,) in con.execute("SELECT winner FROM votes ORDER BY id")]


def test_python_and_sql_apply_the_same_rule():
    rng = random.Random(3)
    pieces = ["a", "b", " ", "\t", "\n", "\r", "\x0b", "\x0c", "\xa0", "é", ""]
    with closing(sqlite3.connect(":memory:")) as con:
        for _ in range(500):
            a = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
            b = a if rng.random() < 0.3 else "".join(rng.choice(pieces) for _ in range(rng.randint(0, 6)))
            if rng.random() < 0.3:
                b = rng.choice(["", " ", "\n\t"]) + a.strip(" \t\n\r\x0b\x0c") + rng.choice(["", "  ", "\r\n"])
            sql = con.execute(f"SELECT {same_answer_sql(':a', ':b')}", {"a": a, "b": b}).fetchone()[0]
            assert bool(sql) == same_answer(a, b), (a, b)
    assert same_answer("  Blue.\n", "Blue.") and not same_answer("Blue.", "blue.") and not same_answer("Blue", "Blue.")
    # no text on either side (an empty answer, or a battle imported without its conversations): not the same
    assert not same_answer("", " ") and not same_answer(None, None) and not same_answer(None, "")


# ----------------------------------------------------------------------------- Arena


def answered_round(db_path: Path, left_text: str, right_text: str) -> Round:
    """A blind round whose two answers are stored generations (as `arena_send` leaves it)."""
    with closing(storage.open_database(db_path)) as db:
        ids = [generation(db, "model-a", left_text), generation(db, "model-b", right_text)]
    rnd = Round(left=SideState(Contestant("model-a")), right=SideState(Contestant("model-b")), status="running", turns=1)
    for side, text, gid in (("left", left_text, ids[0]), ("right", right_text, ids[1])):
        rnd.side(side).done = False
        record_answer(rnd, side, QUESTION, text, "prompt", gid)
    return rnd


def test_arena_offers_only_tie_or_both_bad_on_identical_answers_and_refuses_a_decisive_vote(tmp_path):
    db_path = tmp_path / "arena.db"
    rnd = answered_round(db_path, "Blue.", "Blue.\n")
    view = arena_tab.round_view(rnd, arena_tab._after_turn_status(rnd))
    assert view.can_vote and view.same_answer and SAME_ANSWER_NOTICE in view.status
    buttons = arena_tab._vote_buttons(view.can_vote, view.same_answer)
    assert [b["interactive"] for b in buttons] == [False, False, True, True]   # A, B, Tie, Both bad
    state = {**arena_tab.new_arena_state(), "round": rnd.to_dict()}
    for winner in ("left", "right"):                      # a crafted request still cannot store one
        state, refused = arena_tab.arena_vote(ctx_for(db_path), state, winner)
        assert "Vote not saved" in refused.status and "identical" in refused.status
    assert stored_votes(db_path) == []
    state, saved = arena_tab.arena_vote(ctx_for(db_path), state, "tie")
    assert "Vote saved: Tie" in saved.status and stored_votes(db_path) == ["tie"]


def test_arena_different_answers_keep_every_verdict(tmp_path):
    db_path = tmp_path / "arena.db"
    rnd = answered_round(db_path, "Blue.", "Red.")
    view = arena_tab.round_view(rnd, arena_tab._after_turn_status(rnd))
    assert not view.same_answer and "identical" not in view.status
    assert all(b["interactive"] for b in arena_tab._vote_buttons(view.can_vote, view.same_answer))
    state = {**arena_tab.new_arena_state(), "round": rnd.to_dict()}
    _, saved = arena_tab.arena_vote(ctx_for(db_path), state, "left")
    assert "Vote saved: A is better" in saved.status and stored_votes(db_path) == ["left"]


def test_the_store_refuses_a_decisive_vote_whatever_the_caller(tmp_path):
    """recording.save_vote (every UI and API vote) reads the stored answers, not the page's copy."""
    from playground.recording import save_vote

    db_path = tmp_path / "p.db"
    with closing(storage.open_database(db_path)) as db:
        a, b = generation(db, "model-a", " Blue."), generation(db, "model-b", "Blue.  ")
    with pytest.raises(storage.VoteRefused, match="identical"):
        save_vote(db_path, left_generation_id=a, right_generation_id=b, winner="right", session_id="s",
                  anonymous=True, source="arena")
    assert save_vote(db_path, left_generation_id=a, right_generation_id=b, winner="both_bad", session_id="s",
                     anonymous=True, source="arena").winner == "both_bad"


# ----------------------------------------------------------------------------- Playground


def judged_round(db_path: Path, texts: list[str]) -> dict:
    """The Playground tab's state after a round whose panes answered `texts` (as `grid_run` leaves it)."""
    with closing(storage.open_database(db_path)) as db:
        ids = [generation(db, f"model-{k}", text, mode="few_shot") for k, text in enumerate(texts)]
    n = len(texts)
    state = new_grid_state()
    state.update(round=1, round_panes=n, question=QUESTION,
                 histories=[[{"role": "user", "content": QUESTION}, {"role": "assistant", "content": t}] for t in texts]
                 + [[] for _ in range(MAX_PANES - n)],
                 generations=ids + [None] * (MAX_PANES - n), finish=["stop"] * n + [None] * (MAX_PANES - n),
                 labels=[f"model-{k}" for k in range(n)] + [""] * (MAX_PANES - n))
    return state


def test_playground_names_identical_panes_and_refuses_a_decisive_vote_between_them(tmp_path):
    db_path = tmp_path / "grid.db"
    state = judged_round(db_path, ["Blue.", "Red.", "Blue.\n"])
    summary = judge_summary(state, 3)
    assert "Identical answers: panes 1 and 3" in summary and "panes 1 and 2" not in summary
    state, message = vote_on_pair(ctx_for(db_path), state, 1, 3, "left", visible=3)
    assert message.startswith("⚠️ Not saved") and "identical" in message and stored_votes(db_path) == []
    state, message = vote_on_pair(ctx_for(db_path), state, 3, 1, "tie", visible=3)
    assert message.startswith("✅ Saved") and stored_votes(db_path) == ["tie"]
    state, message = vote_on_pair(ctx_for(db_path), state, 1, 2, "left", visible=3)
    assert message.startswith("✅ Saved") and stored_votes(db_path) == ["tie", "left"]


# ----------------------------------------------------------------------------- stored votes: exports, leaderboard


def legacy_db(path: Path) -> Path:
    """Votes stored before the rule (written straight through storage): 3 decisive and 1 tie on identical
    answers, 4 decisive on different answers."""
    with closing(storage.open_database(path)) as db:
        for k, (left, right, winner) in enumerate([
                ("Blue.", "Blue.", "left"), ("Blue.\n", " Blue.", "right"), ("Red", "Red", "left"),
                ("Green", "Green", "tie"),
                ("Blue.", "Red.", "left"), ("Red.", "Blue.", "right"), ("Blue!", "Blue.", "left"),
                ("Blue.", "blue.", "right")]):
            question = f"question {k}"
            a = generation(db, "alpha", left, question=question)
            b = generation(db, "beta", right, question=question)
            battle = storage.create_battle(db, left_generation_id=a, right_generation_id=b, anonymous=True,
                                           session_id="s")
            storage.record_vote(db, battle_id=battle, winner=winner, session_id="s")
    return path


@pytest.mark.parametrize("format", ["standard", "conversational"])
def test_exports_leave_out_votes_on_identical_answers_and_count_them(tmp_path, format):
    path = legacy_db(tmp_path / "legacy.db")
    with closing(storage.open_database(path)) as db:
        dpo = export_dpo(db, tmp_path / f"dpo-{format}.jsonl", format=format)
        kto = export_kto(db, tmp_path / f"kto-{format}.jsonl", format=format, dedupe=False)
    pairs = [json.loads(line) for line in dpo.path.read_text().splitlines()]
    assert len(pairs) == 4 and all(p["chosen"] != p["rejected"] for p in pairs)
    assert json.loads(dpo.summary_path.read_text())["left_out"]["identical_answers"] == 3   # the tie gives no pair
    rows = [json.loads(line) for line in kto.path.read_text().splitlines()]
    seen: dict[str, set] = {}
    for row in rows:
        seen.setdefault(json.dumps([row["prompt"], row["completion"]]), set()).add(row["label"])
    assert all(len(labels) == 1 for labels in seen.values())        # no answer labelled both ways
    assert json.loads(kto.summary_path.read_text())["left_out"]["identical_answers"] == 3   # ties make no KTO row
    assert len(rows) == 8                                           # 4 decisive votes x 2 rows


def test_the_leaderboard_leaves_out_decisive_votes_on_identical_answers_and_says_so(tmp_path):
    path = legacy_db(tmp_path / "legacy.db")
    with closing(storage.open_database(path)) as db:
        chosen = select_battles(db, by="model")
    assert len(chosen.battles) == 5                                 # 4 decisive on different answers + the tie
    assert list(chosen.battles.winner).count("tie") == 1
    assert "3 decisive vote(s) on two identical answers are left out" in chosen.note


def test_cli_leaderboard_says_how_many_decisive_votes_on_identical_answers_it_left_out(tmp_path):
    import subprocess
    import sys

    path = legacy_db(tmp_path / "legacy.db")
    out = subprocess.run([sys.executable, "app.py", "leaderboard", "--by", "model", "--rounds", "20"],
                         cwd=Path(__file__).resolve().parent.parent, env={"PLAYGROUND_DB": str(path), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "3 decisive vote(s) on two identical answers are left out" in out.stdout
    assert "5 battles" in out.stdout
