"""export: TRL DPO JSONL (both formats, checked with `datasets`), sidecar, filters, Arena round trip."""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import load_dataset

import storage
from storage.db import database_file
from playground.verdicts import WINNERS
from playground.commands import export_cmd
from playground.arena_format import ARENA_FIELDS, ARENA_WINNERS, OUR_WINNERS
from playground.dates import parse_when
from playground.errors import PlaygroundError
from playground.leaderboard import BoardOptions
from playground.export import PreferenceFilters, export_arena_battles, export_dpo, export_leaderboard, meta_path_for, render_plain

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def add_battle(db, left, right, winner, *, tstamp, question="What is 2 + 2?", left_output=None, right_output=None,
               left_mode="zero_shot", right_mode="few_shot", anonymous=True, history=None):
    """A battle through the storage API; `history` = earlier (user, left answer, right answer) turns."""
    outputs = {"left": left_output if left_output is not None else f"{left} says 4",
               "right": right_output if right_output is not None else f"{right} says four"}
    ids = []
    for side, model, mode in (("left", left, left_mode), ("right", right, right_mode)):
        conversation = []
        for user, left_answer, right_answer in history or []:
            conversation += [{"role": "user", "content": user},
                             {"role": "assistant", "content": left_answer if side == "left" else right_answer}]
        conversation.append({"role": "user", "content": question})
        ids.append(storage.insert_generation(db, storage.GenerationRecord(
            model_id=model, conversation=conversation, output=outputs[side], mode=mode, session_id="sess")))
    battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=anonymous,
                                   session_id="sess")
    storage.record_vote(db, battle_id=battle, winner=winner, session_id="sess", tstamp=tstamp)
    db.conn.commit()
    return battle


@pytest.fixture()
def db(tmp_path):
    """12 votes: 7 decisive with distinct content, 1 exact duplicate pair, 1 with an empty answer,
    1 multi-turn, plus 1 tie and 1 both_bad (never exported as pairs)."""
    database = storage.open_database(tmp_path / "playground.db")
    add_battle(database, "alpha", "beta", "left", tstamp=T0 + 0, question="q0")
    add_battle(database, "beta", "gamma", "right", tstamp=T0 + 1, question="q1", anonymous=False)
    add_battle(database, "gamma", "alpha", "left", tstamp=T0 + 2, question="q2", left_mode="instruction")
    add_battle(database, "alpha", "gamma", "right", tstamp=T0 + 3, question="q3")
    add_battle(database, "beta", "alpha", "left", tstamp=T0 + 4, question="q4", anonymous=False)
    add_battle(database, "alpha", "beta", "tie", tstamp=T0 + 5, question="q5")
    add_battle(database, "beta", "gamma", "both_bad", tstamp=T0 + 6, question="q6")
    add_battle(database, "alpha", "beta", "left", tstamp=T0 + 7, question="q0")  # same pair text as the first
    add_battle(database, "gamma", "beta", "right", tstamp=T0 + 8, question="q8", right_output="")  # unusable
    add_battle(database, "alpha", "beta", "right", tstamp=T0 + 9, question="and times 3?",
               history=[("What is 2 + 2?", "alpha: 4", "beta: four")], left_output="12", right_output="twelve")
    add_battle(database, "gamma", "beta", "left", tstamp=T0 + 10, question="q10")
    add_battle(database, "beta", "gamma", "right", tstamp=T0 + 11, question="q11", left_mode="")
    yield database
    database.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load(path: Path, tmp_path: Path):
    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))


def test_dpo_standard_loads_in_datasets_with_exactly_the_trl_columns(db, tmp_path):
    out = tmp_path / "pairs.jsonl"
    result = export_dpo(db, out)
    assert (result.written, result.duplicates, result.skipped) == (7, 1, 1)
    assert result.left_out == {"multi_turn": 1}   # its sides answered the first turn differently
    data = load(out, tmp_path)
    assert data.column_names == ["prompt", "chosen", "rejected"]
    assert len(data) == 7
    assert all(set(row) == {"prompt", "chosen", "rejected"} for row in read_jsonl(out))
    first = data[0]
    assert first == {"prompt": "q0", "chosen": "alpha says 4", "rejected": "beta says four"}
    assert not any(row["chosen"] == "twelve" for row in data)
    summary = json.loads(result.summary_path.read_text())
    assert summary["left_out"] == {"multi_turn": 1} and "conversational" in summary["notes"]["multi_turn"]


def test_dpo_conversational_prompt_ends_with_a_user_turn(db, tmp_path):
    out = tmp_path / "chat.jsonl"
    export_dpo(db, out, format="conversational")
    data = load(out, tmp_path)
    assert data.column_names == ["prompt", "chosen", "rejected"]
    for row in data:
        assert row["prompt"][-1]["role"] == "user"
        assert row["chosen"][-1]["role"] == "assistant" == row["rejected"][-1]["role"]
    multi = next(row for row in data if row["chosen"][-1]["content"] == "twelve")
    # the prompt is what both sides saw; each side keeps its own earlier answer (not the
    # chosen side's history, under which the rejected answer was never given)
    assert multi["prompt"] == [{"role": "user", "content": "What is 2 + 2?"}]
    assert multi["chosen"] == [{"role": "assistant", "content": "beta: four"},
                               {"role": "user", "content": "and times 3?"},
                               {"role": "assistant", "content": "twelve"}]
    assert multi["rejected"] == [{"role": "assistant", "content": "alpha: 4"},
                                 {"role": "user", "content": "and times 3?"},
                                 {"role": "assistant", "content": "12"}]


def test_ties_and_both_bad_are_never_pairs_and_the_sidecar_lines_up(db, tmp_path):
    out = tmp_path / "pairs.jsonl"
    export_dpo(db, out, dedupe=False)
    pairs, meta = read_jsonl(out), read_jsonl(meta_path_for(out))
    assert meta_path_for(out).name == "pairs.jsonl.meta.jsonl"
    assert len(pairs) == len(meta) == 8  # 12 votes - tie - both_bad - empty answer - multi-turn (standard)
    assert {m["winner"] for m in meta} == {"left", "right"}
    assert all(m["chosen_model"] == (m["left_model"] if m["winner"] == "left" else m["right_model"]) for m in meta)
    for pair, m in zip(pairs, meta, strict=True):
        assert pair["chosen"].startswith(m["chosen_model"])
    assert [m["tstamp"] for m in meta] == sorted(m["tstamp"] for m in meta)
    assert {"vote_id", "battle_id", "chosen_mode", "rejected_mode", "session_id", "anonymous"} <= set(meta[0])


def test_dedupe_drops_only_exact_duplicates(db, tmp_path):
    deduped = export_dpo(db, tmp_path / "a.jsonl")
    kept = export_dpo(db, tmp_path / "b.jsonl", dedupe=False)
    assert kept.written == deduped.written + 1 and deduped.duplicates == 1
    lines = (tmp_path / "b.jsonl").read_text().splitlines()
    assert len(lines) - len(set(lines)) == 1
    assert len(set(lines)) == deduped.written


def test_dpo_filters(db, tmp_path):
    def models_of(**filters):
        out = tmp_path / "f.jsonl"
        export_dpo(db, out, PreferenceFilters(**filters), dedupe=False)
        return read_jsonl(meta_path_for(out))

    assert all("gamma" in (m["left_model"], m["right_model"]) for m in models_of(model="gamma"))
    assert len(models_of(model="gamma")) == 5  # 6 decisive votes, one with an empty answer
    assert [m["left_mode"] for m in models_of(mode="instruction")] == ["instruction"]
    assert {m["tstamp"] for m in models_of(since=T0 + 2, until=T0 + 4)} == {T0 + 2, T0 + 3}
    assert all(m["anonymous"] for m in models_of(anonymous_only=True))
    assert len(models_of(anonymous_only=True)) == 6  # 10 decisive - 2 named - 1 empty answer - 1 multi-turn
    assert models_of(model="nobody") == []


def test_render_plain():
    assert render_plain([{"role": "user", "content": "hi"}]) == "hi"
    assert render_plain([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]) == (
        "System: be brief\n\nUser: hi")


def test_unwritable_path_is_a_clear_error(db, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    target = blocker / "pairs.jsonl"
    with pytest.raises(PlaygroundError, match="cannot write the export to .*not-a-folder/pairs.jsonl"):
        export_dpo(db, target)
    with pytest.raises(PlaygroundError, match="is a folder"):
        export_arena_battles(db, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "playground.db", "playground.db-shm",
                                                          "playground.db-wal"]


def test_arena_battles_round_trip_through_the_importer(db, tmp_path):
    out = tmp_path / "battles.json"
    assert export_arena_battles(db, out).written == 12
    rows = json.loads(out.read_text())
    assert rows[0]["winner"] == "model_a" and rows[5]["winner"] == "tie" and rows[6]["winner"] == "tie (bothbad)"
    assert rows[0]["conversation_a"] == [{"role": "user", "content": "q0"}, {"role": "assistant", "content": "alpha says 4"}]
    assert rows[9]["turn"] == 2 and rows[1]["anony"] is False
    assert {"question_id", "model_a", "model_b", "winner", "conversation_a", "conversation_b", "turn", "anony",
            "tstamp"} <= set(rows[0])
    assert all(tuple(r) == ARENA_FIELDS for r in rows)              # the fields the importer reads, declared once
    assert {OUR_WINNERS[ARENA_WINNERS[w]] for w in WINNERS} == set(WINNERS)

    fresh = storage.open_database(tmp_path / "fresh.db")
    report = storage.import_arena_battles(fresh, out)
    assert (report.imported, report.errors) == (12, [])
    sql = ("SELECT b.left_model, b.right_model, v.winner, b.anonymous, v.tstamp, gl.output, gr.output, "
           "gl.conversation, gr.conversation FROM votes v JOIN battles b ON b.id = v.battle_id "
           "JOIN generations gl ON gl.id = b.left_generation_id JOIN generations gr ON gr.id = b.right_generation_id")
    before = Counter(tuple(r) for r in db.execute(sql))
    after = Counter(tuple(r) for r in fresh.execute(sql))
    assert after == before
    reexport = tmp_path / "again.json"
    export_arena_battles(fresh, reexport)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("question_id", "judge")} for r in rows]  # noqa: E731
    assert strip(json.loads(reexport.read_text())) == strip(rows)
    fresh.close()


def test_leaderboard_files(db, tmp_path):
    for name in ("lb.csv", "lb.json", "lb.md"):
        assert export_leaderboard(db, tmp_path / name, BoardOptions(rounds=50)).written == 3
    assert "contestants by model" in (tmp_path / "lb.md").read_text()
    assert (tmp_path / "lb.csv").read_text().startswith("rank,contestant,rating,ci_low,ci_high")
    assert len(json.loads((tmp_path / "lb.json").read_text())["rows"]) == 3
    assert (tmp_path / "lb.md").read_text().startswith("| Rank |")
    with pytest.raises(PlaygroundError, match=r"\.csv, \.json or \.md"):
        export_leaderboard(db, tmp_path / "lb.xlsx")


def test_tab_cli_and_exported_file_rank_alike_with_tie_model_and_category(db, tmp_path, capsys):
    """One leaderboard builder: the same options give the same rows in the tab, `leaderboard --json` and
    `export leaderboard` (the exported file used to ignore the tie model and the category)."""
    from playground.cli import main
    from playground.leaderboard import category_counts
    from playground.ui import leaderboard_handlers as lt

    category = next(iter(category_counts(db, {})))
    flags = ["--rounds", "20", "--tie-model", "davidson", "--category", category, "--by", "model"]
    path = str(database_file(db))
    assert main(["leaderboard", "--db", path, "--json", *flags]) == 0
    cli_rows = json.loads(capsys.readouterr().out)
    assert main(["export", "leaderboard", "--db", path, "--out", str(tmp_path / "lb.json"), *flags]) == 0
    doc = json.loads((tmp_path / "lb.json").read_text())
    assert doc["settings"]["tie_model"] == "davidson" and "nu" in doc["tie_model"]
    assert doc["rows"] == cli_rows
    tab = lt.rank(path, lt.BoardFilters(by="model", rounds=20, tie_model="davidson", category=category))
    assert [(r.contestant, r.battles) for r in tab.board.rows] == [(r["contestant"], r["battles"]) for r in cli_rows]
    assert main(["export", "leaderboard", "--db", path, "--out", str(tmp_path / "none.json"), "--rounds", "0",
                 "--category", "no-such-category"]) != 0


NAMED = 2  # the fixture's named Playground comparisons (q1, q4); the other 10 battles are anonymous


def test_default_leaderboard_export_ranks_anonymous_battles_only(db, tmp_path):
    """As the leaderboard command and tab: named comparisons only with include_named, and the file says so."""
    default = export_leaderboard(db, tmp_path / "anon.json", BoardOptions(rounds=0))
    doc = json.loads((tmp_path / "anon.json").read_text())
    assert doc["battles"] == 12 - NAMED and sum(r["battles"] for r in doc["rows"]) == 2 * (12 - NAMED)
    assert doc["settings"]["battles_shown"] == default.shows and "anonymous (blind) battles only" in default.shows
    assert doc["settings"]["grouping"] == default.grouping == "model"
    named = export_leaderboard(db, tmp_path / "all.json", BoardOptions(rounds=0, include_named=True))
    assert json.loads((tmp_path / "all.json").read_text())["battles"] == 12
    assert named.shows == "anonymous Arena battles and named Playground comparisons; people's votes only"


def test_cli_leaderboard_export_defaults_follow_the_leaderboard(tmp_path, capsys):
    """`python app.py export leaderboard` (real argument parser): anonymous battles, auto grouping,
    both stated; one bundled model compared in two modes is grouped by model + mode."""
    from playground.cli import main

    path = tmp_path / "one-model.db"
    database = storage.open_database(path)
    add_battle(database, "smol", "smol", "left", tstamp=T0, question="q0", left_mode="instruction")
    add_battle(database, "smol", "smol", "right", tstamp=T0 + 1, question="q1", left_mode="instruction")
    add_battle(database, "smol", "smol", "left", tstamp=T0 + 2, question="q2", anonymous=False)
    database.close()
    out = tmp_path / "lb.md"
    assert main(["export", "leaderboard", "--db", str(path), "--out", str(out), "--rounds", "0"]) == 0
    printed = capsys.readouterr().out
    assert "Grouped by model + mode" in printed and "contestants by model+mode" in printed
    assert "anonymous (blind) battles only" in printed and "--include-named adds named Playground comparisons" in printed
    text = out.read_text()
    assert "2 battles (anonymous (blind) battles only" in text and "smol + instruction" in text
    assert main(["export", "leaderboard", "--db", str(path), "--out", str(out), "--rounds", "0",
                 "--include-named"]) == 0
    assert "3 battles (anonymous Arena battles and named Playground comparisons; people's votes only)" in out.read_text()
    assert main(["export", "dpo", "--db", str(path), "--out", str(tmp_path / "p.jsonl"), "--include-named"]) == 2
    assert "--include-named applies to the leaderboard" in capsys.readouterr().err


# ----------------------------------------------------------------------------- CLI


def cli_args(what, out, **overrides):
    args = dict(what=what, out=out, format="standard", model=None, mode=None, since=None, until=None,
                anonymous_only=False, include_named=False, no_dedupe=False, no_truncated=False, by="model", rounds=50, seed=0, length_control=False)
    args.update(overrides)
    return argparse.Namespace(**args)


class Settings:
    def __init__(self, db_path):
        self.db_path = db_path


def test_cli_export_commands(db, tmp_path, capsys):
    settings = Settings(tmp_path / "playground.db")
    assert export_cmd.run(cli_args("dpo", tmp_path / "p.jsonl", format="conversational"), settings) == 0
    assert "wrote 8 DPO pairs (conversational)" in capsys.readouterr().out
    assert export_cmd.run(cli_args("battles", tmp_path / "b.json", since="2023-11-14T22:13:25"), settings) == 0
    assert len(json.loads((tmp_path / "b.json").read_text())) == 7
    assert export_cmd.run(cli_args("leaderboard", tmp_path / "l.md", by="mode"), settings) == 0
    assert "instruction" in (tmp_path / "l.md").read_text()
    assert export_cmd.run(cli_args("dpo", tmp_path / "none.jsonl", model="nobody"), settings) == 1
    assert "nothing matched" in capsys.readouterr().err


def test_parse_when():
    assert parse_when("1700000000") == T0
    assert parse_when("2023-11-14T22:13:20Z") == T0
    assert parse_when("2023-11-14T23:13:20+01:00") == T0
    assert parse_when("2023-11-14") == T0 - (22 * 3600 + 13 * 60 + 20)
    assert parse_when("2023-11-14", end_of_day=True) == parse_when("2023-11-15")
    with pytest.raises(PlaygroundError, match="ISO date"):
        parse_when("last tuesday")


def test_the_leaderboard_date_boxes_read_what_the_cli_reads():
    """One date rule for every filter: epoch seconds and zoned times work in the UI boxes too."""
    from playground.ui.leaderboard_handlers import parse_window

    window = parse_window(" 1700000000 ", "2023-11-14")
    assert (window.since, window.until) == (T0, parse_when("2023-11-14", end_of_day=True))
    window = parse_window("2023-11-14T23:13:20+01:00", str(T0 + 60))
    assert (window.since, window.until) == (T0, T0 + 60)
