"""`python app.py train dpo|kto --base MODEL_ID --name NAME`: a tuned model from the stored votes (TRL DPO or KTO)."""
from __future__ import annotations

import argparse
import sys
from contextlib import closing
from typing import Any

NAME = "train"


def add_parser(subparsers: Any) -> None:
    """Register `train` on the CLI's subparsers."""
    from playground.training.dpo import DPOHyperparameters as H

    p = subparsers.add_parser(
        NAME, help="train a model on the stored votes (DPO or KTO with TRL; LoRA by default) into the models folder",
        description="Reads decisive votes as DPO pairs (the same rules and filters as `export dpo`), holds out a "
        "share to score preference accuracy before and after, trains with TRL's DPOTrainer (dpo) or KTOTrainer "
        "(kto: the unpaired rows of `export kto`, without the held-out pairs' answers) and writes an HF "
        "folder with a model card under the models folder; the catalog lists it as tuned from its base.")
    p.add_argument("method", choices=("dpo", "kto"), help="training objective: dpo (pairs) or kto (unpaired rows)")
    p.add_argument("--base", required=True, help="catalog id of the base model (a GGUF file or HF folder on disk)")
    p.add_argument("--name", required=True, help="folder name of the tuned model under the models folder")
    p.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA (more memory and time)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (default: whole epochs)")
    p.add_argument("--epochs", type=float, default=H.epochs, help=f"passes over the pairs (default {H.epochs:g})")
    p.add_argument("--beta", type=float, default=H.beta, help=f"DPO beta (default {H.beta})")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 5e-5 LoRA, 5e-6 full)")
    p.add_argument("--batch-size", type=int, default=H.batch_size, help=f"pairs per step (default {H.batch_size})")
    p.add_argument("--max-length", type=int, default=H.max_length,
                   help=f"tokens of prompt + answer kept (default {H.max_length})")
    p.add_argument("--held-out", type=float, default=0.1, help="share of pairs held out for scoring (default 0.1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or mps (default cpu)")
    p.add_argument("--model", help="only votes where either side is this model")
    p.add_argument("--mode", help="only votes where either side used this prompting mode")
    p.add_argument("--since", help="only votes at or after this time (ISO date/time or epoch seconds)")
    p.add_argument("--until", help="only votes before this time; a bare date includes that whole day")
    p.add_argument("--anonymous-only", action="store_true", help="only blind (anonymous) battles")
    p.add_argument("--agreed-only", action="store_true",
                   help="only pairs two or more annotators judged alike, once (as `export --agreed-only`)")
    p.add_argument("--include-truncated", action="store_true",
                   help="keep pairs with an answer cut by the token limit (default: left out)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground.commands.export_cmd import require_database
    from playground.dates import parse_when
    from playground.models.catalog import build_catalog
    from playground.export import PreferenceFilters
    from playground.training.dpo import DPOHyperparameters, TrainRequest, as_background_work, train_dpo
    from storage import open_database

    as_background_work()   # before torch starts its threads: they inherit the lower priority

    filters = PreferenceFilters(model=args.model, mode=args.mode, since=parse_when(args.since),
                                until=parse_when(args.until, end_of_day=True), anonymous_only=args.anonymous_only,
                                include_truncated=args.include_truncated, agreed_only=args.agreed_only)
    hyper = DPOHyperparameters(beta=args.beta, learning_rate=args.lr, epochs=args.epochs, batch_size=args.batch_size,
                               max_length=args.max_length, max_steps=args.max_steps)
    request = TrainRequest(base=args.base, name=args.name, models_dir=settings.models_dir,
                           method="full" if args.full else "lora", filters=filters, hyper=hyper,
                           held_out_fraction=args.held_out, device=args.device, objective=args.method)
    require_database(settings.db_path)
    catalog = build_catalog(settings.models_dir, settings.presets_dir, include_hub=False)

    def show(p: Any) -> None:
        if p.notice:
            print(f"warning: {p.notice}", file=sys.stderr)
        if p.stage != "training":
            print(p.stage, file=sys.stderr)
        elif p.logs:
            keys = ("loss", "rewards/margins", "rewards/accuracies", "kl")
            shown = ", ".join(f"{k} {p.logs[k]:.4g}" for k in keys if k in p.logs)
            eta = f", ETA {p.eta:.0f} s" if p.eta is not None else ""
            print(f"step {p.step}/{p.max_steps}{eta}: {shown}", file=sys.stderr)

    with closing(open_database(settings.db_path)) as db:
        result = train_dpo(request, catalog, db, progress=show)
    unit = "rows" if args.method == "kto" else "pairs"
    print(f"wrote {result.path} ({result.pairs} {unit}, {result.steps} steps, {result.wall_seconds:.0f} s); "
          f"model card in {result.path / 'README.md'}")
    print(f"held-out preference accuracy, base:  {result.base_accuracy.label()}")
    print(f"held-out preference accuracy, tuned: {result.tuned_accuracy.label()}")
    print(f"tuned implicit reward prefers chosen: {result.implicit.label()}")
    if result.notice:
        print(f"warning: {result.notice}", file=sys.stderr)
    return 0
