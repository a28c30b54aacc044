"""Serving assigned battles in the Arena: a stored battle shown to another annotator to judge.

An assigned battle (storage/assignments.py) already has both answers, so its round starts
"answered": the two stored conversations are shown as Model A and Model B, and the usual Arena
vote (`arena.cast_vote` -> `recording.save_vote`) finds the same battle by its pair and stores
this annotator's vote on it. A follow-up question turns it into an ordinary round on new answers
(the assignment stays open). Nothing here knows about Gradio.
"""
from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

from storage import open_database
from storage.assignments import next_assignment
from storage.voters import LOCAL_VOTER

from playground.arena import Contestant, Round, SideState


def voter_for(username: str | None) -> str:
    """The `votes.voter` a request votes as (what `record_vote` derives from its session id)."""
    return username or LOCAL_VOTER


def assigned_round(db_path: str | Path, username: str | None) -> tuple[Round, int] | None:
    """The voter's next assigned battle as a ready-to-vote Round, with how many are open; or None."""
    with closing(open_database(db_path)) as db:
        task = next_assignment(db, voter_for(username))
        if task is None:
            return None
        battle = db.execute("SELECT left_generation_id, right_generation_id, left_model, left_mode, right_model, "
                            "right_mode FROM battles WHERE id = ?", [task["battle_id"]]).fetchone()
        sides = []
        for generation_id, model, mode in ((battle[0], battle[2], battle[3]), (battle[1], battle[4], battle[5])):
            conversation, output, prompt = db.execute(
                "SELECT conversation, output, rendered_prompt FROM generations WHERE id = ?", [generation_id]).fetchone()
            transcript = [*_messages(conversation), {"role": "assistant", "content": output or ""}]
            sides.append(SideState(Contestant(model, mode or None), history=transcript, transcript=list(transcript),
                                   prompts=[prompt] if prompt else [], generation_id=int(generation_id), done=True))
    return Round(left=sides[0], right=sides[1], status="answered", turns=1), task["open"]


def _messages(conversation: str | None) -> list[dict[str, str]]:
    try:
        value = json.loads(conversation or "[]")
    except ValueError:
        return []
    return [{"role": str(m.get("role")), "content": str(m.get("content", ""))} for m in value if isinstance(m, dict)]
