"""Chatbot Arena's battle format, declared once: storage/importer.py reads it, playground/export.py writes it.

A battle is a JSON object with the keys in `ARENA_FIELDS` (the published dumps' names; the
clean_battle dumps carry no conversations); `winner` is spelled the Arena's way, and
`ARENA_WINNERS` / `OUR_WINNERS` translate it to and from the verdicts stored in `votes.winner`.
"""
from __future__ import annotations

from playground.verdicts import WINNERS

ARENA_FIELDS: tuple[str, ...] = ("question_id", "model_a", "model_b", "winner", "judge", "conversation_a",
                                 "conversation_b", "turn", "anony", "tstamp")

ARENA_WINNERS: dict[str, str] = dict(zip(WINNERS, ("model_a", "model_b", "tie", "tie (bothbad)"), strict=True))
"""Our verdict -> the Arena's winner."""

OUR_WINNERS: dict[str, str] = {arena: ours for ours, arena in ARENA_WINNERS.items()}
"""The Arena's winner -> our verdict."""
