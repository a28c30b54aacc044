"""Roles and users, without a server: the users file and its command, the access modes, the policy
table against the real built UI, the handler guard, the URL and download bounds, error ids.

The same promises are checked through the real app process in tests/test_team_security.py.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import storage
from playground.auth import Access, AccessDenied, UserTable, read_users, write_user
from playground.auth.policy import ADMIN_ELEMENTS, ADMIN_ONLY_NOTES, REDACTED_OUTPUTS, guarded
from playground.auth.users import UsersFileError, check_password, hash_password
from playground.errors import PlaygroundError
from tests.browser_support import REPO


def test_hash_is_salted_scrypt_and_checks() -> None:
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("scrypt$16384$8$1$") and first != second          # a fresh salt each time
    assert check_password("correct horse", first) and check_password("correct horse", second)
    assert not check_password("correct horsE", first)
    assert not check_password("x", "scrypt$bad") and not check_password("x", "plain")


def test_users_file_written_private_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "data" / "users.txt"
    assert write_user(path, "ada", "admin", "ada-password")
    assert write_user(path, "ann_1", "annotator", "ann-password")
    assert not write_user(path, "ann_1", "admin", "new-password")       # replaced, not duplicated
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "ada-password" not in text and "new-password" not in text
    users = read_users(path)
    assert {u.name: u.role for u in users.values()} == {"ada": "admin", "ann_1": "admin"}
    table = UserTable.load(path)
    assert table.verify("ann_1", "new-password") and not table.verify("ann_1", "ann-password")
    assert not table.verify("nobody", "ada-password") and not table.verify("", "")
    assert table.role("ada") == "admin" and table.role("nobody") is None


@pytest.mark.parametrize("name,role,password,problem", [
    ("bad name", "admin", "long-enough", "not allowed"), ("ok", "root", "long-enough", "not known"),
    ("ok", "annotator", "short", "too short"), ("../x", "admin", "long-enough", "not allowed")])
def test_bad_users_are_refused(tmp_path: Path, name: str, role: str, password: str, problem: str) -> None:
    with pytest.raises(PlaygroundError, match=problem):
        write_user(tmp_path / "u.txt", name, role, password)


def test_old_plain_password_lines_are_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("# old style\nalice:s3cret\n")
    with pytest.raises(UsersFileError, match=r"users.txt:2: .*python app.py users add"):
        read_users(path)
    with pytest.raises(UsersFileError, match="does not exist"):
        read_users(tmp_path / "missing.txt")


def app_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, input=stdin)


def test_users_add_command_reads_the_password_from_env_never_argv(tmp_path: Path) -> None:
    path = tmp_path / "users.txt"
    done = app_cli("users", "add", "ada", "--role", "admin", "--file", str(path),
                   env={"PLAYGROUND_PASSWORD": "from-the-env-1"})
    assert done.returncode == 0, done.stderr
    assert UserTable.load(path).verify("ada", "from-the-env-1")
    listed = app_cli("users", "list", "--file", str(path))
    assert listed.stdout.split() == ["ada", "admin"] and "scrypt" not in listed.stdout
    # without a terminal and without the env var there is no password to read: refused, file unchanged
    env = {k: v for k, v in os.environ.items() if k != "PLAYGROUND_PASSWORD"}
    done = subprocess.run([sys.executable, "app.py", "users", "add", "bob", "--role", "annotator", "--file",
                           str(path)], cwd=REPO, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert done.returncode != 0 and "PLAYGROUND_PASSWORD" in done.stderr
    assert list(read_users(path)) == ["ada"]
    bad = app_cli("users", "add", "carl", "--role", "owner", "--file", str(path), env={"PLAYGROUND_PASSWORD": "x" * 9})
    assert bad.returncode != 0 and "annotator" in bad.stderr


def test_access_modes(tmp_path: Path) -> None:
    assert Access().user(None).is_admin and Access().user(None).voter is None     # local: the one user, an admin
    assert Access("open").user(SimpleNamespace(username=None)).is_admin
    path = tmp_path / "users.txt"
    write_user(path, "ada", "admin", "ada-password")
    write_user(path, "ann", "annotator", "ann-password")
    team = Access("team", UserTable.load(path))
    ann = team.user(SimpleNamespace(username="ann"))
    assert not ann.is_admin and ann.voter == "ann"
    assert team.user(SimpleNamespace(username="ada")).is_admin
    assert not team.user(SimpleNamespace(username="ghost")).is_admin      # unknown: least rights
    with pytest.raises(AccessDenied, match="only an admin can run the lab: you are signed in as ann"):
        ann.require_admin("run the lab")
    with pytest.raises(ValueError):
        Access("team")


def test_policy_names_only_controls_that_exist(app_ctx) -> None:
    """Renaming a control must not silently drop its protection: every listed id is in the real app."""
    from playground.ui.app import build_ui

    demo = build_ui(app_ctx)
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    assert set(ADMIN_ELEMENTS) <= ids, set(ADMIN_ELEMENTS) - ids
    assert REDACTED_OUTPUTS <= ids, REDACTED_OUTPUTS - ids
    assert ADMIN_ONLY_NOTES <= ids, ADMIN_ONLY_NOTES - ids
    guarded_fns = [f for f in demo.fns.values() if f.fn is not None and getattr(f.fn, "__wrapped__", None)]
    assert guarded_fns and all(getattr(f.fn, "_errors_hidden", False) for f in demo.fns.values() if f.fn)


def test_guard_keeps_generators_progress_and_refuses_annotators(tmp_path: Path) -> None:
    import inspect

    import gradio as gr

    path = tmp_path / "users.txt"
    write_user(path, "ada", "admin", "ada-password")
    write_user(path, "ann", "annotator", "ann-password")
    team = Access("team", UserTable.load(path))

    def stream(text: str, progress: gr.Progress = gr.Progress()):
        yield text, "file-a"
        yield text + "!", "file-b"

    wrapped = guarded(stream, team, refuse=None, redact=[1], n_outputs=2)
    assert inspect.isgeneratorfunction(wrapped)
    params = list(inspect.signature(wrapped).parameters.values())
    assert params[0].annotation is gr.Request and isinstance(params[2].default, gr.Progress)
    ada, ann = SimpleNamespace(username="ada"), SimpleNamespace(username="ann")
    assert list(wrapped(ada, "hi")) == [("hi", "file-a"), ("hi!", "file-b")]
    redacted = list(wrapped(ann, "hi"))
    assert [r[0] for r in redacted] == ["hi", "hi!"] and all(r[1]["value"] is None for r in redacted)
    refused = guarded(lambda x: x, team, refuse="run the lab", redact=[], n_outputs=1)
    assert refused(ada, 3) == 3
    with pytest.raises(gr.Error, match="only an admin can run the lab"):
        refused(ann, 3)


@pytest.mark.parametrize("url,problem", [
    ("http://169.254.169.254/latest/meta-data", "link-local"), ("http://[fe80::1]:80/v1", "link-local"),
    ("http://0.0.0.0:8000/v1", "link-local"), ("http://224.0.0.1/v1", "link-local"),
    ("file:///etc/passwd", "not a server URL"), ("gopher://127.0.0.1/", "not a server URL"),
    ("http://user:pw@127.0.0.1:8000/v1", "API key box"), ("http://no-such-host.invalid/v1", "cannot resolve")])
def test_server_urls_from_the_browser_are_checked(url: str, problem: str) -> None:
    from playground.models.remote import check_server_url

    with pytest.raises(PlaygroundError, match=problem):
        check_server_url(url)


def test_loopback_and_private_servers_stay_allowed() -> None:
    from playground.models.remote import check_server_url

    for url in ("http://127.0.0.1:8000/v1", "http://localhost:8080", "http://10.0.0.5:8000/v1", "https://[::1]:1/v1"):
        assert check_server_url(url) == url


def test_download_bounds() -> None:
    from playground.models.hub import check_download_size, parse_hub_ref

    ref = parse_hub_ref("hf:owner/repo/model.gguf")
    check_download_size(ref, size=2 * 10**9, max_bytes=5 * 10**9, free=10 * 10**9)
    with pytest.raises(PlaygroundError, match="more than this server downloads"):
        check_download_size(ref, size=6 * 10**9, max_bytes=5 * 10**9, free=100 * 10**9)
    with pytest.raises(PlaygroundError, match="free"):
        check_download_size(ref, size=2 * 10**9, max_bytes=5 * 10**9, free=2 * 10**9)


def test_team_server_never_downloads_on_first_use(app_ctx) -> None:
    """On a team server a Hub model is fetched only by an admin's Download button (explicit)."""
    from dataclasses import replace

    from playground.context import AppContext
    from playground.models.spec import ModelSpec

    ctx = AppContext(settings=replace(app_ctx.settings, allow_hub_download=False), catalog=app_ctx.catalog,
                     cache=app_ctx.cache, presets=app_ctx.presets, sampling_presets=app_ctx.sampling_presets,
                     preset_errors=[])
    spec = ModelSpec(id="hf:owner/repo/x.gguf", display_name="x", source="hub", backends=("llama_cpp",),
                     path=None, format="gguf", hub_ref="hf:owner/repo/x.gguf")
    with pytest.raises(PlaygroundError, match="an admin can download it in the Models tab"):
        ctx.ensure_local(spec)


def test_own_votes_filter_by_voter(tmp_path: Path) -> None:
    """ann's votes are not annx's or ann_2's (the voter column is compared whole, no LIKE)."""
    from storage.voters import recent_votes, vote_counts

    db = storage.open_database(tmp_path / "p.db")
    for who, winner in (("ann", "left"), ("ann", "tie"), ("annx", "right"), ("ann_2", "left"), ("ada", "both_bad")):
        conv = [{"role": "user", "content": f"{who} asks"}]
        ids = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=conv, output=f"{m}!"))
               for m in ("a", "b")]
        battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=True,
                                       session_id=f"user:{who}/s1")
        storage.record_vote(db, battle_id=battle, winner=winner, session_id=f"user:{who}/s1")
    assert vote_counts(db, "ann") == {"left": 1, "right": 0, "tie": 1, "both_bad": 0, "total": 2}
    assert vote_counts(db, None)["total"] == 5
    assert {r["question"] for r in recent_votes(db, "ann")} == {"ann asks"}
    db.close()


def test_internal_errors_reach_the_browser_as_an_id_only(caplog) -> None:
    import gradio as gr

    from playground.ui.shown_errors import hide_internal_errors

    def broken(x: str) -> str:
        raise RuntimeError("secret internal detail /etc/shadow")

    def user_facing(x: str) -> str:
        raise PlaygroundError("the model file is gone: refresh the model list")

    with pytest.raises(gr.Error) as shown:
        hide_internal_errors(broken)("hi")
    assert "secret" not in str(shown.value) and "error id" in str(shown.value)
    error_id = str(shown.value).split("error id ")[1].split(")")[0]
    assert any(error_id in r.getMessage() and r.exc_info for r in caplog.records)     # the traceback, in the log
    with pytest.raises(gr.Error, match="the model file is gone.*error id"):
        hide_internal_errors(user_facing)("hi")


def test_download_asks_the_size_first_and_refuses_before_fetching(tmp_path, monkeypatch) -> None:
    """The wiring in hub.download: a file over the limit is refused before any byte is fetched.
    (The Hub cannot be reached here: its listing is replaced by entries of the library's own type.)"""
    import huggingface_hub
    from huggingface_hub.hf_api import RepoFile

    from playground.models import hub

    class FakeApi:
        def list_repo_tree(self, repo_id, **kwargs):
            return [RepoFile(path="big.gguf", size=50 * 10**9, oid="x"),
                    RepoFile(path="small.gguf", size=10**6, oid="y")]

    fetched = []
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "endpoint_unreachable", lambda *a, **k: None)   # the simulated Hub answers
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: fetched.append(a) or str(tmp_path / "f"))
    with pytest.raises(PlaygroundError, match="more than this server downloads"):
        hub.download(hub.parse_hub_ref("hf:owner/repo/big.gguf"), max_bytes=20 * 10**9)
    assert fetched == []
    hub.download(hub.parse_hub_ref("hf:owner/repo/small.gguf"), max_bytes=20 * 10**9)
    assert len(fetched) == 1
