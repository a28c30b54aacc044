"""Arena battles: a pool of contestants, balanced pair sampling, blind rounds, reveal after the vote.

A *contestant* is a model, or a model under one prompting mode. Its key is how battles are
counted and ranked: `model_id` for a models-only pool (run in `DEFAULT_MODE`), else
`"model_id + mode"` (the leaderboard's "model+mode" label).

Pair sampling rule: every unordered pair {a, b} of distinct contestants in the pool is drawn
with probability proportional to `1 / (1 + n_battles(a, b))`, where `n_battles` counts the rows
of `battles` (any source) between the two contestants in either order. Pairs that were judged
less get drawn more, so coverage stays balanced without ever excluding a pair. Which contestant
sits left ("Model A") is then a fair coin, so position bias cannot favour anyone.

A `Round` is the state of one blind battle; it round-trips through a plain dict so it can live
in a session's `gr.State`. Nothing here knows about Gradio.
"""
from __future__ import annotations

import itertools
import random
import uuid
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from sqlite_utils import Database

from storage import VoteRefused, VoteResult, open_database
from storage.pairs import same_answer, same_answer_refusal

from playground.errors import PlaygroundError
from playground.prompting.plan import MODES, Message
from playground.recording import save_vote, session_id_for  # noqa: F401  (re-exported)
from playground.verdicts import WINNER_LABELS

DEFAULT_MODE = "zero_shot"
SIDES: tuple[str, str] = ("left", "right")
SIDE_NAMES = {"left": "Model A", "right": "Model B"}
Status = Literal["ready", "running", "answered", "failed", "voted"]


class ArenaError(PlaygroundError):
    """A battle action that cannot happen now (pool too small, round over, answers pending)."""


# ---------------------------------------------------------------- contestants and pool


def contestant_key(model_id: str, mode: str | None = None) -> str:
    """`model_id`, or `"model_id + mode"` when the mode is part of the contestant."""
    return f"{model_id} + {mode}" if mode else model_id


@dataclass(frozen=True)
class Contestant:
    """A model, or a model under one mode (`mode=None`: models-only pool, run in DEFAULT_MODE)."""

    model_id: str
    mode: str | None = None

    @property
    def key(self) -> str:
        return contestant_key(self.model_id, self.mode)

    @property
    def run_mode(self) -> str:
        return self.mode or DEFAULT_MODE


def build_pool(models: Iterable[str], modes: Iterable[str] = ()) -> list[Contestant]:
    """Models x modes (or the models alone when no mode is picked); needs at least two contestants."""
    models = list(dict.fromkeys(m for m in models if m))
    modes = list(dict.fromkeys(m for m in modes if m))
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ArenaError(f"unknown mode(s) {', '.join(unknown)}: choose from {', '.join(MODES)}")
    pool = ([Contestant(m, mode) for m in models for mode in modes] if modes
            else [Contestant(m) for m in models])
    if len(pool) < 2:
        raise ArenaError(
            f"the pool has {len(pool)} contestant{'' if len(pool) == 1 else 's'} and a battle needs two: "
            "pick at least two models, or one model and two or more modes")
    return pool


def saved_pool(db_path: Path, known: Iterable[str]) -> list[Contestant] | None:
    """The saved pool (`arena pool`, the Train tab's "Battle it") as models-only contestants, or None.

    While it is set, every new pair is drawn from it, whatever a user picked: base and tuned then
    meet under the same mode. A saved model missing from the catalog (`known`) -> ArenaError.
    """
    from storage.arena_pool import current_arena_pool

    if not Path(db_path).exists():
        return None
    with closing(open_database(db_path)) as db:
        models = current_arena_pool(db)
    if models is None:
        return None
    known = set(known)
    missing = [m for m in models if m not in known]
    if missing:
        raise ArenaError(f"the saved Arena pool names {', '.join(missing)}, not in the catalog any more: set "
                         "another with `python app.py arena pool --models A,B` or `python app.py arena pool --clear`")
    return build_pool(models)


def save_pool(db_path: Path, models: Sequence[str], catalog: Any, *, set_by: str = "") -> tuple[str, ...]:
    """Save the pool every new battle is drawn from; each id must be a catalog model (else a
    PlaygroundError naming it, with close matches), at least two different ones."""
    from storage.arena_pool import set_arena_pool

    ids = tuple(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    for model_id in ids:
        if model_id not in catalog.models:
            if not model_id.startswith("hf:"):
                catalog.get(model_id)       # raises UnknownModelError with close matches
            raise ArenaError(f"{model_id} is not in the catalog: download it in the Models tab first "
                             "(`python app.py models` lists the catalog)")
    if len(ids) < 2:
        raise ArenaError(f"an Arena pool needs at least two different models, got {', '.join(ids) or 'none'}: "
                         "pass --models BASE,TUNED")
    with closing(open_database(db_path)) as db:
        return set_arena_pool(db, ids, set_by=set_by)


# ---------------------------------------------------------------- balanced pair sampling


def pair_battle_counts(db: Database, contestants: Sequence[Contestant]) -> dict[frozenset[str], int]:
    """Battles so far between each pair of the pool's contestants (either side), in one query.

    A battle side (model, mode) belongs to the contestant `model + mode` if it is in the pool,
    else to the models-only contestant `model`.
    """
    keys = {c.key for c in contestants}
    models = sorted({c.model_id for c in contestants})
    if not models:
        return {}
    marks = ", ".join("?" * len(models))
    rows = db.execute(
        "SELECT left_model, coalesce(left_mode, ''), right_model, coalesce(right_mode, ''), count(*) "
        f"FROM battles WHERE left_model IN ({marks}) AND right_model IN ({marks}) GROUP BY 1, 2, 3, 4",
        [*models, *models]).fetchall()
    counts: dict[frozenset[str], int] = {}
    for left_model, left_mode, right_model, right_mode, n in rows:
        left, right = _key_in_pool(keys, left_model, left_mode), _key_in_pool(keys, right_model, right_mode)
        if left and right and left != right:
            pair = frozenset((left, right))
            counts[pair] = counts.get(pair, 0) + int(n)
    return counts


def _key_in_pool(keys: set[str], model_id: str, mode: str) -> str | None:
    for key in (contestant_key(model_id, mode), model_id):
        if key in keys:
            return key
    return None


def pair_weight(n_battles: int) -> float:
    """The sampling weight of a pair that has had `n_battles` battles."""
    return 1.0 / (1.0 + n_battles)


def draw_pair(pool: Sequence[Contestant], counts: dict[frozenset[str], int],
              rng: random.Random) -> tuple[Contestant, Contestant]:
    """Two distinct contestants, (left, right): pair ~ 1/(1 + battles), then a coin for the sides."""
    unique = list({c.key: c for c in pool}.values())
    if len(unique) < 2:
        raise ArenaError(f"the pool has {len(unique)} distinct contestant(s) and a battle needs two")
    pairs = list(itertools.combinations(unique, 2))
    weights = [pair_weight(counts.get(frozenset((a.key, b.key)), 0)) for a, b in pairs]
    a, b = rng.choices(pairs, weights=weights, k=1)[0]
    return (a, b) if rng.random() < 0.5 else (b, a)


# ---------------------------------------------------------------- one blind round


@dataclass
class SideState:
    """One contestant's part of the round: its own history, prompts, latest answer."""

    contestant: Contestant
    history: list[Message] = field(default_factory=list)     # what this contestant was sent
    transcript: list[Message] = field(default_factory=list)  # what the user sees in this side
    prompts: list[str] = field(default_factory=list)         # the exact prompt of each turn
    generation_id: int | None = None                         # the latest turn's stored answer
    error: str | None = None
    done: bool = True
    figures: str = ""    # the latest turn's token counts and speed: shown only after the vote
    notices: str = ""    # the latest turn's notices (e.g. a mode's settings): shown only after the vote


@dataclass
class Round:
    """One blind battle between two contestants; `to_dict`/`from_dict` for gr.State."""

    left: SideState
    right: SideState
    round_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: Status = "ready"
    turns: int = 0
    vote: dict[str, Any] | None = None   # {winner, vote_id, battle_id}

    def side(self, name: str) -> SideState:
        if name not in SIDES:
            raise ArenaError(f"unknown side {name!r}: use left or right")
        return self.left if name == "left" else self.right

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Round":
        sides = {}
        for name in SIDES:
            raw = dict(data[name])
            raw["contestant"] = Contestant(**raw["contestant"])
            sides[name] = SideState(**raw)
        return cls(**{**data, **sides})


def start_round(pool: Sequence[Contestant], counts: dict[frozenset[str], int], rng: random.Random) -> Round:
    """A new round on a freshly drawn pair; identities stay hidden until the vote."""
    left, right = draw_pair(pool, counts, rng)
    return Round(left=SideState(left), right=SideState(right))


def draw_round(db_path: Path, pool: Sequence[Contestant], rng: random.Random) -> Round:
    """`start_round` with the battle counts read from the database."""
    with closing(open_database(db_path)) as db:
        counts = pair_battle_counts(db, pool)
    return start_round(pool, counts, rng)


def begin_turn(rnd: Round, question: str) -> Round:
    """Open a turn (the first question or a follow-up) for both contestants."""
    if not question.strip():
        raise ArenaError("type a question first")
    if rnd.status == "voted":
        raise ArenaError("this round is over (you voted): press New round for a new pair")
    if rnd.status == "failed":
        raise ArenaError("a contestant failed in this round: press New round for a new pair")
    if rnd.status == "running":
        raise ArenaError("both models are still answering: wait, or press New round")
    for side in (rnd.left, rnd.right):
        side.done, side.error, side.generation_id = False, None, None
    rnd.status, rnd.turns = "running", rnd.turns + 1
    return rnd


def record_answer(rnd: Round, side: str, question: str, answer: str, exact_prompt: str,
                  generation_id: int | None, error: str | None = None, figures: str = "",
                  notices: str = "") -> Round:
    """A side's finished answer; when both are in, the round is open for a vote (or failed).

    `figures` and `notices` identify the contestant (prompt length, speed, a mode's settings):
    they are kept for the reveal, never shown before the vote.
    """
    state = rnd.side(side)
    if state.done:
        return rnd
    state.figures, state.notices = figures, notices
    turn: list[Message] = [{"role": "user", "content": question}]
    if exact_prompt:
        state.prompts.append(exact_prompt)
    if error is None and generation_id is None:
        error = "the answer was not saved"
    if error is None:
        turn.append({"role": "assistant", "content": answer})
        state.history += turn
    elif answer:
        turn.append({"role": "assistant", "content": answer})
    state.transcript += turn
    state.generation_id, state.error, state.done = generation_id, error, True
    if rnd.left.done and rnd.right.done:
        rnd.status = "failed" if (rnd.left.error or rnd.right.error) else "answered"
    return rnd


def can_vote(rnd: Round | None) -> tuple[bool, str]:
    """Whether the round takes a vote now, and if not, why (shown to the user)."""
    if rnd is None or rnd.turns == 0:
        return False, "ask a question first: both models answer, then you vote"
    if rnd.status == "running":
        return False, "wait until both answers are complete before voting"
    if rnd.status == "voted":
        return False, f"you already voted in this round ({WINNER_LABELS[rnd.vote['winner']]}): press New round"
    if rnd.status == "failed":
        failed = [SIDE_NAMES[n] for n in SIDES if rnd.side(n).error]
        return False, f"{' and '.join(failed)} failed, so this round cannot be judged: press New round"
    return True, "both answers are complete: vote"


def latest_answer(side: SideState) -> str | None:
    """The side's latest answer as shown, or None before it answered."""
    last = side.transcript[-1] if side.transcript else None
    return last["content"] if last and last.get("role") == "assistant" else None


def same_answers(rnd: Round | None) -> bool:
    """Both sides answered the latest turn with the same text: only a tie or both-bad can be recorded."""
    return (rnd is not None and rnd.status in ("answered", "voted") and latest_answer(rnd.left) is not None
            and same_answer(latest_answer(rnd.left), latest_answer(rnd.right)))


def cast_vote(db_path: Path, rnd: Round, winner: str, session_id: str, note: str | None = None,
              tag: str | None = None) -> tuple[Round, VoteResult]:
    """Store the battle (on the latest pair of answers) and its vote; a repeat stores nothing new.

    `tag` is an optional category for the leaderboard (e.g. "coding"); without one, the battle's
    category is its prompting preset's task family.

    Raises `VoteRefused` when voting is not open (answers pending, failed round, unknown winner)
    or the verdict is decisive between two identical answers.
    """
    if winner not in WINNER_LABELS:
        raise VoteRefused(f"unknown verdict {winner!r}: use one of {', '.join(WINNER_LABELS)}")
    if rnd.status == "voted" and rnd.vote:
        winner = rnd.vote["winner"]   # a repeated click: the database returns the first vote
    else:
        ok, why = can_vote(rnd)
        if not ok:
            raise VoteRefused(why)
        same = same_answers(rnd) and same_answer_refusal(winner, latest_answer(rnd.left), latest_answer(rnd.right))
        if same:
            raise VoteRefused(same)
    result = save_vote(db_path, left_generation_id=int(rnd.left.generation_id or 0),
                       right_generation_id=int(rnd.right.generation_id or 0), winner=winner,
                       session_id=session_id, anonymous=True, source="arena", note=note,
                       tag=clean_tag(tag))
    rnd.status = "voted"
    rnd.vote = {"winner": result.winner, "vote_id": result.vote_id, "battle_id": result.battle_id}
    return rnd, result


MAX_TAG = 40


def clean_tag(tag: str | None) -> str | None:
    """A user tag as stored: trimmed, lower case, spaces collapsed; None when empty."""
    text = " ".join((tag or "").split()).lower()
    if len(text) > MAX_TAG:
        raise VoteRefused(f"the tag is {len(text)} characters long; use at most {MAX_TAG} (e.g. 'coding')")
    return text or None


@dataclass(frozen=True)
class Revealed:
    """Who a side was, shown only after the vote."""

    name: str            # "Model A" / "Model B"
    model_id: str
    mode: str
    key: str
    prompts: tuple[str, ...]
    figures: str = ""
    notices: str = ""


def reveal(rnd: Round) -> tuple[Revealed, Revealed]:
    """Both identities with the exact prompts each sent; refused before the vote."""
    if rnd.status != "voted":
        raise ArenaError("identities are revealed only after your vote")
    def one(name: str) -> Revealed:
        side = rnd.side(name)
        return Revealed(name=SIDE_NAMES[name], model_id=side.contestant.model_id, mode=side.contestant.run_mode,
                        key=side.contestant.key, prompts=tuple(side.prompts), figures=side.figures,
                        notices=side.notices)
    return one("left"), one("right")


# ---------------------------------------------------------------- sessions
