"""One frozen settings object, built once from flags and environment, passed explicitly."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def default_cache_dir() -> Path:
    """Where the app keeps files it derives (the bundled model's F16 copy): PLAYGROUND_CACHE, else
    $XDG_CACHE_HOME/playground, else ~/.cache/playground. Tests point PLAYGROUND_CACHE elsewhere."""
    chosen = os.environ.get("PLAYGROUND_CACHE")
    if chosen:
        return Path(chosen).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "playground"


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        from playground.errors import PlaygroundError

        raise PlaygroundError(f"{name}={value!r} is not a port number (0-65535)")
    return int(value)


@dataclass(frozen=True)
class Settings:
    """Where things live and how the app runs. Never mutated: use `with_overrides`."""

    data_dir: Path = field(default_factory=lambda: _env_path("PLAYGROUND_DATA", Path("data")))
    db_path: Path = field(default_factory=lambda: _env_path("PLAYGROUND_DB", Path("data") / "playground.db"))
    models_dir: Path = field(default_factory=lambda: _env_path("PLAYGROUND_MODELS", Path("models")))
    presets_dir: Path = field(default_factory=lambda: _env_path("PLAYGROUND_PRESETS", REPO_ROOT / "presets"))
    cache_dir: Path = field(default_factory=default_cache_dir)
    host: str = "127.0.0.1"
    port: int = field(default_factory=lambda: _env_port("PLAYGROUND_PORT", 7860))
    # None: each step runs on the cores other processes leave free (backends/free_cores.py);
    # a number (--threads N) fixes the threads per model
    threads: int | None = None
    n_ctx: int = 2048
    device: str = "cpu"
    # the bundled SmolLM2 as F16, built into cache_dir on first use; "smollm2-135m-instruct" is the
    # shipped Q4_1 file (kept under its old id: votes recorded for it stay true to what answered)
    default_model: str = "smollm2-135m-instruct-f16"
    memory_budget_mb: int = 8192
    share: bool = False
    auth_file: Path | None = None          # the users file (`--auth FILE`); None = no login
    insecure_no_auth: bool = False         # reachable from other machines without login, said on every page
    allow_hub_download: bool = True        # download Hub models on first use (off on team servers)
    max_download_gb: float = 20.0          # the largest Hub download the app starts
    # how long a sign-in lasts on a team server (`--session-hours`), then the page asks again
    session_hours: float = 12.0

    def with_overrides(self, **changes: object) -> "Settings":
        """A copy with some fields changed (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})
