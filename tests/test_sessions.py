"""Several sessions at once against the real app process: separate histories, separate votes.

Each `gradio_client.Client` is its own browser session (its own gr.State). The app runs with
--auth and two users, so the stored session ids also carry the login name. It gets its own
database: other tests count every vote in the shared `live_app`.
"""
from __future__ import annotations

import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import pytest

from playground.auth.users import write_user
from tests.browser_support import AppProcess

USERS = {"alice": "pw-alice-1", "bob": "pw-bob-22"}
POOL = (["smollm2-135m-instruct"], ["zero_shot", "instruction"], "general", 8, "deterministic")
QUESTIONS = {"alice": ("Alice asks: what colour is grass?", "Alice again: and snow?"),
             "bob": ("Bob asks: how many legs has a cat?", "Bob again: and a bird?")}
VERDICT = {"alice": "left", "bob": "tie"}


@pytest.fixture(scope="module")
def auth_app(tmp_path_factory, bundled_gguf):
    folder = tmp_path_factory.mktemp("sessions")
    users = folder / "users.txt"
    for user, password in USERS.items():
        write_user(users, user, "annotator", password)
    app = AppProcess(folder / "playground.db", extra=["--auth", str(users)])
    yield app
    app.close()


def texts(chat: list[dict[str, Any]], role: str) -> list[str]:
    """Message texts of one role from a Chatbot value as the client returns it."""
    out = []
    for message in chat:
        if message["role"] == role:
            content = message["content"]
            out.append(content if isinstance(content, str) else " ".join(c.get("text", "") for c in content))
    return out


def arena_session(url: str, user: str) -> dict[str, Any]:
    """One session: two turns with the same hidden pair, then a vote. Returns what it saw."""
    from gradio_client import Client

    client = Client(url, auth=(user, USERS[user]), verbose=False)
    try:
        seen = []
        for question in QUESTIONS[user]:
            left, right, *_, status, _reveal, _judge, _box = client.predict(question, *POOL, api_name="/arena_send")
            seen.append({"left": texts(left, "user"), "right": texts(right, "user"), "status": status})
        vote_status, reveal, *figures = client.predict("", "", api_name=f"/arena_vote_{VERDICT[user]}")
        assert len(figures) == 4 and all("tok" in f for f in figures[:2])   # the figures arrive with the reveal
        return {"turns": seen, "vote": vote_status, "reveal": reveal}
    finally:
        client.close()


def test_two_sessions_at_once_keep_histories_and_votes_apart(auth_app):
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = dict(zip(USERS, pool.map(lambda u: arena_session(auth_app.url, u), USERS), strict=True))

    for user, run in runs.items():
        own = list(QUESTIONS[user])
        assert "Both answers are complete" in run["turns"][-1]["status"], run
        assert run["turns"][0]["left"] == own[:1] and run["turns"][1]["left"] == own     # no leak in the UI
        assert run["turns"][1]["right"] == own
        assert "Vote saved" in run["vote"] and "Who was who" in run["reveal"]

    with closing(sqlite3.connect(auth_app.db)) as db:
        votes = db.execute("SELECT v.winner, v.session_id, b.session_id, b.anonymous, b.source "
                           "FROM votes v JOIN battles b ON b.id = v.battle_id ORDER BY v.winner").fetchall()
        generations = db.execute("SELECT session_id, conversation FROM generations").fetchall()
    assert len(votes) == 2
    sessions = {}
    for winner, vote_session, battle_session, anonymous, source in votes:
        user = vote_session.split("/")[0].removeprefix("user:")
        assert (winner, battle_session, anonymous, source) == (VERDICT[user], vote_session, 1, "arena")
        sessions[user] = vote_session
    assert set(sessions) == set(USERS) and len(set(sessions.values())) == 2
    assert len(generations) == 8
    for session_id, conversation in generations:
        user = next(u for u, s in sessions.items() if s == session_id)
        asked = {m["content"] for m in json.loads(conversation) if m["role"] == "user"}
        assert asked <= set(QUESTIONS[user]), (user, asked)                                # no leak in the DB
