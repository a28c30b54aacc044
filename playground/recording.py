"""Writing what users saw and judged: one generation row per finished answer, votes on pairs.

Each call opens its own connection (a sqlite-utils Database must not cross threads; WAL makes
opening cheap) and closes it, so handlers running on Gradio's worker threads stay independent.
"""
from __future__ import annotations

import hashlib
from contextlib import closing
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from storage import (GenerationRecord, VoteResult, create_battle, insert_generation, open_database,
                     record_vote, upsert_model, write_transaction)

from playground.engine import PaneResult
from playground.models.spec import ModelSpec
from playground.prompting.plan import Message
from playground.sampling import SamplingParams


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_signature(spec: ModelSpec) -> str:
    """sha256 of a GGUF file (cached per path, mtime and size); '' for folders and remote models."""
    if spec.path is None or not Path(spec.path).is_file():
        return ""
    st = Path(spec.path).stat()
    return _file_sha256(str(spec.path), st.st_mtime_ns, st.st_size)


def save_generation(db_path: Path, *, session_id: str, spec: ModelSpec, backend: str, device: str,
                    mode: str, preset: str | None, conversation: Sequence[Message], result: PaneResult,
                    sampling: SamplingParams) -> int:
    """Store one finished answer (with its exact prompt and figures); returns its id."""
    sha = model_signature(spec)
    rec = GenerationRecord(
        model_id=spec.id, model_sha256=sha, conversation=list(conversation), output=result.answer_text,
        session_id=session_id, backend=backend, device=device, mode=mode, preset=preset,
        rendered_prompt=result.exact_prompt, extracted_answer=result.extracted.value if result.extracted else None,
        samples=result.samples_json(), sampling=sampling.to_dict(), n_prompt_tokens=result.n_prompt_tokens,
        n_output_tokens=result.n_output_tokens, ttft_s=result.ttft_s, total_s=result.total_s,
        finish_reason=result.finish_reason, error=result.error)
    with closing(open_database(db_path)) as db:
        upsert_model(db, model_id=spec.id, display_name=spec.display_name, backend=backend,
                     path=str(spec.path or spec.hub_ref or spec.base_url or ""), sha256=sha, n_params=spec.n_params,
                     quantization=spec.quantization, context_length=spec.context_length,
                     is_chat=bool(spec.is_chat))
        return insert_generation(db, rec)


def save_vote(db_path: Path, *, left_generation_id: int, right_generation_id: int, winner: str,
              session_id: str, anonymous: bool, source: str, note: str | None = None,
              tag: str | None = None) -> VoteResult:
    """One battle (created once per pair) and its vote, in one transaction; a repeated click
    returns the first vote. `tag` (optional) is the battle's leaderboard category, set once."""
    with closing(open_database(db_path)) as db, write_transaction(db):
        battle_id = create_battle(db, left_generation_id=left_generation_id,
                                  right_generation_id=right_generation_id, anonymous=anonymous,
                                  session_id=session_id, source=source)
        if tag:
            db.execute("UPDATE battles SET tag = ? WHERE id = ? AND tag IS NULL", [tag, battle_id])
        return record_vote(db, battle_id=battle_id, winner=winner, session_id=session_id, note=note or None)


def session_id_for(session_uuid: str, username: str | None = None) -> str:
    """The id stored on every row: the browser session's uuid, prefixed by the login under --auth."""
    return f"user:{username}/{session_uuid}" if username else session_uuid
