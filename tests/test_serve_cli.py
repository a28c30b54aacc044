"""Starting the app: the options people need are in `python app.py --help`, and a busy port gets
the app's own message (naming --port), not Gradio's traceback and advice."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from playground.serving import port_problem

REPO = Path(__file__).resolve().parent.parent
GRADIO_ADVICE = ("GRADIO_SERVER_PORT", "server_port", "share=True", "launch()")


def run_app(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_top_level_help_lists_the_web_ui_options():
    out = run_app("--help")
    assert out.returncode == 0, out.stderr
    for flag in ("--port", "--host", "--db", "--auth", "--share", "--cache-dir"):
        assert flag in out.stdout, f"{flag} missing from python app.py --help"
    assert "argparse" not in out.stdout and "dispatch" not in out.stdout
    assert "ask" in out.stdout and "models" in out.stdout, "the commands are still listed"


def test_busy_port_is_the_apps_own_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert port_problem("127.0.0.1", port) is not None
        out = run_app("--port", str(port), "--db", str(tmp_path / "p.db"))
    assert out.returncode == 2, out.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert f"--port {port + 1}" in out.stderr
    assert "Traceback" not in out.stderr
    assert not any(advice in out.stderr for advice in GRADIO_ADVICE), out.stderr


def test_free_port_has_no_problem():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert port_problem("127.0.0.1", port) is None


def test_started_app_prints_its_address_and_not_gradios_share_advice(live_app):
    deadline = time.monotonic() + 60   # printed once launch() returns, a moment after the page answers
    while "runs at" not in live_app.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    log = live_app.log.read_text()
    assert f"The playground runs at http://127.0.0.1:{live_app.port}" in log, log[-2000:]
    assert "share=True" not in log and "launch()" not in log, log[-2000:]
