"""The one reader of the dates that filter votes: the CLI's --since/--until and every date box in the UI.

So the same text means the same moment wherever it is typed: an ISO date ('2025-01-31'), an ISO
date-time ('2025-01-31T14:30', with a zone or without: naive means UTC), or epoch seconds.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from playground.errors import PlaygroundError


def parse_when(text: str | None, *, end_of_day: bool = False) -> float | None:
    """Text -> epoch seconds; None or blank means no limit.

    With `end_of_day` a bare date means the end of that day, so 'until 2025-01-31' includes the 31st.
    """
    text = (text or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PlaygroundError(f"cannot read {text!r} as a date: use an ISO date such as 2025-01-31 (optionally "
                              "with a time, 2025-01-31T14:30; UTC unless a zone is given) or epoch seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if end_of_day and len(text) == 10:
        moment += timedelta(days=1)
    return moment.timestamp()
