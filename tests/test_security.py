"""Security defaults: loopback bind, no exposed bind without a login, working auth,
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
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.browser_support import REPO, AppProcess

psutil = pytest.importorskip("psutil")

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


def test_auth_protects_page_and_api(tmp_path, bundled_gguf):
    """--auth FILE on 0.0.0.0: nothing is served without login; wrong passwords are refused."""
    from gradio_client import Client

    from playground.auth.users import write_user

    creds = tmp_path / "users.txt"
    write_user(creds, "alice", "admin", "s3cret-alice")
    write_user(creds, "bob", "annotator", "pa:ss word")
    app = AppProcess(tmp_path / "p.db", extra=["--host", "0.0.0.0", "--auth", str(creds)])
    try:
        assert "0.0.0.0" in listening_addresses(app.proc.pid)    # the flag was honoured: exposed, behind a login
        status, body = http_status(app.url + "/")
        assert status == 200 and '"auth_required":true' in body.replace(" ", "")   # the login page
        for path in ("/config", "/gradio_api/info"):
            assert http_status(app.url + path)[0] == 401, path
        with pytest.raises(Exception, match="(?i)credentials|login"):
            Client(app.url, verbose=False)
        with pytest.raises(Exception, match="(?i)login"):
            Client(app.url, auth=("bob", "pa:ss wordx"), verbose=False)
        with pytest.raises(Exception, match="(?i)login"):
            Client(app.url, auth=("nobody", "pa:ss word"), verbose=False)
        client = Client(app.url, auth=("bob", "pa:ss word"), verbose=False)
        assert "/chat_send" in client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    finally:
        app.close()
    assert "refusing" not in app.log.read_text()


def test_access_mode_follows_host_share_and_auth(tmp_path):
    """Checked on the settings (a real share link would need the network); the refusal names --auth."""
    from playground.auth.users import write_user
    from playground.commands.serve_cmd import access_for
    from playground.config import Settings
    from playground.errors import PlaygroundError

    users = tmp_path / "users.txt"
    write_user(users, "u", "admin", "long-password")
    for exposed in (Settings(share=True), Settings(host="0.0.0.0")):
        with pytest.raises(PlaygroundError, match="--auth"):
            access_for(exposed)
        assert access_for(exposed.with_overrides(insecure_no_auth=True)).mode == "open"
        assert access_for(exposed.with_overrides(auth_file=users)).mode == "team"
    for host in ("127.0.0.1", "localhost", "::1"):
        assert access_for(Settings(host=host)).mode == "local"


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
