"""Load: 8 simulated users at once through the public API (gradio_client) against the real app.

Each user has its own Client, hence its own Gradio session: a 2-pane grid round, a vote, a DPO
export (the Leaderboard tab's DPO download when the app has one, else the CLI), then one CLI
export of everything. What must hold afterwards is bookkeeping, not speed: exactly the
acknowledged votes are stored (nothing lost, nothing doubled), each under its own session, and
every acknowledged decisive vote reaches the DPO export. The helpers here are shared with
test_fault_kill.py.
"""
from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.browser_support import REPO, AppProcess

pytestmark = pytest.mark.slow

N_USERS = 8
VOTE_RE = re.compile(r"Saved: pane \d+ vs pane \d+ .*\(vote #(\d+)\)")
GRID_STATUS_DONE = "All panes finished"
OUTPUTS_PER_PANE = 6          # chat, answer, metrics, notices, prompt, paths (see grid._flatten_views)
CONTROLS_PER_PANE = 8         # model, backend, device, mode, preset, shots, samples, sampling
REQUEST_TIMEOUT_S = 600       # the machine is shared and slow: generous, never asserted on


# ----------------------------------------------------------------------------- shared helpers


def tiny_presets(dest: Path, max_new_tokens: int = 6) -> Path:
    """A copy of presets/ whose deterministic sampling stops after a few tokens: fast rounds."""
    folder = dest / "presets"
    shutil.copytree(REPO / "presets", folder)
    preset = folder / "sampling" / "deterministic.yaml"
    text, n = re.subn(r"max_new_tokens:\s*\d+", f"max_new_tokens: {max_new_tokens}", preset.read_text())
    assert n == 1, "presets/sampling/deterministic.yaml has no max_new_tokens line to shrink"
    preset.write_text(text)
    return folder


def start_app(db: Path, presets: Path, extra: list[str] | None = None) -> AppProcess:
    return AppProcess(db, extra=["--presets-dir", str(presets), *(extra or [])])


def new_client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def endpoint_params(client, api_name: str) -> list[dict[str, Any]]:
    api = client.view_api(return_format="dict", print_info=False)
    return api["named_endpoints"][api_name]["parameters"]


def grid_args(params: list[dict[str, Any]], question: str, n_panes: int, modes: list[str],
              model: str | None = None) -> list[Any]:
    """grid_send's inputs: question, pane count, family, then 8 controls for each of the 6 panes,
    then the follow-up switch (left at its default: off, each round starts afresh).

    Starts from the defaults the API reports (the UI's defaults), so only what the test means
    to change is changed: the question, the pane count, each pane's mode and maybe the model.
    """
    values = [p.get("parameter_default") for p in params]
    n_controls = len(values) - 4
    assert n_controls % CONTROLS_PER_PANE == 0, [p["parameter_name"] for p in params]
    values[0], values[1] = question, str(n_panes)
    for i, mode in enumerate(modes):
        base = 3 + i * CONTROLS_PER_PANE
        values[base + 3] = mode
        values[base + 4] = "(mode default)"
        values[base + 7] = "deterministic"
        if model is not None:
            values[base] = model
    return values


def grid_round(client, params, question: str, n_panes: int, modes: list[str]) -> tuple:
    """One grid_send, checked: every pane finished with an answer and no error."""
    job = client.submit(*grid_args(params, question, n_panes, modes), api_name="/grid_send")
    out = job.result(timeout=REQUEST_TIMEOUT_S)
    assert GRID_STATUS_DONE in out[0], out[0]
    for i in range(n_panes):
        chat, notices = out[2 + i * OUTPUTS_PER_PANE], out[2 + i * OUTPUTS_PER_PANE + 3]
        assert "Error" not in (notices or ""), f"pane {i + 1}: {notices}"
        assert [m["role"] for m in chat][-1] == "assistant", f"pane {i + 1} has no answer: {chat}"
    return out


def vote(client, winner: str, a: int = 1, b: int = 2, visible: int | None = None) -> tuple[int | None, str]:
    """(vote id if the app acknowledged a new vote, the status text). `visible`: the pane count the
    page shows (the server refuses a hidden pane); by default just enough to show both panes."""
    shown = max(a, b, 2) if visible is None else visible
    job = client.submit(str(a), str(b), "", str(shown), api_name=f"/grid_vote_{winner}")
    status = job.result(timeout=REQUEST_TIMEOUT_S)
    match = VOTE_RE.search(status or "")
    return (int(match.group(1)) if match else None), status


def db_rows(db: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(sql, params).fetchall()


def integrity(db: Path) -> str:
    return db_rows(db, "PRAGMA integrity_check")[0][0]


def export_dpo_cli(db: Path, out: Path) -> list[dict[str, Any]]:
    """`python app.py export dpo`; returns the sidecar metadata rows (one per pair, same order)."""
    done = subprocess.run([sys.executable, "app.py", "export", "dpo", "--db", str(db), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=REQUEST_TIMEOUT_S)
    if done.returncode == 1 and "nothing matched" in done.stderr:   # no decisive vote yet: empty files
        return []
    assert done.returncode == 0, done.stderr + done.stdout
    pairs = out.read_text(encoding="utf-8").splitlines()
    meta = [json.loads(line) for line in Path(f"{out}.meta.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(pairs) == len(meta)
    return meta


def ui_dpo_export(client, url: str, params: list[dict[str, Any]]) -> set[int]:
    """Vote ids in the DPO sidecar the Leaderboard tab offers for download (what a person clicks):
    'Prepare training data files' at the tab's defaults, then fetch the file over HTTP like the browser does."""
    out = client.submit(*[p.get("parameter_default") for p in params], api_name="/leaderboard_prepare_data") \
        .result(timeout=REQUEST_TIMEOUT_S)
    sidecars = [path for path in map(_file_path, out) if path and path.endswith(".meta.jsonl")]
    if not sidecars:            # no decisive vote yet: the download buttons are disabled
        return set()
    with urllib.request.urlopen(f"{url}/gradio_api/file={urllib.parse.quote(sidecars[0])}", timeout=60) as r:
        lines = r.read().decode("utf-8").splitlines()
    return {json.loads(line)["vote_id"] for line in lines if line.strip()}


def _file_path(value: Any) -> str | None:
    """A file output as gradio_client returns it: a path, FileData, or an update holding either."""
    if isinstance(value, dict):
        value = value.get("value", value.get("path"))
        if isinstance(value, dict):
            value = value.get("path")
    return value if isinstance(value, str) else None


def run_threads(target, n: int) -> list[Any]:
    """Run target(i) for i in range(n) at once; re-raise the first failure with its user index."""
    results: list[Any] = [None] * n
    errors: list[tuple[int, BaseException]] = []

    def wrap(i: int) -> None:
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below, with the user
            errors.append((i, exc))

    threads = [threading.Thread(target=wrap, args=(i,), name=f"user-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(REQUEST_TIMEOUT_S * 2)
    assert not any(t.is_alive() for t in threads), "a simulated user never finished"
    if errors:
        i, exc = errors[0]
        raise AssertionError(f"user {i} failed: {type(exc).__name__}: {exc}") from exc
    return results


# ----------------------------------------------------------------------------- the test

WINNERS = ("left", "right", "left", "right", "tie", "both_bad", "left", "right")


def test_eight_users_at_once_votes_and_exports_are_exact(tmp_path):
    """Concurrent sessions must not lose, double or mix up votes, and exports must see them."""
    presets = tiny_presets(tmp_path)
    db = tmp_path / "load.db"
    app = start_app(db, presets)
    try:
        endpoints = new_client(app.url).view_api(return_format="dict", print_info=False)["named_endpoints"]
        params = endpoints["/grid_send"]["parameters"]
        board = endpoints.get("/leaderboard_prepare_data", {}).get("parameters")   # None: no such tab (yet)
        start = threading.Barrier(N_USERS, timeout=REQUEST_TIMEOUT_S)

        def user(i: int) -> dict[str, Any]:
            try:
                client = new_client(app.url)    # its own session (gr.State)
            except BaseException:
                start.abort()                    # do not leave the others waiting at the barrier
                raise
            start.wait()                         # all 8 send at the same moment
            # a distinct question per user: identical DPO lines would be deduplicated by design
            grid_round(client, params, f"User {i}: what is {i} + {i + 2}?", 2, ["zero_shot", "instruction"])
            winner = WINNERS[i]
            vote_id, status = vote(client, winner)
            if vote_id is None and "identical" in status:   # the two modes gave one text: a tie only
                winner = "tie"
                vote_id, status = vote(client, winner)
            assert vote_id is not None, f"vote not acknowledged: {status!r}"
            if board is not None:
                exported = ui_dpo_export(client, app.url, board)
            else:
                exported = {m["vote_id"] for m in export_dpo_cli(db, tmp_path / f"user{i}.jsonl")}
            return {"vote_id": vote_id, "winner": winner, "export_ids": exported}

        users = run_threads(user, N_USERS)
    finally:
        app.close()

    acked = {u["vote_id"]: u["winner"] for u in users}
    assert len(acked) == N_USERS, f"two users were acknowledged the same vote id: {users}"
    stored = dict(db_rows(db, "SELECT id, winner FROM votes"))
    assert stored == acked                                     # exactly the acknowledged votes
    sessions = db_rows(db, "SELECT v.session_id, b.session_id, gl.session_id, gr.session_id FROM votes v "
                           "JOIN battles b ON b.id = v.battle_id "
                           "JOIN generations gl ON gl.id = b.left_generation_id "
                           "JOIN generations gr ON gr.id = b.right_generation_id")
    assert all(len(set(row)) == 1 for row in sessions), "a vote, its battle and answers span sessions"
    assert len({row[0] for row in sessions}) == N_USERS        # one session per user
    assert db_rows(db, "SELECT count(*) FROM generations")[0][0] == 2 * N_USERS
    assert integrity(db) == "ok"

    decisive = {vid for vid, w in acked.items() if w in ("left", "right")}
    for u in users:   # an export started after the acknowledgement must already hold that vote
        if u["winner"] in ("left", "right"):
            assert u["vote_id"] in u["export_ids"]
    final = export_dpo_cli(db, tmp_path / "all.jsonl")
    assert {m["vote_id"] for m in final} == decisive
    assert {m["winner"] for m in final} <= {"left", "right"}
