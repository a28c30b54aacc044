"""`python app.py models`: every model the app can use, as a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys

from playground.config import Settings
from playground.models.catalog import build_catalog
from playground.models.split_packages import install_lines

NAME = "models"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="list the models the app can use")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--no-hub", action="store_true", help="leave out the recommended Hub models")


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def run(args: argparse.Namespace, settings: Settings) -> int:
    catalog = build_catalog(settings.models_dir, settings.presets_dir, include_hub=not args.no_hub,
                            cache_dir=settings.cache_dir)
    if args.json:
        print(json.dumps([s.to_dict() for s in catalog], indent=2))
    else:
        rows = [["ID", "KIND", "PARAMS", "QUANT", "CONTEXT", "BACKENDS", "SOURCE", "STATUS"]]
        for s in catalog:
            rows.append([s.id, s.kind, s.params_label(), s.quantization or "?",
                         str(s.context_length or "?"), ",".join(s.backends), s.source,
                         "ready" if s.available else (s.note or "missing")])
        print(format_table(rows))
        for s in catalog:
            if s.provenance:
                print(f"{s.id}: {s.provenance}")
    for line in install_lines():
        print(f"not installed: {line}", file=sys.stderr if args.json else sys.stdout)
    for problem in catalog.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
