"""What may be judged against what: the same input, finished answers, one judgement per pair.

These rules live here, once, and everything that creates battles or votes (records.py for the
UI, the Gradio API and the CLI; importer.py for Arena files) asks this module; the database's
triggers (migrations m008) refuse the same things for any other writer.

*Same input.* Two answers are comparable when they answered the same input: the same
user-supplied messages, in order, of the conversation the user saw (every user turn, and a system
message only when the user gave one as part of the input). A mode's scaffolding is not input:
exemplars, a preset's system prompt, a chain-of-thought trigger or an instruction template are
the contestant's method, stored on the generation (`system_prompt`, `calls`), never compared.
Earlier assistant turns are each side's own answers in a multi-turn battle, so they are not part
of the input either: a vote on a follow-up judges the whole conversation. The `input_fingerprint`
column is a sha256 over exactly those messages.

*Identical answers.* Two answers with the same text (after trimming whitespace: `same_answer`)
take only a tie or both-bad from people (`same_answer_refusal`, checked by `recording.save_vote`);
votes already stored on them stay, but preference exports leave them out and the leaderboard
leaves out decisive ones (each counts what it left out).

*Votable answers.* An answer cut by Stop (`finish_reason` cancelled) or that failed (`error`)
cannot be judged; one cut by the token limit (`length`) can, and exports say how many they hold.

*Pair identity.* A battle is the UNORDERED pair of its two generations: (A, B) and (B, A) are the
same battle (one battle per pair), and each voter gives the pair one judgement, their first
(several annotators may judge one battle; `votes.voter` says who). Only `pair_clause`,
`battle_for_pair` and `first_vote_for_pair` know this; the triggers of m008 and m020 refuse the
same for any other writer.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlite_utils import Database

INPUT_ROLES = ("system", "user")
UNVOTABLE_FINISH = ("cancelled", "error")


def input_messages(conversation: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """The user-supplied messages of a conversation: what "same input" compares."""
    return [{"role": m["role"], "content": m["content"]} for m in conversation if m.get("role") in INPUT_ROLES]


def input_fingerprint(conversation: Sequence[Mapping[str, str]]) -> str:
    """'sha256:<hex>' of the canonical JSON of `input_messages(conversation)`."""
    canonical = json.dumps(input_messages(conversation), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def input_difference(left: Sequence[Mapping[str, str]], right: Sequence[Mapping[str, str]]) -> str | None:
    """None when both conversations have the same input, else where they differ, in words."""
    a, b = input_messages(left), input_messages(right)
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            what = "first user turn" if i == 0 and x["role"] == y["role"] == "user" else f"input message {i + 1}"
            return f"their {what} differs ({_short(x['content'])!r} against {_short(y['content'])!r})"
    if len(a) != len(b):
        return f"one has {len(a)} user message(s), the other {len(b)}"
    return None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unvotable_reason(finish_reason: str | None, error: str | None) -> str | None:
    """Why an answer cannot be judged (cut by Stop, failed), or None when it can."""
    if finish_reason == "cancelled":
        return "was cut by Stop (cancelled) before it finished"
    if finish_reason == "error" or error:
        return f"failed ({error or 'error'})"
    return None


# ---------------------------------------------------------------- identical answers


ANSWER_WHITESPACE = " \t\n\r\x0b\x0c"
SAME_ANSWER_VERDICTS = ("tie", "both_bad")
SAME_ANSWER_NOTICE = ("The two answers are identical, so neither is better: only Tie or Both are bad "
                      "can be recorded.")


def same_answer(left_output: str | None, right_output: str | None) -> bool:
    """Whether two answers are the same text once leading and trailing whitespace is trimmed.

    A decisive verdict between them says nothing about which model is better and, as a training
    pair, has `chosen` equal to `rejected`. Only exact equality counts: "near-identical" (one
    comma, different capitalisation) can be a real difference a reader prefers, and a fuzzy
    threshold would silently drop real judgements. ASCII whitespace only, so SQLite's `trim`
    applies the very same rule (`same_answer_sql`). Two empty answers are not "the same": an
    answer with no text is also how a battle imported without its conversations is stored, and a
    verdict on such a battle was made on answers we do not have, so it is kept.
    """
    left = (left_output or "").strip(ANSWER_WHITESPACE)
    return left != "" and left == (right_output or "").strip(ANSWER_WHITESPACE)


def same_answer_sql(left: str, right: str) -> str:
    """SQL for `same_answer` over two output columns (e.g. 'gl.output', 'gr.output')."""
    chars = "char(" + ",".join(str(ord(c)) for c in ANSWER_WHITESPACE) + ")"
    trimmed = f"trim(coalesce({left}, ''), {chars})"
    return f"({trimmed} <> '' AND {trimmed} = trim(coalesce({right}, ''), {chars}))"


def same_answer_refusal(winner: str, left_output: str | None, right_output: str | None) -> str | None:
    """Why this verdict cannot be recorded on these two answers (a decisive one on identical text), or None."""
    if winner not in SAME_ANSWER_VERDICTS and same_answer(left_output, right_output):
        return SAME_ANSWER_NOTICE
    return None


# ---------------------------------------------------------------- pair identity (the one place)


def pair_key(first_generation_id: int, second_generation_id: int) -> tuple[int, int]:
    """The identity of a battle: its two generations, order ignored."""
    return (min(first_generation_id, second_generation_id), max(first_generation_id, second_generation_id))


def pair_clause(alias: str = "b") -> str:
    """SQL matching battles `alias` on the unordered pair given as two parameters (a, b, a, b)."""
    return (f"(({alias}.left_generation_id = ? AND {alias}.right_generation_id = ?) OR "
            f"({alias}.right_generation_id = ? AND {alias}.left_generation_id = ?))")


def battle_for_pair(db: Database, first_id: int, second_id: int) -> int | None:
    """The first battle on this unordered pair of generations, or None."""
    found = db.execute(f"SELECT min(b.id) FROM battles b WHERE {pair_clause()}",
                       [first_id, second_id, first_id, second_id]).fetchone()
    return None if found is None or found[0] is None else int(found[0])


def first_vote_for_pair(db: Database, first_id: int, second_id: int, voter: str) -> dict[str, Any] | None:
    """This voter's first vote on any battle of this unordered pair: {id, battle_id, winner}, or None."""
    found = db.execute(
        f"SELECT v.id, v.battle_id, v.winner FROM votes v JOIN battles b ON b.id = v.battle_id "
        f"WHERE {pair_clause()} AND v.voter = ? ORDER BY v.id LIMIT 1",
        [first_id, second_id, first_id, second_id, voter]).fetchone()
    return None if found is None else {"id": int(found[0]), "battle_id": int(found[1]), "winner": found[2]}
