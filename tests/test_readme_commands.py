"""Every command the README shows in a code block, and every example `--help` prints, runs as written.

The commands run in README order in a fresh folder (app.py linked in, so `data/` and `models/` are
the folder's own), as a reader would type them: `python` is this interpreter, passwords come from
PLAYGROUND_PASSWORD (as the README says scripts do), and a command that starts the web server is
stopped once it prints its address. Only the port is changed: an explicit `--port N` becomes a free
port, and PLAYGROUND_PORT gives the default-port starts a free one.
"""
from __future__ import annotations

import os
import re
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.browser_support import free_port

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 240          # a cold start on a busy 2-core machine builds the UI and loads presets
COMMAND_TIMEOUT_S = 300        # `ask` generates up to its default token budget on the bundled model


def app_commands(line: str) -> list[list[str]]:
    """The `python app.py ...` commands of one shell line, as argv after `app.py` (comments dropped;
    `pip ... && python app.py` keeps the app part: installing is not what is tested here)."""
    words = shlex.split(line, comments=True)
    found: list[list[str]] = []
    for i in range(len(words) - 1):
        if words[i] == "python" and words[i + 1] == "app.py" and (i == 0 or words[i - 1] == "&&"):
            rest = words[i + 2:]
            found.append(rest[:rest.index("&&")] if "&&" in rest else rest)
    return found


def fenced_commands(markdown: str) -> list[list[str]]:
    """Every `python app.py` command in the README's code blocks."""
    return [argv for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", markdown, flags=re.S)
            for line in block.splitlines() for argv in app_commands(line)]


def help_examples() -> list[list[str]]:
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    examples = out.stdout.split("examples:", 1)[1].split("\n\n", 1)[0]
    return [argv for line in examples.splitlines() for argv in app_commands(line)]


def starts_server(argv: list[str]) -> bool:
    return not argv or argv[0].startswith("-") or argv[0] == "serve"


def with_free_port(argv: list[str]) -> list[str]:
    out = list(argv)
    if "--port" in out:
        out[out.index("--port") + 1] = str(free_port())
    return out


def run_server(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Start the server, wait for its address line(s), stop it; its console output so far."""
    proc = subprocess.Popen([sys.executable, "app.py", *argv], cwd=cwd, env={**env, "PLAYGROUND_PORT": str(free_port())},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=lambda: [*map(lines.put, proc.stdout), lines.put(None)], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break                               # the process ended
            seen.append(line)
            if "The playground runs at http://" in line:
                if "0.0.0.0" in argv:              # the teammates' line follows at once
                    try:
                        seen.append(lines.get(timeout=10) or "")
                    except queue.Empty:
                        pass
                return "".join(seen)
        raise AssertionError(f"`python app.py {' '.join(argv)}` printed no address:\n{''.join(seen)[-3000:]}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("reader")
    (where / "app.py").symlink_to(REPO / "app.py")
    return where


def test_readme_commands_and_help_examples_run_as_written(folder, bundled_gguf):
    readme = fenced_commands((REPO / "README.md").read_text(encoding="utf-8"))
    examples = help_examples()
    assert ["--host", "0.0.0.0", "--auth", "me:secret"] in examples, examples
    assert ["users", "add", "ada", "--role", "admin"] in readme and [] in readme, readme
    env = {**os.environ, "PLAYGROUND_PASSWORD": "readme-pass-1", "PLAYGROUND_PRESETS": str(REPO / "presets")}
    env.pop("PLAYGROUND_DB", None)
    env.pop("PLAYGROUND_DATA", None)
    env.pop("PLAYGROUND_AUTH", None)
    done: set[tuple[str, ...]] = set()
    timings: list[tuple[str, float]] = []
    for words in [*readme, *examples]:
        argv = with_free_port(words)
        command = shlex.join(["python", "app.py", *words])
        key = tuple("PORT" if i and argv[i - 1] == "--port" else a for i, a in enumerate(argv))
        if key in done:
            continue
        done.add(key)
        began = time.monotonic()
        timings.append((command, began))
        if starts_server(argv):
            log = run_server(argv, folder, env)
            assert "Traceback" not in log, log
            if "--auth" in argv:
                assert "behind a login" in log, log
            if "0.0.0.0" in argv:
                assert "Teammates open http://" in log, log
            continue
        out = subprocess.run([sys.executable, "app.py", *argv], cwd=folder, env=env, capture_output=True,
                             text=True, timeout=COMMAND_TIMEOUT_S)
        # an export of a fresh database has nothing to write: it says so (exit 1), which is right
        ok = out.returncode == 0 or (argv[0] == "export" and "nothing matched" in out.stderr)
        assert ok and "Traceback" not in out.stderr, f"{command}\n{out.stdout}\n{out.stderr}"
    ends = [t for _, t in timings[1:]] + [time.monotonic()]
    print("\n".join(f"{end - began:6.1f} s  {command}" for (command, began), end in zip(timings, ends, strict=True)))
    ran = {k[0] if k else "" for k in done}
    assert {"", "users", "team", "export", "ask"} <= ran, done
