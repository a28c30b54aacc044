"""Arena: pool, balanced pair sampling, side randomisation, the round's rules, and real rounds with
the bundled model through the tab's handlers into the real SQLite database."""
from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

import storage
from playground.arena import (ArenaError, Contestant, Round, SideState, begin_turn, build_pool, can_vote,
                              cast_vote, draw_pair, pair_battle_counts, record_answer, reveal, session_id_for,
                              start_round)
from playground.ui import arena_tab as at
from playground.verdicts import WINNER_LABELS

SMOL = "smollm2-135m-instruct"
A, B, C = Contestant("m", "zero_shot"), Contestant("m", "few_shot_cot"), Contestant("n", "zero_shot")


def pair(x: Contestant, y: Contestant) -> frozenset[str]:
    return frozenset((x.key, y.key))


# ---------------------------------------------------------------- pool


def test_pool_is_models_times_modes_or_models_only():
    pool = build_pool(["m", "n", "m"], ["zero_shot", "few_shot_cot"])
    assert [c.key for c in pool] == ["m + zero_shot", "m + few_shot_cot", "n + zero_shot", "n + few_shot_cot"]
    alone = build_pool(["m", "n"])
    assert [c.key for c in alone] == ["m", "n"] and {c.run_mode for c in alone} == {"zero_shot"}


@pytest.mark.parametrize("models,modes", [([], []), (["m"], []), (["m"], ["zero_shot"]), ([""], ["zero_shot"])])
def test_pool_of_fewer_than_two_contestants_is_refused(models, modes):
    with pytest.raises(ArenaError, match="a battle needs two: pick at least two models, or one model and two"):
        build_pool(models, modes)


def test_pool_with_an_unknown_mode_is_refused():
    with pytest.raises(ArenaError, match="unknown mode"):
        build_pool(["m"], ["zero_shot", "telepathy"])


# ---------------------------------------------------------------- sampling


def test_pair_sampling_favours_pairs_with_fewer_battles():
    """P(pair) ~ 1/(1 + battles): counts 1, 0, 3 give weights 1/2, 1, 1/4 -> 2/7, 4/7, 1/7."""
    counts = {pair(A, B): 1, pair(B, C): 3}
    rng, n = random.Random(1234), 6000
    drawn = Counter(pair(*draw_pair([A, B, C], counts, rng)) for _ in range(n))
    expected = {pair(A, B): 2 / 7, pair(A, C): 4 / 7, pair(B, C): 1 / 7}
    for key, p in expected.items():
        assert abs(drawn[key] / n - p) < 0.025, (key, drawn[key] / n, p)


def test_a_heavily_judged_pair_is_drawn_much_less_often():
    counts = {pair(A, B): 99}   # weight 0.01 against 1 and 1: about 0.5% of draws instead of a third
    rng, n = random.Random(7), 3000
    drawn = Counter(pair(*draw_pair([A, B, C], counts, rng)) for _ in range(n))
    assert drawn[pair(A, B)] < 0.02 * n
    assert 0.44 * n < drawn[pair(A, C)] < 0.56 * n


def test_sides_are_randomised_about_half_and_half():
    rng, n = random.Random(99), 4000
    left_is_a = sum(draw_pair([A, B], {}, rng)[0] == A for _ in range(n))
    assert 0.46 * n < left_is_a < 0.54 * n


def test_draw_needs_two_distinct_contestants():
    with pytest.raises(ArenaError, match="two"):
        draw_pair([A, A], {}, random.Random(0))


def _generation(db, model: str, mode: str, text: str = "an answer", session: str = "s") -> int:
    rec = storage.GenerationRecord(model_id=model, mode=mode, output=text, session_id=session,
                                   conversation=[{"role": "user", "content": "q"}])
    return storage.insert_generation(db, rec)


def _battle(db, left: tuple[str, str], right: tuple[str, str]) -> int:
    return storage.create_battle(db, left_generation_id=_generation(db, *left),
                                 right_generation_id=_generation(db, *right), anonymous=True, session_id="s",
                                 source="arena")


def test_pair_battle_counts_read_both_orders_and_only_the_pool(tmp_path: Path):
    with closing(storage.open_database(tmp_path / "p.db")) as db:
        for _ in range(2):
            _battle(db, ("m", "zero_shot"), ("m", "few_shot_cot"))
        _battle(db, ("m", "few_shot_cot"), ("m", "zero_shot"))
        _battle(db, ("m", "zero_shot"), ("n", "zero_shot"))
        _battle(db, ("m", "instruction"), ("n", "zero_shot"))   # m + instruction is not in the pool
        assert pair_battle_counts(db, [A, B, C]) == {pair(A, B): 3, pair(A, C): 1}
        by_model = pair_battle_counts(db, build_pool(["m", "n"]))
        assert by_model == {frozenset(("m", "n")): 2}          # models-only: every mode counts


# ---------------------------------------------------------------- round rules


def answered_round(left_id: int | None = 1, right_id: int | None = 2) -> Round:
    rnd = begin_turn(Round(left=SideState(A), right=SideState(B)), "q")
    record_answer(rnd, "left", "q", "a1", "<prompt A>", left_id)
    return record_answer(rnd, "right", "q", "b1", "<prompt B>", right_id)


def test_round_survives_a_json_round_trip():
    rnd = answered_round()
    again = Round.from_dict(json.loads(json.dumps(rnd.to_dict())))
    assert again == rnd and again.left.contestant == A


def test_vote_before_both_answers_are_complete_is_refused(tmp_path: Path):
    rnd = begin_turn(Round(left=SideState(A), right=SideState(B)), "q")
    assert can_vote(rnd) == (False, "wait until both answers are complete before voting")
    record_answer(rnd, "left", "q", "a1", "p", 1)
    with pytest.raises(storage.VoteRefused, match="wait until both answers are complete"):
        cast_vote(tmp_path / "v.db", rnd, "left", "s")
    with pytest.raises(storage.VoteRefused, match="ask a question first"):
        cast_vote(tmp_path / "v.db", Round(left=SideState(A), right=SideState(B)), "left", "s")


def test_vote_on_unknown_generations_or_battle_is_refused(tmp_path: Path):
    with pytest.raises(storage.VoteRefused, match="does not exist"):
        cast_vote(tmp_path / "v.db", answered_round(9998, 9999), "tie", "s")
    with pytest.raises(storage.VoteRefused, match="unknown verdict"):
        cast_vote(tmp_path / "v.db", answered_round(), "A", "s")
    with closing(storage.open_database(tmp_path / "v.db")) as db:
        with pytest.raises(storage.VoteRefused, match="battle 4242 does not exist"):
            storage.record_vote(db, battle_id=4242, winner="left", session_id="s")
        assert storage.count_votes(db) == 0


def test_reveal_only_after_the_vote_and_the_round_closes(tmp_path: Path):
    with closing(storage.open_database(tmp_path / "r.db")) as db:
        ids = _generation(db, "m", "zero_shot"), _generation(db, "m", "few_shot_cot")
    rnd = answered_round(*ids)
    with pytest.raises(ArenaError, match="only after your vote"):
        reveal(rnd)
    rnd, vote = cast_vote(tmp_path / "r.db", rnd, "both_bad", "s", "both wrong")
    left, right = reveal(rnd)
    assert (left.name, left.key, left.prompts) == ("Model A", "m + zero_shot", ("<prompt A>",))
    assert (right.name, right.mode, right.prompts) == ("Model B", "few_shot_cot", ("<prompt B>",))
    assert not can_vote(rnd)[0] and "already voted" in can_vote(rnd)[1]
    with pytest.raises(ArenaError, match="New round"):
        begin_turn(rnd, "a follow-up after the vote")
    again, repeat = cast_vote(tmp_path / "r.db", Round.from_dict(rnd.to_dict()), "left", "s")
    assert repeat.duplicate and repeat.vote_id == vote.vote_id and repeat.winner == "both_bad"


def test_figures_and_notices_wait_for_the_vote(tmp_path: Path):
    """What identifies a contestant (prompt length, speed, a mode's notice) is held back until the vote."""
    with closing(storage.open_database(tmp_path / "b.db")) as db:
        ids = _generation(db, "m", "zero_shot"), _generation(db, "m", "self_consistency")
    rnd = begin_turn(Round(left=SideState(A), right=SideState(B)), "q")
    record_answer(rnd, "left", "q", "four", "<prompt A>", ids[0], figures="prompt 12 tok · 80.0 tok/s")
    record_answer(rnd, "right", "q", "4", "<prompt B>", ids[1], figures="prompt 96 tok · 80.0 tok/s",
                  notices="⚠️ self-consistency needs sampling: temperature set to 0.7")
    before = at.round_view(rnd, "vote")
    assert before.metrics == ["", ""] and before.notices == ["", ""] and before.can_vote
    assert [c[-1]["content"] for c in before.chats] == ["four", "4"]
    state = {"session_uuid": "s", "round": rnd.to_dict()}
    ctx = type("Ctx", (), {"settings": type("S", (), {"db_path": tmp_path / "b.db"})()})()
    _, after = at.arena_vote(ctx, state, "tie")
    assert after.metrics == ["prompt 12 tok · 80.0 tok/s", "prompt 96 tok · 80.0 tok/s"]
    assert "temperature set to 0.7" in after.notices[1] and "Who was who" in after.reveal


def test_blind_answer_leaves_out_the_cot_trigger():
    from playground.engine import PaneResult

    result = PaneResult(output="Two apples plus two apples make four.",
                        followup_output="Therefore, the answer is 4.")
    assert at.blind_answer(result, "Therefore, the answer is") == "Two apples plus two apples make four.\n\n4."
    assert "Therefore" in at.blind_answer(result, None)   # elsewhere (the Playground) it is shown
    assert at.blind_answer(PaneResult(output="hi"), "Therefore, the answer is") == "hi"


def test_a_long_tag_is_refused_with_a_message(tmp_path: Path):
    with closing(storage.open_database(tmp_path / "t.db")) as db:
        ids = _generation(db, "m", "zero_shot"), _generation(db, "m", "few_shot_cot")
    with pytest.raises(storage.VoteRefused, match="at most 40"):
        cast_vote(tmp_path / "t.db", answered_round(*ids), "left", "s", tag="x" * 41)


def test_a_failed_side_closes_voting():
    rnd = begin_turn(Round(left=SideState(A), right=SideState(B)), "q")
    record_answer(rnd, "left", "q", "", "", None, "model file not found")
    record_answer(rnd, "right", "q", "b1", "p", 2)
    assert rnd.status == "failed"
    assert can_vote(rnd) == (False, "Model A failed, so this round cannot be judged: press New round")


def test_session_id_names_the_login_under_auth():
    assert session_id_for("abc") == "abc"
    assert session_id_for("abc", "alice") == "user:alice/abc"


def test_start_round_hides_nothing_it_should_not_store():
    rnd = start_round([A, B], {}, random.Random(3))
    assert {rnd.left.contestant, rnd.right.contestant} == {A, B} and rnd.status == "ready"


# ---------------------------------------------------------------- real rounds with the bundled model


def test_handlers_say_why_a_small_pool_cannot_battle(app_ctx):
    state = at.new_arena_state()
    one = at.PoolChoice(models=(SMOL,), modes=("zero_shot",))
    (st, view), = at.arena_send(app_ctx, state, "Hello?", one)
    assert "pool has 1 contestant and a battle needs two" in view.status and st["round"] is None
    st, view = at.arena_new_round(app_ctx, state, at.PoolChoice(models=()))
    assert "pool has 0 contestants" in view.status and not view.can_vote
    assert "⚠️" in at.pool_summary([SMOL], []) and "2 contestants" in at.pool_summary([SMOL], ["zero_shot", "few_shot"])


def choice(*modes: str, models: tuple[str, ...] = (SMOL,)) -> at.PoolChoice:
    return at.PoolChoice(models=models, modes=modes, family="general", max_new_tokens=16, sampling="deterministic")


def run_turn(ctx, state, question, pool, username=None, rng=None):
    """All (state, view) yields of one turn."""
    return list(at.arena_send(ctx, state, question, pool, username=username, rng=rng))


def rows(db_path: Path, sql: str, *params) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql, params).fetchall()


def test_real_two_turn_round_streams_votes_once_on_the_latest_pair(app_ctx):
    state = at.new_arena_state()
    pool = choice("zero_shot", "instruction")
    steps, early_vote = [], None
    for st, view in at.arena_send(app_ctx, state, "What is 2 + 2?", pool, username="alice", rng=random.Random(5)):
        steps.append((st, view))
        if early_vote is None and st["round"]["status"] == "running":
            early_vote = at.arena_vote(app_ctx, st, "left", "", username="alice")[1]
    state, first = steps[-1]
    assert len(steps) >= 3 and not steps[0][1].can_vote
    assert "wait until both answers are complete" in early_vote.status and not early_vote.reveal
    assert first.can_vote and "Both answers are complete" in first.status
    for chat in first.chats:
        assert chat[0] == {"role": "user", "content": "What is 2 + 2?"}
        assert chat[1]["role"] == "assistant" and chat[1]["content"].strip()

    state, second = run_turn(app_ctx, state, "And 3 + 3?", pool, username="alice")[-1]
    assert second.can_vote
    for chat in second.chats:
        assert [m["content"] for m in chat if m["role"] == "user"] == ["What is 2 + 2?", "And 3 + 3?"]
    text = json.dumps([second.chats, second.metrics, second.notices, second.status, second.reveal])
    assert SMOL not in text and "zero_shot" not in text and "instruction" not in text   # still blind
    for results in (first, second):  # no token counts, speeds or notices before the vote
        assert results.metrics == ["", ""] and results.notices == ["", ""]

    voted_state, voted = at.arena_vote(app_ctx, state, "right", "B was clearer", username="alice", tag=" Maths ")
    assert "Vote saved: B is better" in voted.status and not voted.can_vote
    assert all("prompt" in m and "tok/s" in m for m in voted.metrics)   # the figures arrive with the reveal
    for shown in (f"{SMOL} + zero_shot", f"{SMOL} + instruction", "<|im_start|>", "2 turns"):
        assert shown in voted.reveal
    _, twice = at.arena_vote(app_ctx, state, "right", "", username="alice")          # a racing double click
    _, again = at.arena_vote(app_ctx, voted_state, "left", "", username="alice")     # a later click
    assert "not counted twice" in twice.status and "already voted" in again.status.lower()

    session = f"user:alice/{state['session_uuid']}"
    db = app_ctx.settings.db_path
    battles = rows(db, "SELECT id, anonymous, source, left_mode, right_mode, left_generation_id, "
                       "right_generation_id FROM battles WHERE session_id = ?", session)
    assert len(battles) == 1 and battles[0][1:3] == (1, "arena")
    assert rows(db, "SELECT tag FROM battles WHERE id = ?", battles[0][0]) == [("maths",)]
    assert {battles[0][3], battles[0][4]} == {"zero_shot", "instruction"}
    assert rows(db, "SELECT winner, note, session_id FROM votes WHERE battle_id = ?", battles[0][0]) == [
        ("right", "B was clearer", session)]
    gens = rows(db, "SELECT id, conversation FROM generations WHERE session_id = ? ORDER BY id", session)
    assert len(gens) == 4
    assert set(battles[0][5:]) == {g[0] for g in gens[2:]}          # the vote is on the latest pair
    conversation = json.loads(gens[3][1])
    assert [m["role"] for m in conversation] == ["user", "assistant", "user"]
    assert (conversation[0]["content"], conversation[2]["content"]) == ("What is 2 + 2?", "And 3 + 3?")


def test_a_failing_contestant_shows_its_error_on_its_side_only(app_ctx):
    state = at.new_arena_state()
    pool = choice(models=(SMOL, "no-such-model"))
    state, view = run_turn(app_ctx, state, "Say hi.", pool, rng=random.Random(2))[-1]
    rnd = Round.from_dict(state["round"])
    bad = "left" if rnd.left.contestant.model_id == "no-such-model" else "right"
    good = "right" if bad == "left" else "left"
    i_bad, i_good = ("left", "right").index(bad), ("left", "right").index(good)
    assert view.notices[i_bad].count("unknown model") == 1 and not view.notices[i_good]
    assert view.chats[i_good][-1]["role"] == "assistant"
    assert not view.can_vote and "failed" in view.status and "New round" in view.status
    _, refused = at.arena_vote(app_ctx, state, "left", "")
    assert "Vote not saved" in refused.status and not refused.reveal
    state, fresh = at.arena_new_round(app_ctx, state, choice("zero_shot", "instruction"))
    assert fresh.chats == [[], []] and "New round" in fresh.status and state["round"]["status"] == "ready"
    assert rows(app_ctx.settings.db_path, "SELECT count(*) FROM battles WHERE session_id = ?",
                state["session_uuid"]) == [(0,)]


# ---------------------------------------------------------------- the saved pool

F16 = "smollm2-135m-instruct-f16"


@pytest.fixture()
def pool_ctx(app_ctx, tmp_path):
    """The shared context on a database of its own, so a saved pool never reaches the other tests."""
    from dataclasses import replace

    settings = app_ctx.settings
    app_ctx.settings = replace(settings, db_path=tmp_path / "pool.db")
    try:
        yield app_ctx
    finally:
        app_ctx.settings = settings


def test_cli_pool_makes_every_arena_battle_base_against_tuned_until_cleared(pool_ctx, capsys):
    from playground.cli import main
    from playground.leaderboard import build_leaderboard, load_battles

    db = pool_ctx.settings.db_path
    argv = ["arena", "pool", "--db", str(db), "--models-dir", str(pool_ctx.settings.models_dir)]
    assert main(argv + ["--models", f"{SMOL},{F16}"]) == 0
    assert main(argv) == 0 and f"saved Arena pool: {SMOL} vs {F16}" in capsys.readouterr().out
    own = choice("zero_shot", "instruction")      # the user's own pick: one model under two modes
    for seed in range(8):
        st, view = at.arena_new_round(pool_ctx, at.new_arena_state(), own, rng=random.Random(seed))
        rnd = Round.from_dict(st["round"])
        assert {rnd.left.contestant, rnd.right.contestant} == {Contestant(SMOL), Contestant(F16)}, view.status
    assert f"**Saved pool:** `{SMOL}` vs `{F16}`" in at.pool_text(pool_ctx, [SMOL], [])

    state, answered = run_turn(pool_ctx, at.new_arena_state(), "Say hello.", own, rng=random.Random(3))[-1]
    assert answered.can_vote, answered.status
    _, voted = at.arena_vote(pool_ctx, state, "tie" if answered.same_answer else "left", "")
    assert f"was **{SMOL}**" in voted.reveal and f"was **{F16}**" in voted.reveal
    assert sorted(rows(db, "SELECT left_model, right_model, left_mode, right_mode FROM battles")[0]) == sorted(
        (SMOL, F16, "zero_shot", "zero_shot"))
    with closing(storage.open_database(db)) as conn:
        board = build_leaderboard(load_battles(conn, by="model"), rounds=20)
    assert {r.contestant for r in board.rows} == {SMOL, F16}           # side by side, each with its interval
    assert all(r.battles == 1 and r.ci_low <= r.rating <= r.ci_high for r in board.rows)

    assert main(argv + ["--clear"]) == 0 and "cleared" in capsys.readouterr().out
    st, _ = at.arena_new_round(pool_ctx, at.new_arena_state(), own, rng=random.Random(0))
    rnd = Round.from_dict(st["round"])
    assert {rnd.left.contestant.key, rnd.right.contestant.key} == {f"{SMOL} + zero_shot", f"{SMOL} + instruction"}
    assert main(argv) == 0 and "no saved Arena pool" in capsys.readouterr().out


def test_pool_with_an_unknown_model_is_refused_and_nothing_is_saved(pool_ctx, capsys):
    from playground.cli import main
    from storage.arena_pool import current_arena_pool, set_arena_pool

    db = pool_ctx.settings.db_path
    argv = ["arena", "pool", "--db", str(db), "--models-dir", str(pool_ctx.settings.models_dir), "--models"]
    assert main(argv + [f"{SMOL},smollm2-135m-instrct"]) == 2
    assert "unknown model 'smollm2-135m-instrct'. Did you mean: smollm2-135m-instruct" in capsys.readouterr().err
    assert main(argv + [f"{SMOL},{SMOL}"]) == 2
    assert "needs at least two different models" in capsys.readouterr().err
    with closing(storage.open_database(db)) as conn:
        assert current_arena_pool(conn) is None
        set_arena_pool(conn, [SMOL, "deleted-model"])            # a model removed after the pool was saved
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM arena_pool")
    _, view = at.arena_new_round(pool_ctx, at.new_arena_state(), choice("zero_shot", "instruction"))
    assert "saved Arena pool names deleted-model, not in the catalog any more" in view.status
    assert "arena pool --clear" in view.status


def test_judge_this_battle_too_only_after_the_vote(app_ctx):
    """A judge model runs only on a voted round (the handler refuses before, storing nothing),
    then judges the battle in both orders with the bundled model and shows its verdict next to the
    person's; its vote is stored under the judge's name, apart from people's."""
    from storage.judge_verdicts import judge_identity

    judge = judge_identity(SMOL, "general")
    state = at.new_arena_state()
    db = app_ctx.settings.db_path
    before = rows(db, "SELECT count(*) FROM judge_verdicts")[0][0] if rows(
        db, "SELECT name FROM sqlite_master WHERE name = 'judge_verdicts'") else 0
    assert "Vote first" in at.arena_judge(app_ctx, state, SMOL, "general", 16)          # no round at all
    state, view = run_turn(app_ctx, state, "Name a fruit.", choice("zero_shot", "instruction"), rng=random.Random(3))[-1]
    assert view.can_vote and not view.voted
    assert "Vote first" in at.arena_judge(app_ctx, state, SMOL, "general", 16)          # answered, not voted
    assert rows(db, "SELECT count(*) FROM judge_verdicts")[0][0] == before             # nothing ran
    person = "tie" if view.same_answer else "left"   # identical answers take only Tie or Both are bad
    state, voted = at.arena_vote(app_ctx, state, person, "")
    assert voted.voted, voted.status
    shown = at.arena_judge(app_ctx, state, SMOL, "general", 16)
    battle = Round.from_dict(state["round"]).vote["battle_id"]
    orders = rows(db, "SELECT judge_order, verdict FROM judge_verdicts WHERE battle_id = ? AND judge = ?", battle, judge)
    assert sorted(o for o, _ in orders) == ["AB", "BA"]
    assert f"**You:** {WINNER_LABELS[person]}" in shown and f"`{judge}`" in shown
    verdicts = dict(orders)
    people = rows(db, "SELECT winner FROM counted_votes WHERE battle_id = ?", battle)
    judged = rows(db, "SELECT winner FROM votes WHERE battle_id = ? AND voter = ?", battle, judge)
    assert people == [(person,)]                      # the people-only view holds the person's vote alone
    if "unparseable" in verdicts.values():
        assert judged == [] and "Not stored as a vote" in shown
    else:
        assert judged == [(verdicts["AB"] if verdicts["AB"] == verdicts["BA"] else "tie",)]
    again = at.arena_judge(app_ctx, state, SMOL, "general", 16)                        # a second click re-uses it
    assert again == shown and len(rows(db, "SELECT id FROM judge_verdicts WHERE battle_id = ?", battle)) == 2
