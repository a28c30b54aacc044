"""The Playground's turn and judging rules, as plain functions over the tab's `gr.State` dict.

A *round* is one Send: one question to the first n panes. Only the answers of the latest round,
in panes that are visible now, finished (not stopped, not failed), can be judged, and each
unordered pair once; a round starts fresh unless the user turns on follow-up, and then every
pane continues its own conversation with the same new user turn. The picker shows only what
these rules allow, and `vote_on_pair` checks them again on the server, so a crafted or stale
request cannot store a vote between answers to different inputs.
"""
from __future__ import annotations

from typing import Any, Sequence

from playground.context import AppContext
from playground.errors import PlaygroundError
from playground.recording import save_vote, session_id_for
from playground.ui.common import new_session_id
from playground.verdicts import WINNER_LABELS
from storage.pairs import pair_key as storage_pair_key
from storage.pairs import same_answer, same_answer_refusal

MAX_PANES = 6
DEFAULT_PANES = 2
UNJUDGEABLE = {"cancelled": "was stopped before it finished", "error": "failed"}


def new_grid_state() -> dict[str, Any]:
    """Nothing asked yet. `generations`, `finish`, `labels` and `histories` describe the panes of
    the latest round only; `judged` maps an unordered pair of generation ids to its verdict."""
    return {"session_id": new_session_id(), "run_id": None, "round": 0, "round_panes": 0,
            "question": "", "histories": [[] for _ in range(MAX_PANES)],
            "generations": [None] * MAX_PANES, "finish": [None] * MAX_PANES,
            "labels": [""] * MAX_PANES, "busy": [False] * MAX_PANES, "judged": {}}


def followup_problem(state: dict[str, Any], n: int) -> str | None:
    """Why the panes cannot continue their conversations with n panes, or None if they can.

    Follow-up gives every pane the same new user turn after its own earlier answers, so the
    panes must be exactly those of the last round and each of them must have finished it.
    """
    if not state.get("round"):
        return None
    m = int(state.get("round_panes") or 0)
    if n != m:
        return (f"Follow-up continues the {m} panes of the last question: set Panes to {m}, "
                f"or turn follow-up off to ask all {n} panes afresh.")
    for i in range(m):
        reason = UNJUDGEABLE.get(state["finish"][i] or "")
        if reason:
            return (f"Pane {i + 1} {reason} on the last question, so its conversation cannot go on: "
                    f"turn follow-up off to ask afresh.")
    return None


def start_round(state: dict[str, Any], question: str, n: int, labels: Sequence[str], followup: bool,
                run_id: str) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """A new round on a copy of `state`; returns it and the history each of the n panes continues
    (all empty unless follow-up). Answers of earlier rounds stop being judgeable here."""
    histories = [list(state["histories"][i]) if followup and state.get("round") else [] for i in range(n)]
    new = {**state, "run_id": run_id, "round": int(state.get("round") or 0) + 1, "round_panes": n,
           "question": question,
           "histories": histories + [[] for _ in range(MAX_PANES - n)],
           "generations": [None] * MAX_PANES, "finish": [None] * MAX_PANES,
           "labels": list(labels[:n]) + [""] * (MAX_PANES - n),
           "busy": [i < n for i in range(MAX_PANES)]}
    return new, histories


def pane_refusal(state: dict[str, Any], pane: int, visible: int) -> str | None:
    """Why pane (1-based) cannot be judged now, or None if it can."""
    i = pane - 1
    if not 0 <= i < MAX_PANES:
        return f"there is no pane {pane}"
    if i >= visible:
        return f"pane {pane} is hidden (Panes is {visible})"
    if state["busy"][i]:
        return f"pane {pane} is still answering"
    if i >= int(state.get("round_panes") or 0):
        return f"pane {pane} has no answer to the latest question"
    reason = UNJUDGEABLE.get(state["finish"][i] or "")
    if reason:
        return f"pane {pane} {reason}: only finished answers can be judged"
    if state["generations"][i] is None:
        return f"pane {pane}'s answer was not saved"
    return None


def judgeable_panes(state: dict[str, Any], visible: int) -> list[int]:
    """The panes (1-based) the judge pickers offer: visible, of the latest round, finished (also while
    other panes of the round still answer: a vote between two finished answers waits for no one)."""
    return [p for p in range(1, MAX_PANES + 1) if pane_refusal(state, p, visible) is None]


def pane_answer(state: dict[str, Any], pane: int) -> str | None:
    """The latest answer pane (1-based) gave, as shown, or None."""
    history = state["histories"][pane - 1] if 1 <= pane <= MAX_PANES else []
    return history[-1]["content"] if history and history[-1].get("role") == "assistant" else None


def identical_pairs(state: dict[str, Any], visible: int) -> list[tuple[int, int]]:
    """Pairs of judgeable panes whose answers are the same text (`storage.pairs.same_answer`)."""
    panes = judgeable_panes(state, visible)
    return [(a, b) for i, a in enumerate(panes) for b in panes[i + 1:]
            if same_answer(pane_answer(state, a), pane_answer(state, b))]


def judge_summary(state: dict[str, Any], visible: int) -> str:
    """One line above the pickers: what is being judged and which panes are left out, and why."""
    if not state.get("round"):
        return "Ask a question; then judge two of its answers here."
    if state.get("run_id"):
        return running_summary(state, visible)
    shown = min(visible, int(state["round_panes"]))
    left_out = [r for p in range(1, shown + 1) if (r := pane_refusal(state, p, visible))]
    hidden = int(state["round_panes"]) - shown
    notes = left_out + ([f"{hidden} pane(s) of this question are hidden"] if hidden > 0 else [])
    ok = judgeable_panes(state, visible)
    head = (f"Judge two answers to the latest question ({len(ok)} can be judged)." if len(ok) >= 2 else
            "Fewer than two answers to the latest question can be judged: ask again.")
    return head + ("" if not notes else " Not offered: " + "; ".join(notes) + ".") + twins_note(state, visible)


def twins_note(state: dict[str, Any], visible: int) -> str:
    """Said before the vote: which judgeable pairs gave the same text, and what may be recorded for them."""
    same = identical_pairs(state, visible)
    return ("" if not same else " Identical answers: " + ", ".join(f"panes {a} and {b}" for a, b in same)
            + " (only Tie or Both are bad can be recorded for such a pair).")


def running_summary(state: dict[str, Any], visible: int) -> str:
    """The hint while a round runs: finished answers can be judged now, the others keep answering."""
    ok = judgeable_panes(state, visible)
    running = sum(1 for i in range(min(visible, int(state["round_panes"]))) if state["busy"][i])
    waiting = f"{running} pane{'s' if running != 1 else ''} still answering"
    if len(ok) >= 2:
        return f"Judge two finished answers now ({len(ok)} can be judged; {waiting})." + twins_note(state, visible)
    return f"Judging opens as soon as two answers have finished ({len(ok)} so far; {waiting})."


def pair_key(left_id: int, right_id: int) -> str:
    """The unordered pair of two generations (A=1,B=2 and A=2,B=1 are the same comparison), as
    storage identifies battles (`storage.pairs.pair_key`), spelled as a string for gr.State."""
    a, b = storage_pair_key(int(left_id), int(right_id))
    return f"{a}-{b}"


def vote_on_pair(ctx: AppContext, state: dict[str, Any], pane_a: int, pane_b: int, winner: str,
                 note: str = "", visible: int = MAX_PANES) -> tuple[dict[str, Any], str]:
    """Judge pane A against pane B (a named comparison). Returns (state, message to show).

    Refuses, whatever the request says, a pane that is hidden, answered an earlier question, is
    still running, was stopped or failed, a pair of answers that was judged already, and a
    decisive verdict on two identical answers (also refused by `recording.save_vote`). Other
    panes of the round may still be running: their answers are not part of this pair.
    """
    a, b = int(pane_a), int(pane_b)
    if a == b:
        return state, "⚠️ Pick two different panes."
    if winner not in WINNER_LABELS:
        return state, f"⚠️ Unknown verdict '{winner}'."
    if any(state["busy"][p - 1] for p in (a, b) if 1 <= p <= MAX_PANES):
        return state, "⚠️ Wait until both answers are complete before voting."
    if not state.get("round"):
        return state, "⚠️ Both panes need a finished answer (ask a question first)."
    for p in (a, b):
        refusal = pane_refusal(state, p, int(visible))
        if refusal:
            return state, f"⚠️ Not saved: {refusal}."
    same = same_answer_refusal(winner, pane_answer(state, a), pane_answer(state, b))
    if same:
        return state, f"⚠️ Not saved: {same}"
    left, right = state["generations"][a - 1], state["generations"][b - 1]
    key = pair_key(left, right)
    if key in state["judged"]:
        return state, f"This pair was already judged ({state['judged'][key]}): not counted twice."
    try:
        vote = save_vote(ctx.settings.db_path, left_generation_id=left, right_generation_id=right, winner=winner,
                         session_id=session_of(state), anonymous=False, source="playground", note=note)
    except PlaygroundError as exc:
        return state, f"❌ Vote not saved: {exc}"
    state = {**state, "judged": {**state["judged"], key: f"{WINNER_LABELS[vote.winner]}, vote #{vote.vote_id}"}}
    if vote.duplicate:
        return state, (f"This pair was already judged ({WINNER_LABELS[vote.winner]}, vote #{vote.vote_id}): "
                       "not counted twice.")
    return state, f"✅ Saved: pane {a} vs pane {b} — {WINNER_LABELS[winner]} (vote #{vote.vote_id})."


def session_of(state: dict[str, Any]) -> str:
    """The id on stored rows: the session's uuid, with the login name under --auth."""
    return session_id_for(state["session_id"], state.get("user"))
