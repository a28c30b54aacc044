"""Property: whatever a user does (asks with different pane counts, follow-ups, stops,
votes on any two answers in either order), every exported DPO and KTO row is a valid comparison.

Random action sequences (seeded, so a failure repeats) run through the recording functions the
Playground and Arena handlers use (compare.run_panes, recording.save_generation/save_vote) on the
bundled model with a few tokens per answer, into a real SQLite file. Then every exported row is
checked against the stored conversations: the same input on both sides, what was shown exactly,
no pair twice, no answer cut by Stop or failed.
"""
from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pytest

import storage
from playground.compare import PaneSpec, run_panes
from playground.errors import PlaygroundError
from playground.export import PreferenceFilters, export_dpo, export_kto, meta_path_for
from playground.recording import save_generation, save_vote
from playground.sampling import SamplingParams
from storage.pairs import input_messages, pair_key

MODEL = "smollm2-135m-instruct"
QUESTIONS = ("What is 2 + 2?", "Name a colour.", "Is ice cold?", "Say hi.")
WINNERS = ("left", "right", "tie", "both_bad")


class Session:
    """Up to 4 panes, each with its own history and latest stored answer (like the Playground)."""

    def __init__(self, ctx, db_path: Path, rng: random.Random) -> None:
        self.ctx, self.db_path, self.rng = ctx, db_path, rng
        self.histories: list[list[dict[str, str]]] = [[] for _ in range(4)]
        self.generations: list[int | None] = [None] * 4
        self.stored: list[int] = []
        self.voted: list[tuple[int, int]] = []
        self.refused = 0

    def ask(self) -> None:
        n = self.rng.randint(2, 4)
        follow_up = self.rng.random() < 0.4
        question = self.rng.choice(QUESTIONS)
        histories = [list(self.histories[i]) if follow_up else [] for i in range(n)]
        specs = [PaneSpec(MODEL, mode=self.rng.choice(("zero_shot", "instruction")),
                          sampling=SamplingParams(max_new_tokens=self.rng.choice((2, 4)), seed=0)) for _ in range(n)]
        cancel = threading.Event()
        stop_at = self.rng.choice((None, None, 0, 1))
        final = None
        for k, final in enumerate(run_panes(self.ctx, specs, question, histories, cancel)):
            if stop_at is not None and k >= stop_at:
                cancel.set()
        for i, result in enumerate(final):
            conversation = histories[i] + [{"role": "user", "content": question}]
            gid = save_generation(self.db_path, session_id="prop", spec=self.ctx.catalog.get(MODEL),
                                  backend="llama_cpp", device="cpu", mode=specs[i].mode, preset=None,
                                  conversation=conversation, result=result, sampling=specs[i].sampling)
            self.generations[i] = gid
            self.stored.append(gid)
            if not result.error:
                self.histories[i] = conversation + [{"role": "assistant", "content": result.answer_text}]

    def vote(self) -> None:
        if self.voted and self.rng.random() < 0.3:
            left, right = self.rng.choice(self.voted)[::-1]          # the same pair again, other order
        else:
            pool = [g for g in self.generations if g is not None]
            if self.rng.random() < 0.3:
                pool = self.stored                                   # any answer ever shown, stale too
            if len(set(pool)) < 2:
                return
            left, right = self.rng.sample(sorted(set(pool)), 2)
        try:
            save_vote(self.db_path, left_generation_id=left, right_generation_id=right,
                      winner=self.rng.choice(WINNERS), session_id="prop", anonymous=False, source="playground")
            self.voted.append((left, right))
        except PlaygroundError:
            self.refused += 1


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def shown(db, generation_id: int) -> tuple[list[dict[str, str]], str, str | None]:
    conversation, output, finish = db.execute(
        "SELECT conversation, output, finish_reason FROM generations WHERE id = ?", [generation_id]).fetchone()
    return json.loads(conversation) + [{"role": "assistant", "content": output}], output, finish


@pytest.mark.parametrize("seed", [11, 23])
def test_every_exported_row_is_a_valid_comparison(app_ctx, tmp_path, seed):
    rng = random.Random(seed)
    db_path = tmp_path / "prop.db"
    session = Session(app_ctx, db_path, rng)
    session.ask()
    for _ in range(10):
        session.ask() if rng.random() < 0.35 else session.vote()
    for _ in range(4):
        session.vote()

    db = storage.open_database(db_path)
    try:
        files = {}
        for kind, write in (("dpo", export_dpo), ("kto", export_kto)):
            for format in ("conversational", "standard"):
                out = tmp_path / f"{kind}-{format}.jsonl"
                write(db, out, PreferenceFilters(include_truncated=True), format=format, dedupe=False)
                files[kind, format] = list(zip(read_jsonl(out), read_jsonl(meta_path_for(out)), strict=True))

        pairs_seen: set[tuple[int, int]] = set()
        for row, meta in files["dpo", "conversational"]:
            chosen, _, chosen_finish = shown(db, meta["chosen_generation_id"])
            rejected, _, rejected_finish = shown(db, meta["rejected_generation_id"])
            assert input_messages(chosen) == input_messages(rejected)                 # same input
            assert row["prompt"] + row["chosen"] == chosen                            # exactly what was shown
            assert row["prompt"] + row["rejected"] == rejected
            assert row["prompt"][-1]["role"] == "user"
            assert {chosen_finish, rejected_finish}.isdisjoint({"cancelled", "error"})  # finished answers only
            key = pair_key(meta["chosen_generation_id"], meta["rejected_generation_id"])
            assert key not in pairs_seen                                               # one judgement per pair
            pairs_seen.add(key)
        standard_ids = [m["vote_id"] for _, m in files["dpo", "standard"]]
        assert set(standard_ids) <= {m["vote_id"] for _, m in files["dpo", "conversational"]}

        kto_votes: dict[int, list[dict]] = {}
        for row, meta in files["kto", "conversational"]:
            conversation, _, finish = shown(db, meta["generation_id"])
            assert row["prompt"] + row["completion"] == conversation and finish not in ("cancelled", "error")
            kto_votes.setdefault(meta["vote_id"], []).append(meta)
        kto_pairs = set()
        for vote_id, sides in kto_votes.items():
            assert len(sides) == 2 and sides[0]["winner"] != "tie"
            left, right = (shown(db, s["generation_id"])[0] for s in sides)
            assert input_messages(left) == input_messages(right)
            assert [s["label"] for s in sides].count(True) == (0 if sides[0]["winner"] == "both_bad" else 1)
            key = pair_key(sides[0]["generation_id"], sides[1]["generation_id"])
            assert key not in kto_pairs
            kto_pairs.add(key)
        # the database agrees: one counted vote per unordered pair, never on an unfinished answer
        counted = db.execute(
            "SELECT b.left_generation_id, b.right_generation_id FROM counted_votes v "
            "JOIN battles b ON b.id = v.battle_id").fetchall()
        assert len({pair_key(*pair) for pair in counted}) == len(counted)
    finally:
        db.close()
    assert session.stored and (session.voted or session.refused)
