"""Whose vote is whose: reading one voter's votes back (the "My votes" tab, own downloads).

Until votes get a voter column, a voter is the prefix their votes' `session_id` starts with
(`user:NAME/`, see `playground.recording.session_id_for`); None means every vote (single-user
mode). `voter_sql` is the one place that knows this, so a later voter column changes only it.
"""
from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from storage.migrations import WINNERS


def voter_sql(voter: str | None, alias: str = "v") -> tuple[str, list[Any]]:
    """A SQL condition on `votes <alias>` keeping one voter's votes ('' when voter is None).

    substr() rather than LIKE: '_' in a user name would be a LIKE wildcard.
    """
    if voter is None:
        return "", []
    return f"substr({alias}.session_id, 1, ?) = ?", [len(voter), voter]


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
