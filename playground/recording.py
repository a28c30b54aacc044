"""Writing what users saw and judged: one generation row per finished answer, votes on pairs.

Each call opens its own connection (a sqlite-utils Database must not cross threads; WAL makes
opening cheap) and closes it, so handlers running on Gradio's worker threads stay independent.
A write waits for another process's write (an import's final copy) and, if that lasts past
`storage.db.WRITE_WAIT_S`, fails with a StorageError the user can read, never a raw sqlite3 error.
"""
from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Sequence

from storage import (GenerationRecord, VoteRefused, VoteResult, create_battle, insert_generation, open_database,
                     record_vote, upsert_model, write_transaction)
from storage.db import storage_errors
from storage.pairs import same_answer_refusal

from playground.engine import PaneResult
from playground.models.identity import model_identity
from playground.models.spec import ModelSpec
from playground.prompting.plan import Message
from playground.sampling import SamplingParams


def save_generation(db_path: Path, *, session_id: str, spec: ModelSpec, backend: str, device: str,
                    mode: str, preset: str | None, conversation: Sequence[Message], result: PaneResult,
                    sampling: SamplingParams) -> int:
    """Store one answer with what really ran: the exact prompts of every step, the sampling after
    every override (`sampling`; the pane's request in `sampling_requested`), the model's identity.

    `conversation` is what the user saw and typed (the input compared by storage/pairs.py); the
    contestant's own system prompt, exemplars and triggers are in `system_prompt` and `calls`.
    """
    identity = model_identity(spec)
    sha = identity.get("sha256") or ""
    rec = GenerationRecord(
        model_id=spec.id, model_sha256=sha, conversation=list(conversation), output=result.answer_text,
        session_id=session_id, backend=backend, device=result.device or device, mode=mode, preset=preset,
        rendered_prompt=result.exact_prompt, extracted_answer=result.extracted.value if result.extracted else None,
        samples=result.samples_json(), sampling=result.sampling_used or sampling.to_dict(),
        sampling_requested=sampling.to_dict(), calls=result.calls or None, system_prompt=result.system_prompt,
        model_identity=identity, n_prompt_tokens=result.n_prompt_tokens,
        n_output_tokens=result.n_output_tokens, ttft_s=result.ttft_s, total_s=result.total_s,
        finish_reason=result.finish_reason, error=result.error)
    with closing(open_database(db_path)) as db:
        upsert_model(db, model_id=spec.id, display_name=spec.display_name, backend=backend,
                     path=str(spec.path or spec.hub_ref or spec.base_url or ""), sha256=sha, n_params=spec.n_params,
                     quantization=spec.quantization, context_length=spec.context_length,
                     is_chat=bool(spec.is_chat))
        return insert_generation(db, rec)


MAX_NOTE = 2000    # characters: a few paragraphs of reasons; a vote note is not a document store


def clean_note(note: str | None) -> str | None:
    """A vote note as stored: trimmed, None when empty; refused past MAX_NOTE characters."""
    text = (note or "").strip()
    if len(text) > MAX_NOTE:
        raise VoteRefused(f"the note is {len(text):,} characters long; keep it to {MAX_NOTE:,} "
                          "(shorten it and vote again: nothing was saved)")
    return text or None


def save_vote(db_path: Path, *, left_generation_id: int, right_generation_id: int, winner: str,
              session_id: str, anonymous: bool, source: str, note: str | None = None,
              tag: str | None = None) -> VoteResult:
    """One battle (created once per unordered pair) and its vote, in one transaction; a repeated
    click, or the same two answers in the other order, returns the first vote. Answers to
    different inputs, cut by Stop or failed are refused (`VoteRefused`), and so is a decisive
    verdict on two identical answers (`storage.pairs.same_answer_refusal`). `tag` (optional) is the
    battle's leaderboard category, stored with the battle when it is created. A note longer than
    MAX_NOTE is refused (`VoteRefused`) before anything is written."""
    note = clean_note(note)
    with (closing(open_database(db_path)) as db, storage_errors(db, "save your vote"),
          write_transaction(db, "save your vote")):
        outputs = dict(db.execute("SELECT id, output FROM generations WHERE id IN (?, ?)",
                                  [left_generation_id, right_generation_id]).fetchall())
        refusal = same_answer_refusal(winner, outputs.get(left_generation_id), outputs.get(right_generation_id))
        if refusal and len(outputs) == 2:
            raise VoteRefused(refusal)
        battle_id = create_battle(db, left_generation_id=left_generation_id,
                                  right_generation_id=right_generation_id, anonymous=anonymous,
                                  session_id=session_id, source=source, tag=tag)
        return record_vote(db, battle_id=battle_id, winner=winner, session_id=session_id, note=note)


def session_id_for(session_uuid: str, username: str | None = None) -> str:
    """The id stored on every row: the browser session's uuid, prefixed by the login under --auth."""
    return f"user:{username}/{session_uuid}" if username else session_uuid
