"""Whose vote is whose: reading one voter's votes back (the "My votes" tab, own downloads).

A voter is the `votes.voter` column (migration m020): the login name under `--auth`, `local`
otherwise. `record_vote` fills it from the session id by `voter_of_session` (`user:NAME/...` ->
NAME, as `playground.recording.session_id_for` writes it); m020 filled old rows by the same rule.
In queries, None means every vote (single-user mode); `voter_sql` is the one place that filters.
"""
from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from storage.migrations import WINNERS


LOCAL_VOTER = "local"
_PREFIX = "user:"


def voter_of_session(session_id: str | None) -> str:
    """The voter a session id names: NAME for `user:NAME/...`, else `local` (same rule as m020's SQL)."""
    text = session_id or ""
    if text.startswith(_PREFIX):
        name, slash, _ = text[len(_PREFIX):].partition("/")
        if slash and name:
            return name
    return LOCAL_VOTER


def voter_sql(voter: str | None, alias: str = "v") -> tuple[str, list[Any]]:
    """A SQL condition on `votes <alias>` keeping one voter's votes ('' when voter is None)."""
    if voter is None:
        return "", []
    return f"{alias}.voter = ?", [voter]


def vote_counts(db: Database, voter: str | None) -> dict[str, int]:
    """Votes per verdict (every verdict present, 0 when none) plus 'total'."""
    where, params = voter_sql(voter)
    sql = f"SELECT winner, count(*) FROM counted_votes v {'WHERE ' + where if where else ''} GROUP BY winner"
    counts = dict.fromkeys(WINNERS, 0)
    counts.update({winner: n for winner, n in db.execute(sql, params)})
    counts["total"] = sum(counts[w] for w in WINNERS)
    return counts


VOTE_COLUMNS = ("vote_id", "time", "source", "left_model", "left_mode", "right_model", "right_mode", "winner",
                "question")


def recent_votes(db: Database, voter: str | None, limit: int = 200) -> list[dict[str, Any]]:
    """A voter's latest counted votes (forgotten ones left out), newest first, with the battle's contestants and the question asked."""
    where, params = voter_sql(voter)
    sql = ("SELECT v.id, v.created_at, b.source, b.left_model, b.left_mode, b.right_model, b.right_mode, "
           "v.winner, g.conversation "
           "FROM counted_votes v JOIN battles b ON b.id = v.battle_id JOIN generations g ON g.id = b.left_generation_id "
           f"{'WHERE ' + where if where else ''} ORDER BY v.tstamp DESC, v.id DESC LIMIT ?")
    rows = [dict(zip(VOTE_COLUMNS, row)) for row in db.execute(sql, [*params, int(limit)])]
    for row in rows:
        row["question"] = _last_user_turn(row["question"])
    return rows


def _last_user_turn(conversation: str | None) -> str:
    try:
        turns = json.loads(conversation or "[]")
    except ValueError:
        return ""
    users = [t.get("content", "") for t in turns if isinstance(t, dict) and t.get("role") == "user"]
    return str(users[-1]) if users else ""
