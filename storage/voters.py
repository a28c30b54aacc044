"""Whose vote is whose: reading one voter's votes back (the "My votes" tab, own downloads).

A voter is the `votes.voter` column (migration m020): the login name under `--auth`, `local`
otherwise. `record_vote` fills it from the session id by `voter_of_session` (`user:NAME/...` ->
NAME, as `playground.recording.session_id_for` writes it); m020 filled old rows by the same rule.
In queries, None means every vote (single-user mode); `voter_sql` is the one place that filters.

People and judges: a judge model's votes have voter `judge:<model>@<prompt>`
(`JUDGE_PREFIX`). The `counted_votes` view holds people's votes only; `counted_votes_all` holds
both, and `voter_group_sql` is the one place that picks people, judges or both from it.
"""
from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from storage.db import StorageError
from playground.verdicts import WINNERS
from storage.migrations import JUDGE_VOTER_GLOB


LOCAL_VOTER = "local"
_PREFIX = "user:"
JUDGE_PREFIX = "judge:"
VOTER_GROUPS = ("people", "judges", "both")
_GROUP_TEXT = {"people": "people's votes only", "judges": "judge models' votes only",
               "both": "people's and judge models' votes"}


def is_judge(voter: str | None) -> bool:
    """Whether a voter name is a judge model's (`judge:<model>@<prompt>`)."""
    return (voter or "").startswith(JUDGE_PREFIX)


def check_voter_group(voters: str) -> str:
    if voters not in VOTER_GROUPS:
        raise StorageError(f"voters {voters!r}: choose people, judges or both (whose votes to count)")
    return voters


def voter_group_sql(voters: str = "people", alias: str = "v") -> str:
    """A SQL condition over `counted_votes_all <alias>` keeping people's, judges' or both's votes ('' for both)."""
    check_voter_group(voters)
    if voters == "both":
        return ""
    return f"{alias}.voter {'NOT ' if voters == 'people' else ''}GLOB '{JUDGE_VOTER_GLOB}'"


def voter_group_text(voters: str) -> str:
    """Whose votes a table or file shows, in words."""
    return _GROUP_TEXT[check_voter_group(voters)]


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
    rows = [dict(zip(VOTE_COLUMNS, row, strict=True)) for row in db.execute(sql, [*params, int(limit)])]
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
