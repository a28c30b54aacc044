"""`python app.py arena pool [--models A,B | --clear]`: the saved pool the Arena draws battles from.

With `--models`, every new Arena pair is drawn from those models (models only, zero-shot) for every
user until the pool is changed or cleared; with `--clear`, each user's own choice counts again;
with neither, the current pool is shown. Ids must be catalog models (`python app.py models`).
"""
from __future__ import annotations

import argparse
from contextlib import closing
from typing import Any

NAME = "arena"


def add_parser(subparsers: Any) -> None:
    """Register `arena` on the CLI's subparsers."""
    p = subparsers.add_parser(
        NAME, help="the Arena's saved pool: `arena pool --models BASE,TUNED` battles those two until cleared",
        description="`arena pool --models A,B` saves the pool every new Arena battle is drawn from (models only, "
        "zero-shot), e.g. a base model and the model tuned from it; `arena pool --clear` removes it; "
        "`arena pool` shows it. The leaderboard then ranks the two side by side with intervals.")
    p.add_argument("action", choices=("pool",), help="pool: show, set or clear the saved pool")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--models", help="comma-separated catalog ids, at least two (e.g. BASE,TUNED)")
    group.add_argument("--clear", action="store_true", help="clear the saved pool (users pick their own again)")


def run(args: argparse.Namespace, settings: Any) -> int:
    from playground.arena import save_pool
    from playground.models.catalog import build_catalog
    from storage import open_database
    from storage.arena_pool import clear_arena_pool, current_arena_pool

    if args.models is not None:
        catalog = build_catalog(settings.models_dir, settings.presets_dir, include_hub=False,
                                cache_dir=settings.cache_dir)
        ids = save_pool(settings.db_path, args.models.split(","), catalog, set_by="cli")
        print(f"Arena pool saved: {' vs '.join(ids)}. Every new Arena battle is drawn from these models "
              "(zero-shot) until `python app.py arena pool --clear`.")
        return 0
    if not settings.db_path.exists():
        print("no saved Arena pool (no database yet): each user picks the models in the Arena tab")
        return 0
    with closing(open_database(settings.db_path)) as db:
        if args.clear:
            clear_arena_pool(db, set_by="cli")
            print("Arena pool cleared: each user picks the models in the Arena tab again.")
            return 0
        pool = current_arena_pool(db)
    print(f"saved Arena pool: {' vs '.join(pool)}" if pool else
          "no saved Arena pool: each user picks the models in the Arena tab")
    return 0
