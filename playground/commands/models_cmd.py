"""`python app.py models`: every model the app can use, as a table or JSON; `models export-hf ID --out DIR`
writes a catalog model as a plain Hugging Face folder (a GGUF dequantised, without the quantised flag
that makes TRL refuse it)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from playground.config import Settings
from playground.models.catalog import build_catalog
from playground.models.split_packages import install_lines
from playground.models.spec import status_word

NAME = "models"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="list the models the app can use; 'models export-hf ID --out DIR' writes one "
                                  "as a plain Hugging Face folder for your own TRL/transformers scripts")
    p.add_argument("action", nargs="?", choices=("list", "export-hf"), default="list")
    p.add_argument("model_id", nargs="?", metavar="ID", help="export-hf: the catalog id (see 'python app.py models')")
    p.add_argument("--out", type=Path, help="export-hf: a new (or empty) folder to write")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--no-hub", action="store_true", help="leave out the recommended Hub models")


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def export_hf(args: argparse.Namespace, settings: Settings) -> int:
    """Load the model as training does (float32, quantised flag cleared) and save it with safetensors."""
    from playground.context import AppContext
    from playground.errors import PlaygroundError
    from playground.training.export_hf import export_hf_folder

    if not args.model_id or args.out is None:
        print("usage: python app.py models export-hf ID --out DIR (ids: python app.py models)", file=sys.stderr)
        return 2
    try:
        ctx = AppContext.create(settings)
        spec = ctx.ensure_local(ctx.catalog.get(args.model_id))
        out = export_hf_folder(spec, args.out)
    except PlaygroundError as exc:
        print(f"{exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: load it with AutoModelForCausalLM.from_pretrained({str(out)!r}) and "
          f"AutoTokenizer.from_pretrained({str(out)!r}); TRL trains it like any float32 model")
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "export-hf":
        return export_hf(args, settings)
    catalog = build_catalog(settings.models_dir, settings.presets_dir, include_hub=not args.no_hub,
                            cache_dir=settings.cache_dir)
    if args.json:
        print(json.dumps([s.to_dict() for s in catalog], indent=2))
    else:
        rows = [["ID", "KIND", "PARAMS", "QUANT", "CONTEXT", "BACKENDS", "SOURCE", "STATUS"]]
        for s in catalog:
            rows.append([s.id, s.kind, s.params_label(), s.quantization or "?",
                         str(s.context_length or "?"), ",".join(s.backends), s.source,
                         status_word(s)])
        print(format_table(rows))
        for s in catalog:
            if s.provenance:
                print(f"{s.id}: {s.provenance}")
    for line in install_lines():
        print(f"not installed: {line}", file=sys.stderr if args.json else sys.stdout)
    for problem in catalog.problems:
        print(f"warning: {problem}", file=sys.stderr)
    return 0
