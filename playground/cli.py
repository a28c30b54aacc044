"""`python app.py [command]`: the web UI (the default command) and the command-line tools.

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
from playground.terminal import escaped_output

# The web server's and the trainer's own logs and progress bars may colour and redraw the terminal.
RAW_OUTPUT_COMMANDS = ("serve", "train")


def command_modules() -> list[ModuleType]:
    found = [importlib.import_module(f"{commands.__name__}.{m.name}")
             for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted((m for m in found if hasattr(m, "NAME")), key=lambda m: m.NAME)


COMMON_OPTIONS: tuple[tuple[str, dict], ...] = (
    ("--db", dict(type=Path, help="SQLite database (env PLAYGROUND_DB; default data/playground.db)")),
    ("--models-dir", dict(type=Path, help="folder scanned for *.gguf files and HF model folders (default ./models)")),
    ("--presets-dir", dict(type=Path, help="presets folder (default: the app's presets/)")),
    ("--cache-dir", dict(type=Path, help="where the app keeps files it builds, e.g. the bundled model's "
                         "F16 copy (env PLAYGROUND_CACHE; default ~/.cache/playground)")),
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


DESCRIPTION = ("The LLM playground: run local models side by side in the browser, judge their answers, "
               "rank them and export training data. With no command, the web UI starts.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python app.py", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="command")
    for module in command_modules():
        module.add_parser(sub)
    for command_parser in sub.choices.values():
        add_common_options(command_parser)
    if "serve" in sub.choices:
        parser.epilog = web_ui_help(sub.choices["serve"])
    return parser


def web_ui_help(serve: argparse.ArgumentParser) -> str:
    """The web UI's options, shown by `python app.py --help` too (the UI is what most people start)."""
    formatter = argparse.HelpFormatter("python app.py", max_help_position=28)
    formatter.start_section("web UI options (python app.py [serve] [options])")
    formatter.add_arguments([a for a in serve._actions
                             if a.option_strings and a.help != argparse.SUPPRESS and "-h" not in a.option_strings])
    formatter.end_section()
    return (formatter.format_help().rstrip() + "\n\nexamples:\n"
            "  python app.py                        # the web UI at http://127.0.0.1:7860\n"
            "  python app.py --port 7861            # another port\n"
            "  python app.py --host 0.0.0.0 --auth me:secret   # reachable from other machines\n"
            "  python app.py ask \"What is the capital of France?\"\n"
            "\n`python app.py COMMAND --help` shows a command's options.")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Flags override environment variables, which override defaults."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    return Settings().with_overrides(
        db_path=get("db"), models_dir=get("models_dir"), presets_dir=get("presets_dir"), cache_dir=get("cache_dir"),
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
        if args.command in RAW_OUTPUT_COMMANDS:
            return int(module.run(args, settings_from_args(args)) or 0)
        with escaped_output():  # names and notes from the database never drive the terminal
            return int(module.run(args, settings_from_args(args)) or 0)
    except PlaygroundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
