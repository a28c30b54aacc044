"""The size ladder on GSM8K: models x prompting modes, run by the lab in stages, resumable.

Each cell (model, mode[, shots]) is one `python app.py lab` run on presets/tasks/gsm8k-test.jsonl,
stored in one database; the lab keys a run by its configuration (not by --limit), so a later
stage with a larger --limit continues the same run with the next items, and a killed run loses
at most the item in flight. Stages grow every cell a little before any cell grows a lot, so a
run stopped at any time leaves comparable cells (the first N items of the same file each).

    nice -n 10 python bench/ladder.py --db /work/ladder/ladder.db      # start or continue
    python bench/ladder.py --db /work/ladder/ladder.db --plan          # what it would run, and n so far

Sizes: >= 250 items per cell up to 0.5B, >= 100 for the 1.5B and for maj@5 (a 95% interval of about
+/-6 points at 250 items, +/-10 at 100).
On a shared 2-core machine that is many hours; the stages below reach them in the last stage.
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "presets" / "tasks" / "gsm8k-test.jsonl"
GREEDY_MODES = ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot")
SMALL = ("smollm2-135m-instruct", "smollm2-135m-instruct-f16", "gemma3-270m-base", "qwen2.5-coder-0.5b-instruct")
LARGE = ("qwen2.5-coder-1.5b-instruct",)
QWEN = ("qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct")
MAX_TOKENS = 256
SAMPLES = 5
ICL_SHOTS = "0,1,2,4,8"


@dataclass(frozen=True)
class Cell:
    model: str
    mode: str
    limit: int
    extra: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.model} {self.mode}{' ' + ' '.join(self.extra) if self.extra else ''} -> {self.limit}"


def stages() -> list[Cell]:
    """Cheapest first: greedy cells on the small models, then the 1.5B, then maj@5 and the ICL curve;
    every stage raises the limit of all its cells before the next stage."""
    cells: list[Cell] = []
    for limit in (10, 25, 50, 100, 250):
        for model in SMALL:
            cells += [Cell(model, mode, limit) for mode in GREEDY_MODES]
        for model in LARGE:
            cells += [Cell(model, mode, min(limit, 100)) for mode in GREEDY_MODES]
        if limit >= 25:
            for model in SMALL + LARGE:
                cells.append(Cell(model, "self_consistency", min(limit, 100), ("--samples", str(SAMPLES))))
            for model in QWEN:
                cells.append(Cell(model, "few_shot", min(limit, 250 if model in SMALL else 100),
                                  ("--shot-counts", ICL_SHOTS)))
    seen, unique = set(), []
    for cell in cells:                        # a cell capped at 100 appears once per limit
        if cell not in seen:
            seen.add(cell)
            unique.append(cell)
    return unique


def lab_command(cell: Cell, db: Path, out: Path, threads: int) -> list[str]:
    return [sys.executable, str(REPO / "app.py"), "lab", "--tasks", str(TASKS), "--models", cell.model,
            "--modes", cell.mode, "--limit", str(cell.limit), "--max-tokens", str(MAX_TOKENS),
            "--threads", str(threads), "--db", str(db), "--out", str(out), "--run-name", "gsm8k-ladder",
            *cell.extra]


def stored_counts(db: Path) -> list[tuple[str, str, int | None, int | None, int]]:
    """(model, mode, shots, samples, finished items) of every run in the ladder database."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        return con.execute(
            "SELECT r.model_id, r.mode, r.shots, r.samples, COUNT(DISTINCT x.item_index) FROM lab_runs r "
            "JOIN lab_results x ON x.run_id = r.id AND x.error IS NULL GROUP BY r.config_key ORDER BY r.model_id, r.mode, r.shots"
        ).fetchall()


def clock_time(text: str) -> tuple[int, int]:
    """`HH:MM` as (hour, minute); argparse shows the ValueError's words next to the option."""
    try:
        hour, minute = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not HH:MM (e.g. 00:40)") from None
    if not (0 <= hour < 24 and 0 <= minute < 60):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time of day (00:00 to 23:59)")
    return hour, minute


def deadline(now: datetime, stop_at: tuple[int, int] | None = None,
             stop_after_min: float | None = None) -> datetime | None:
    """The moment after which no new cell starts: the next HH:MM after `now` (tomorrow's when today's
    has passed, so a run started at 23:05 with 00:40 stops after midnight, not at once), or `now`
    plus a number of minutes; the earlier of the two when both are given."""
    candidates = []
    if stop_at is not None:
        at = now.replace(hour=stop_at[0], minute=stop_at[1], second=0, microsecond=0)
        candidates.append(at if at > now else at + timedelta(days=1))
    if stop_after_min is not None:
        candidates.append(now + timedelta(minutes=stop_after_min))
    return min(candidates) if candidates else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=REPO / "data" / "ladder" / "ladder.db")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "ladder")
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads (1 on a busy shared machine: 2 threads spin-wait for each other)")
    parser.add_argument("--models", default=None, help="only these models (comma-separated)")
    parser.add_argument("--plan", action="store_true", help="print the cells and the items stored so far, run nothing")
    parser.add_argument("--stop-at", type=clock_time, default=None,
                        help="HH:MM (local time, its next occurrence, past midnight if need be): start no new cell after it")
    parser.add_argument("--stop-after", type=float, default=None, metavar="MINUTES",
                        help="start no new cell after this many minutes")
    args = parser.parse_args(argv)
    stop = deadline(datetime.now(), args.stop_at, args.stop_after)
    cells = stages()
    if args.models:
        wanted = set(args.models.split(","))
        cells = [c for c in cells if c.model in wanted]
    if args.plan:
        for cell in cells:
            print(cell.label)
        for row in stored_counts(args.db):
            print("stored:", *row)
        return 0
    args.db.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for cell in cells:
        if stop is not None and datetime.now() >= stop:
            print(f"deadline {stop:%Y-%m-%d %H:%M} reached; run again to continue", flush=True)
            return 0
        print(f"== {time.strftime('%H:%M:%S')} {cell.label}", flush=True)
        code = subprocess.call(lab_command(cell, args.db, args.out, args.threads), env=env, cwd=REPO)
        if code not in (0, 1):                 # 1: some items failed (stored as errors, retried later)
            print(f"   exit {code}; stopping (run again to resume)", flush=True)
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
