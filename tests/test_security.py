"""Security defaults: loopback bind, loud warning when exposed without a password, working auth,
catalog-only model loading from the browser, and no trust_remote_code anywhere.

These are promises in the README ("Security defaults"); each test checks one against the real
app process or the real source tree, not against a mock.
"""
from __future__ import annotations

import ast
import ipaddress
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import REPO, AppProcess, free_port

psutil = pytest.importorskip("psutil")

WARNING_MARK = "WITHOUT a password"       # the phrase of serve_cmd.security_warnings
APP_TIMEOUT_S = 300


# ----------------------------------------------------------------------------- helpers


def listening_addresses(pid: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def non_loopback_ipv4() -> list[str]:
    found = []
    for addrs in psutil.net_if_addrs().values():
        for a in addrs:
            if a.family == socket.AF_INET and not ipaddress.ip_address(a.address).is_loopback:
                found.append(a.address)
    return found


def http_status(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def stderr_until(cmd: list[str], stop_marks: tuple[str, ...], timeout: float = APP_TIMEOUT_S) -> str:
    """Start cmd, read its stderr until a line holds one of stop_marks (or it exits), then stop it.

    The exposed app is only alive for as long as it takes to print its start-up lines.
    """
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(timeout, proc.kill)
    guard.start()
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if any(mark in line for mark in stop_marks):
                break
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()
    return "".join(lines)


def endpoint_args(client, api_name: str, **changes) -> list:
    """An endpoint's inputs at the UI defaults, with some parameters (by name) changed."""
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"][api_name]["parameters"]
    values = {p["parameter_name"]: p.get("parameter_default") for p in params}
    unknown = set(changes) - set(values)
    assert not unknown, f"{api_name} has no parameters {unknown}: {list(values)}"
    values.update(changes)
    return list(values.values())


def refusal(client, args: list, api_name: str) -> str:
    """The error text of a call that must be refused (an exception or an error notice)."""
    try:
        out = client.submit(*args, api_name=api_name).result(timeout=APP_TIMEOUT_S)
    except Exception as exc:  # gradio_client.exceptions.AppError: validation refused the value
        return str(exc)
    text = " ".join(str(x) for x in out)
    assert "Error" in text or "unknown model" in text, f"{api_name} accepted the model: {text[:500]}"
    return text


@pytest.fixture(scope="module")
def default_app(tmp_path_factory, bundled_gguf):
    """The app with no security flags at all: what a person gets from `python app.py`."""
    app = AppProcess(tmp_path_factory.mktemp("sec") / "playground.db")
    yield app
    app.close()


# ----------------------------------------------------------------------------- binding


def test_binds_loopback_only_by_default(default_app):
    """Without --host the app must be unreachable from other machines."""
    addresses = listening_addresses(default_app.proc.pid)
    assert addresses == {"127.0.0.1"}, addresses
    for ip in non_loopback_ipv4():
        with pytest.raises(OSError), socket.create_connection((ip, default_app.port), timeout=10):
            pass        # refused (or unreachable): either way nobody else can connect


def test_exposed_host_without_auth_warns_loudly(tmp_path):
    """--host 0.0.0.0 alone is a foot-gun: the warning must be on stderr, before serving."""
    port = free_port()
    err = stderr_until([sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(port),
                        "--db", str(tmp_path / "p.db")], stop_marks=(WARNING_MARK, "runs at"))
    assert "WARNING" in err and WARNING_MARK in err and "--auth" in err, err


@pytest.mark.parametrize("how", ["inline", "file"])
def test_auth_protects_page_and_api(tmp_path, bundled_gguf, how):
    """--auth user:pw (or a file of such lines): no warning, and nothing is served without login."""
    from gradio_client import Client

    if how == "inline":
        user, password, extra = "alice", "s3cret", ["--host", "0.0.0.0", "--auth", "alice:s3cret"]
    else:
        creds = tmp_path / "users.txt"
        creds.write_text("# people allowed in\n\nalice:s3cret\nbob:pa:ss word\n", encoding="utf-8")
        user, password, extra = "bob", "pa:ss word", ["--auth", str(creds)]
    app = AppProcess(tmp_path / "p.db", extra=extra)
    try:
        if how == "inline":      # the flag was honoured: exposed, and therefore needing the password
            assert "0.0.0.0" in listening_addresses(app.proc.pid)
        status, body = http_status(app.url + "/")
        assert status == 200 and '"auth_required":true' in body.replace(" ", "")   # the login page
        for path in ("/config", "/gradio_api/info"):
            assert http_status(app.url + path)[0] == 401, path
        with pytest.raises(Exception, match="(?i)credentials|login"):
            Client(app.url, verbose=False)
        with pytest.raises(Exception, match="(?i)login"):
            Client(app.url, auth=(user, password + "x"), verbose=False)
        client = Client(app.url, auth=(user, password), verbose=False)
        assert "/chat_send" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    finally:
        app.close()
    assert WARNING_MARK not in app.log.read_text()


def test_share_and_host_warnings_follow_auth():
    """--share is checked on the settings (a real share link would need the network)."""
    from playground.commands.serve_cmd import security_warnings
    from playground.config import Settings

    warned = security_warnings(Settings(share=True))
    assert len(warned) == 1 and "share link" in warned[0] and "--auth" in warned[0]
    assert security_warnings(Settings(share=True, auth=(("u", "p"),))) == []
    assert security_warnings(Settings(host="0.0.0.0"))
    assert security_warnings(Settings(host="0.0.0.0", auth=(("u", "p"),))) == []
    for host in ("127.0.0.1", "localhost", "::1"):
        assert security_warnings(Settings(host=host)) == []


def test_parse_auth_lines_and_errors(tmp_path):
    """A file of user:password lines; a malformed line is refused with its file and line number."""
    from playground.commands.serve_cmd import parse_auth
    from playground.errors import PlaygroundError

    good = tmp_path / "users.txt"
    good.write_text("# comment\n\n  alice:s3cret  \nbob:pa:ss\n", encoding="utf-8")
    assert parse_auth(str(good)) == (("alice", "s3cret"), ("bob", "pa:ss"))
    assert parse_auth("carol:pw") == (("carol", "pw"),)
    assert parse_auth(None) == ()
    bad = tmp_path / "bad.txt"
    bad.write_text("alice:s3cret\nnopassword\n", encoding="utf-8")
    with pytest.raises(PlaygroundError, match=re.escape(f"{bad}:2")):
        parse_auth(str(bad))
    for value in ("nocolon", ":pw", "user:"):
        with pytest.raises(PlaygroundError):
            parse_auth(value)


# ----------------------------------------------------------------------------- catalog-only models

SMUGGLED = ("/etc/passwd", "../models/smuggled.gguf", "hf:/etc/passwd.gguf", "hf:owner/repo/../../etc/x.gguf",
            "hf:../../tmp/x.gguf")


def test_browser_cannot_load_arbitrary_model_paths(default_app, bundled_gguf, tmp_path):
    """The API takes a model *id* from the catalog; a path (even to a valid GGUF) is refused."""
    from gradio_client import Client

    outside = tmp_path / "elsewhere" / "smuggled.gguf"      # a real model, outside ./models
    outside.parent.mkdir()
    shutil.copyfile(bundled_gguf, outside)
    client = Client(default_app.url, verbose=False)
    grid_params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/grid_send"]
    first_model = grid_params["parameters"][3]["parameter_name"]     # pane 1's model picker
    for model in SMUGGLED + (str(outside),):
        chat = refusal(client, endpoint_args(client, "/chat_send", message="hi", model_id=model), "/chat_send")
        grid = refusal(client, endpoint_args(client, "/grid_send", q="hi", **{first_model: model}), "/grid_send")
        for text in (chat, grid):
            assert "not in the list of choices" in text or "unknown model" in text, text[:300]
    proc = psutil.Process(default_app.proc.pid)
    touched = {m.path for m in proc.memory_maps()} | {f.path for f in proc.open_files()}
    assert str(outside) not in touched and "/etc/passwd" not in touched
    with sqlite3.connect(default_app.db) as db:
        assert db.execute("SELECT count(*) FROM generations").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM models WHERE path LIKE ?", (f"%{outside.name}",)).fetchone()[0] == 0


def test_catalog_lookup_refuses_paths(app_ctx, bundled_gguf):
    """The second wall, behind the dropdowns: a model id that is a path is never resolved to a file."""
    from playground.errors import PlaygroundError

    before = set(app_ctx.catalog.models)
    for model in SMUGGLED + (str(bundled_gguf), f"hf:{bundled_gguf}"):
        with pytest.raises(PlaygroundError, match="(?i)unknown model|malformed hub reference"):
            app_ctx.catalog.get(model)
    assert set(app_ctx.catalog.models) == before


# ----------------------------------------------------------------------------- trust_remote_code

SKIP_DIRS = {".git", ".venv", ".ci-venv", "__pycache__", "node_modules", ".pytest_cache", "tests"}
TRUE_RE = re.compile(r"""trust_remote_code["']?\s*[:=]\s*["']?(true|1|yes|on)\b""", re.IGNORECASE)


def source_files(suffixes: tuple[str, ...], skip: set[str] = SKIP_DIRS) -> list[Path]:
    return [p for p in REPO.rglob("*") if p.suffix in suffixes and p.is_file()
            and not (set(p.relative_to(REPO).parts[:-1]) & skip)]


def test_trust_remote_code_is_never_on():
    """Loading a Hub model must never run its code: every from_pretrained says so explicitly."""
    calls = []
    for path in source_files((".py",)):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "from_pretrained":
                kw = {k.arg: k.value for k in node.keywords if k.arg}
                value = kw.get("trust_remote_code")
                calls.append((f"{path.relative_to(REPO)}:{node.lineno}",
                              isinstance(value, ast.Constant) and value.value is False))
    assert calls, "no from_pretrained call found: the scan is looking in the wrong place"
    assert all(ok for _, ok in calls), [where for where, ok in calls if not ok]
    # nothing anywhere (code, presets, configs, tests) turns it on
    setters = [f"{p.relative_to(REPO)}:{n}" for p in source_files((".py", ".yaml", ".yml", ".json", ".toml", ".cfg"),
                                                                     SKIP_DIRS - {"tests"})
               for n, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
               if TRUE_RE.search(line)]
    assert setters == []
