"""`python app.py <command>`: argparse dispatch to the modules in playground/commands/.

Each command module defines NAME, `add_parser(subparsers)` and `run(args, settings) -> int`;
adding a command is adding a module. With no command, `serve` runs (the web UI).
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

from playground import commands
from playground.config import Settings
from playground.errors import PlaygroundError


def command_modules() -> list[ModuleType]:
    found = [importlib.import_module(f"{commands.__name__}.{m.name}")
             for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted((m for m in found if hasattr(m, "NAME")), key=lambda m: m.NAME)


COMMON_OPTIONS: tuple[tuple[str, dict], ...] = (
    ("--db", dict(type=Path, help="SQLite database (env PLAYGROUND_DB; default data/playground.db)")),
    ("--models-dir", dict(type=Path, help="folder scanned for *.gguf files and HF model folders (default ./models)")),
    ("--presets-dir", dict(type=Path, help="presets folder (default: the app's presets/)")),
    ("--threads", dict(type=int, help="CPU threads per model (default: all cores)")),
    ("--n-ctx", dict(type=int, help="context size in tokens (default 2048, capped by the model)")),
    ("--memory-budget", dict(type=int, metavar="MB", help="memory for loaded models before the least "
                             "recently used is unloaded (default 8192)")),
)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options every command takes (paths and engine size), unless the command defines them."""
    group = parser.add_argument_group("common options")
    for flag, kwargs in COMMON_OPTIONS:
        if flag not in parser._option_string_actions:
            group.add_argument(flag, default=None, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="command")
    for module in command_modules():
        module.add_parser(sub)
    for command_parser in sub.choices.values():
        add_common_options(command_parser)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags override environment variables, which override defaults."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return Settings().with_overrides(
        db_path=get("db"), models_dir=get("models_dir"), presets_dir=get("presets_dir"),
        threads=get("threads"), n_ctx=get("n_ctx"), host=get("host"), port=get("port"),
        memory_budget_mb=get("memory_budget"))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {m.NAME for m in command_modules()}
    if not argv or (argv[0] not in names and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    parser = build_parser()
    args = parser.parse_args(argv)
    module = next(m for m in command_modules() if m.NAME == args.command)
    try:
        return int(module.run(args, settings_from_args(args)) or 0)
    except PlaygroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
