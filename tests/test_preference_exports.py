"""Preference exports: multi-turn DPO pairs, KTO rows, answers cut by the token limit, counted votes
only (first judgement of a pair, nothing forgotten), all checked with TRL's own data helpers.

Real SQLite files; TRL's `maybe_extract_prompt` / `maybe_apply_chat_template` with the bundled
SmolLM2's own chat template (its tokenizer read from the GGUF file).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from datasets import load_dataset

import storage
from playground.commands import export_cmd
from playground.export import KTO_RULE, PreferenceFilters, export_dpo, export_kto, meta_path_for
from playground.leaderboard import load_battles

ALL = PreferenceFilters(include_truncated=True)   # the fixture's votes include an answer cut by the token limit

T0 = 1_700_000_000.0


def turns(*texts: str) -> list[dict[str, str]]:
    return [{"role": "user" if k % 2 == 0 else "assistant", "content": t} for k, t in enumerate(texts)]


def judged(db, left, right, winner, *, left_turns, right_turns, left_output, right_output, tstamp,
           left_finish="stop", right_finish="stop"):
    ids = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=c, output=o, mode="zero_shot",
                                                                  finish_reason=f, session_id="s"))
           for m, c, o, f in ((left, left_turns, left_output, left_finish), (right, right_turns, right_output,
                                                                           right_finish))]
    battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True,
                                   session_id="s")
    return storage.record_vote(db, battle_id=battle, winner=winner, session_id="s", tstamp=tstamp), ids


@pytest.fixture()
def db(tmp_path):
    database = storage.open_database(tmp_path / "playground.db")
    judged(database, "alpha", "beta", "left", left_turns=turns("What is 2 + 2?"), right_turns=turns("What is 2 + 2?"),
           left_output="4", right_output="five", tstamp=T0)
    # a follow-up: both saw the same user turns, each its own earlier answer
    judged(database, "alpha", "beta", "right", left_turns=turns("Hi", "Hello!", "Name a colour"),
           right_turns=turns("Hi", "Hey.", "Name a colour"), left_output="Table", right_output="Blue", tstamp=T0 + 1)
    judged(database, "beta", "gamma", "both_bad", left_turns=turns("Capital of France?"),
           right_turns=turns("Capital of France?"), left_output="Lyon", right_output="Nice", tstamp=T0 + 2)
    judged(database, "gamma", "alpha", "tie", left_turns=turns("1 + 1?"), right_turns=turns("1 + 1?"),
           left_output="2", right_output="two", tstamp=T0 + 3)
    judged(database, "gamma", "beta", "left", left_turns=turns("Count to 100"), right_turns=turns("Count to 100"),
           left_output="1, 2, 3, 4", right_output="1 2", left_finish="length", tstamp=T0 + 4)
    yield database
    database.close()


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_multi_turn_pair_prompt_is_what_both_sides_saw(db, tmp_path):
    result = export_dpo(db, tmp_path / "chat.jsonl", ALL, format="conversational")
    rows = read_jsonl(result.path)
    assert result.written == 3 and result.left_out == {}
    follow_up = rows[1]
    assert follow_up["prompt"] == turns("Hi")
    assert follow_up["chosen"] == turns("Hi", "Hey.", "Name a colour", "Blue")[1:]
    assert follow_up["rejected"] == turns("Hi", "Hello!", "Name a colour", "Table")[1:]
    standard = export_dpo(db, tmp_path / "plain.jsonl", ALL)
    assert standard.written == 2 and standard.left_out == {"multi_turn": 1}
    assert json.loads(standard.summary_path.read_text())["left_out"] == {"multi_turn": 1}


def test_answers_cut_by_the_token_limit_are_counted_and_can_be_left_out(db, tmp_path):
    kept = export_dpo(db, tmp_path / "all.jsonl", ALL)
    assert kept.truncated == 1
    meta = read_jsonl(meta_path_for(kept.path))
    assert [m["truncated"] for m in meta] == [False, True]
    assert meta[1]["chosen_finish_reason"] == "length"
    summary = json.loads(kept.summary_path.read_text())
    assert summary["truncated_answers_included"] == 1 and summary["include_truncated"] is True
    without = export_dpo(db, tmp_path / "finished.jsonl", PreferenceFilters(include_truncated=False))
    assert (without.written, without.truncated, without.left_out) == (1, 0, {"truncated": 1, "multi_turn": 1})
    assert json.loads(without.summary_path.read_text())["left_out"]["truncated"] == 1


def test_kto_rule(db, tmp_path):
    result = export_kto(db, tmp_path / "kto.jsonl", ALL, format="conversational")
    rows, meta = read_jsonl(result.path), read_jsonl(meta_path_for(result.path))
    assert len(rows) == len(meta) == 8 == result.written   # 3 decisive x 2 + both_bad x 2; the tie gives none
    labels = [(m["vote_id"], m["model"], m["label"]) for m in meta]
    assert labels == [(1, "alpha", True), (1, "beta", False), (2, "alpha", False), (2, "beta", True),
                      (3, "beta", False), (3, "gamma", False), (5, "gamma", True), (5, "beta", False)]
    assert all(set(r) == {"prompt", "completion", "label"} for r in rows)
    assert rows[2]["completion"] == turns("Hi", "Hello!", "Name a colour", "Table")[1:]
    assert json.loads(result.summary_path.read_text())["rule"] == KTO_RULE
    plain = export_kto(db, tmp_path / "kto-plain.jsonl", ALL)
    assert plain.written == 6 and plain.left_out == {"multi_turn": 1}
    assert read_jsonl(plain.path)[0] == {"prompt": "What is 2 + 2?", "completion": "4", "label": True}


def test_cli_export_kto(db, tmp_path, capsys):
    class Settings:
        db_path = tmp_path / "playground.db"

    args = argparse.Namespace(what="kto", out=tmp_path / "k.jsonl", format="standard", model=None, mode=None,
                              since=None, until=None, anonymous_only=False, no_dedupe=False, no_truncated=True,
                              by="model", rounds=50, seed=0, length_control=False)
    assert export_cmd.run(args, Settings()) == 0
    out = capsys.readouterr().out
    assert "wrote 4 KTO rows (standard)" in out and "1 votes left out: an answer was cut" in out
    assert "1 multi-turn votes left out" in out and "both_bad: both answers" in out


def test_exports_and_rankings_use_the_first_judgement_and_honour_tombstones(db, tmp_path):
    assert len(load_battles(db, with_lengths=False).winner) == 5
    storage.forget(db, reason="privacy request", votes=[1])
    storage.forget(db, reason="privacy request", generations=[3])   # alpha's follow-up answer
    assert len(load_battles(db, with_lengths=False).winner) == 3
    result = export_dpo(db, tmp_path / "after.jsonl", ALL, format="conversational")
    assert [m["vote_id"] for m in read_jsonl(meta_path_for(result.path))] == [5]
    assert all(m["vote_id"] not in (1, 2) for m in read_jsonl(meta_path_for(
        export_kto(db, tmp_path / "k.jsonl", ALL, format="conversational").path)))


@pytest.fixture(scope="module")
def smol_tokenizer(bundled_gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_gguf.parent, gguf_file=bundled_gguf.name)


def test_trl_reads_both_dpo_files_and_the_kto_file(db, tmp_path, smol_tokenizer):
    from trl import maybe_apply_chat_template, maybe_extract_prompt

    def dataset(path: Path):
        return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))

    chat = dataset(export_dpo(db, tmp_path / "chat.jsonl", ALL, format="conversational").path)
    for row in chat:
        assert maybe_extract_prompt(row) == row            # the prompt is explicit: nothing to extract
        text = maybe_apply_chat_template(row, smol_tokenizer)
        whole = smol_tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        assert text["prompt"] + text["chosen"] == whole
        assert text["prompt"].endswith("<|im_start|>assistant\n")
        assert all(m["content"] in text["chosen"] for m in row["chosen"])
        assert all(m["content"] not in text["prompt"] for m in row["chosen"] + row["rejected"] if m["role"] == "assistant")
    follow_up = maybe_apply_chat_template(chat[1], smol_tokenizer)
    assert "Hey." in follow_up["chosen"] and "Blue" in follow_up["chosen"] and "Hello!" in follow_up["rejected"]

    plain = dataset(export_dpo(db, tmp_path / "plain.jsonl", ALL).path)
    for row in plain:
        assert maybe_extract_prompt(row) == row
        assert maybe_apply_chat_template(row, smol_tokenizer) == row   # standard format: used as is
    kto = dataset(export_kto(db, tmp_path / "kto.jsonl", ALL, format="conversational").path)
    for row in kto:
        text = maybe_apply_chat_template(row, smol_tokenizer)
        assert set(text) == {"prompt", "completion", "label"} and text["label"] == row["label"]
        assert row["completion"][-1]["content"] in text["completion"]
