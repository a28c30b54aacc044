"""The four verdicts of a vote, declared once: the names stored in `votes.winner` and the words shown.

Their order is the ranking's integer codes (playground/ranking/battles.py: LEFT, RIGHT, TIE,
BOTH_BAD = 0..3) and what the votes table's CHECK trigger allows (storage/migrations.py, m001).
"""
from __future__ import annotations

WINNERS: tuple[str, ...] = ("left", "right", "tie", "both_bad")

WINNER_LABELS: dict[str, str] = {"left": "A is better", "right": "B is better", "tie": "Tie",
                                 "both_bad": "Both are bad"}
"""How the Arena and the Playground name each verdict on its button and in their messages."""
