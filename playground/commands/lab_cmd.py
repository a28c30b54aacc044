"""`python app.py lab --tasks FILE`: models x prompting modes over a task set, scored and plotted;
`python app.py lab report`: the summary and the research curves of stored runs, without running.

Results go to the database as they come (Ctrl-C keeps them; the same command resumes), the
summary is printed (or JSON with --json), and the PNG figures and CSVs are written to --out.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from playground.config import Settings
from playground.lab import LabConfig, LabProgress
from playground.prompting.plan import MODES
from playground.prompting.presets import FAMILIES

NAME = "lab"
MAX_LINE_WARNINGS = 10
BAR_WIDTH = 24
PLAIN_EVERY_S = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `lab` on the CLI's subparsers."""
    p = sub.add_parser(NAME, help="batch-evaluate models x prompting modes on a task file (accuracy vs size); "
                                  "'lab report' draws the curves of stored runs")
    p.add_argument("action", nargs="?", choices=("run", "report"), default="run",
                   help="run (default): run a task file; report: summary and curves of stored runs, nothing runs")
    p.add_argument("--tasks", type=Path,
                   help="task file: GSM8K JSONL (question, answer '... #### N') or generic JSONL "
                        "(input, target, optional choices); shipped sets are in presets/tasks/")
    p.add_argument("--models", default=None,
                   help="comma-separated catalog ids or hf: references (default: the bundled model)")
    p.add_argument("--modes", default=",".join(("zero_shot", "few_shot_cot")),
                   help=f"comma-separated prompting modes (default zero_shot,few_shot_cot); any of: {', '.join(MODES)}")
    p.add_argument("--limit", type=int, default=None, help="only the first N items of the file")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    p.add_argument("--family", choices=FAMILIES, default=None,
                   help="task family that picks the prompting presets (default: inferred from the answers)")
    p.add_argument("--max-tokens", type=int, default=None, help="max new tokens per answer (default: the preset's)")
    p.add_argument("--shots", type=int, default=None, help="exemplars for few-shot modes (default: the preset's)")
    p.add_argument("--samples", type=int, default=None,
                   help="self-consistency paths k, scored as maj@k beside greedy (default: the preset's)")
    p.add_argument("--shot-counts", default=None,
                   help="in-context learning curve: comma-separated exemplar counts for the few-shot modes, "
                        "one run each (e.g. 0,1,2,4,8); overrides --shots")
    p.add_argument("--sampling", default="deterministic", help="sampling preset (default deterministic)")
    p.add_argument("--backend", default=None, help="backend for every model (default: each model's first)")
    p.add_argument("--device", default="cpu", help="cpu | gpu (llama_cpp); cpu | cuda | mps | auto (transformers)")
    p.add_argument("--no-logprob", action="store_true",
                   help="skip the log-likelihood metrics (gold answer, multiple-choice options): faster")
    p.add_argument("--keep-loaded", action="store_true",
                   help="borrow models from the shared cache instead of loading each alone and freeing it "
                        "(the default with several models: an unattended run never holds two at once)")
    p.add_argument("--run-name", default=None,
                   help="name of the runs and of the output files (default: the task file's name)")
    p.add_argument("--out", type=Path, default=None, help="folder for the PNGs and CSVs (default data/lab/)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (progress stays on stderr)")
    p.add_argument("--run-ids", default=None, help="report: comma-separated run ids (default: the latest run of "
                                                  "each configuration of --run-name, or of the newest lab)")


def split_list(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def config_from_args(args: argparse.Namespace, settings: Settings) -> LabConfig:
    return LabConfig(task_path=args.tasks, models=split_list(args.models) or (settings.default_model,),
                     modes=split_list(args.modes), limit=args.limit, seed=args.seed, family=args.family,
                     max_tokens=args.max_tokens, shots=args.shots, samples=args.samples, run_name=args.run_name,
                     backend=args.backend, device=args.device, sampling_preset=args.sampling,
                     logprob=not args.no_logprob, shot_counts=parse_shot_counts(args.shot_counts),
                     unattended=False if args.keep_loaded else None)


def parse_shot_counts(value: str | None) -> tuple[int, ...]:
    from playground.lab.config import parse_shot_counts as parse

    return parse(value)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def progress_line(p: LabProgress) -> str:
    """'[#####-----] 12/40 items · 0.80 items/s · ETA 00:35 · model · mode'."""
    share = p.done / p.total if p.total else 1.0
    filled = int(round(BAR_WIDTH * share))
    speed = f"{p.items_per_s:.2f} items/s" if p.items_per_s else "-- items/s"
    resumed = f" · {p.skipped} already stored" if p.skipped else ""
    return (f"[{'#' * filled}{'-' * (BAR_WIDTH - filled)}] {p.done}/{p.total} items · {speed} · "
            f"ETA {format_duration(p.eta_s)} · {p.run_label}{resumed}")


class ProgressBar:
    """A one-line bar redrawn in place on a terminal; occasional plain lines otherwise (logs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.last_plain = 0.0
        self.width = 0

    def update(self, progress: LabProgress) -> None:
        line = progress_line(progress)
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S or progress.done == progress.total:
            self.stream.write(line + "\n")
            self.last_plain = time.monotonic()
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()


def report_line_errors(job: Any, stream: TextIO) -> None:
    errors = job.tasks.errors
    for error in errors[:MAX_LINE_WARNINGS]:
        print(f"warning: {job.tasks.path}: {error} (skipped)", file=stream)
    if len(errors) > MAX_LINE_WARNINGS:
        print(f"warning: {len(errors) - MAX_LINE_WARNINGS} more bad line(s) skipped", file=stream)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "report":
        return report(args, settings)
    if args.tasks is None:
        print("error: lab needs --tasks FILE (a JSONL task file, e.g. presets/tasks/arithmetic-word-problems.jsonl); "
              "or 'lab report' to draw stored runs", file=sys.stderr)
        return 2
    from playground.context import AppContext
    from playground.lab import (file_stem, format_summary, load_items, prepare_lab, run_ids_for, run_lab,
                                summarize, summary_dicts)
    from playground.lab.curves import write_curves
    from playground.lab.plots import write_report
    from storage import lab as lab_store
    from storage import open_database

    ctx = AppContext.create(settings)
    job = prepare_lab(ctx, config_from_args(args, settings))   # every input error surfaces here
    report_line_errors(job, sys.stderr)
    bar = ProgressBar(sys.stderr)
    interrupted, errors = False, []
    try:
        outcome = run_lab(ctx, job, settings.db_path, on_progress=bar.update)
        errors = outcome.errors
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    db = open_database(settings.db_path)
    try:
        ids = run_ids_for(db, job)
        rows, items = summarize(db, ids), load_items(db, ids)
        resources = lab_store.model_stats(db, ids)
    finally:
        db.close()
    out_dir = args.out or settings.data_dir / "lab"
    files = {**write_report(rows, items, out_dir, file_stem(job.name)),
             **write_curves(rows, out_dir, file_stem(job.name))}
    if args.json:
        print(json.dumps({"task_file": str(job.tasks.path), "task_hash": job.tasks.sha256, "family": job.family,
                          "n_items": len(job.items), "skipped_lines": [{"line": e.line, "message": e.message}
                                                                       for e in job.tasks.errors],
                          "cancelled": interrupted, "errors": errors, "runs": summary_dicts(rows),
                          "models": resources,
                          "files": {k: str(v) for k, v in files.items()}}, indent=2, ensure_ascii=False))
    else:
        print(format_summary(rows))
        skipped = f"; {len(job.tasks.errors)} bad line(s) skipped" if job.tasks.errors else ""
        print(f"\n{job.tasks.name}: {len(job.items)} items, family {job.family}{skipped}. {LEGEND}")
        if resources:
            print("\n" + format_resources(resources))
        for path in files.values():
            print(f"wrote {path}")
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if interrupted:
        print("cancelled: finished items are stored; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if errors else 0


LEGEND = ("ACCURACY: exact match by the app's extractor (the plots use it), 95% Wilson CI; STRICT / FLEXIBLE: "
          "lm-evaluation-harness's gsm8k-cot strict-match and flexible-extract on the same outputs; MAJ@K: "
          "majority of the k self-consistency paths; MC ACC / ACC_NORM: the option with the highest "
          "log-likelihood (per character for _NORM); gold logprob: mean per-token log p(gold | prompt), ±1.96 SE.")


def report(args: argparse.Namespace, settings: Settings) -> int:
    """Summary, CSVs and every figure of stored runs; nothing is run and nothing is written to the database."""
    from playground.lab import file_stem, format_summary, load_items, summarize, summary_dicts
    from playground.lab.curves import cot_gains, write_curves
    from playground.lab.plots import write_report
    from playground.lab.reports import write_csv
    from storage import lab as lab_store
    from storage import open_database

    if not Path(settings.db_path).is_file():
        print(f"error: no database at {settings.db_path}; run 'python app.py lab --tasks FILE' first, "
              "or pass --db", file=sys.stderr)
        return 2
    db = open_database(settings.db_path)
    try:
        if args.run_ids:
            try:
                ids = [int(v) for v in split_list(args.run_ids)]
            except ValueError:
                print(f"error: --run-ids must be whole numbers separated by commas, got {args.run_ids!r}",
                      file=sys.stderr)
                return 2
        else:
            ids = lab_store.latest_run_ids(db, args.run_name)
        rows, items = summarize(db, ids), load_items(db, ids)
        resources = lab_store.model_stats(db, ids)
    finally:
        db.close()
    if not rows:
        which = f"named {args.run_name!r} " if args.run_name else ""
        print(f"error: no stored lab runs {which}in {settings.db_path}; run 'python app.py lab --tasks FILE' first",
              file=sys.stderr)
        return 2
    stem = file_stem(args.run_name or rows[0].name or "lab")
    out_dir = args.out or settings.data_dir / "lab"
    files = {**write_report(rows, items, out_dir, stem), **write_curves(rows, out_dir, stem)}
    gains = cot_gains(rows)
    files["cot_gain_csv"] = write_csv(gains, Path(out_dir) / f"{stem}-cot-gain.csv")
    if args.json:
        print(json.dumps({"runs": summary_dicts(rows), "cot_gain": gains, "models": resources,
                          "files": {k: str(v) for k, v in files.items()}}, indent=2, ensure_ascii=False))
    else:
        print(format_summary(rows))
        print(f"\n{LEGEND}")
        if resources:
            print("\n" + format_resources(resources))
        for path in files.values():
            print(f"wrote {path}")
    return 0


def format_resources(rows: list[dict[str, Any]]) -> str:
    """Per model and invocation: load time, peak memory, speed, time to first token, freed or not."""
    def mb(v: Any) -> str:
        return "-" if v is None else f"{v / 2**20:.0f} MB"

    def num(v: Any, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    table = [["MODEL", "BACKEND", "ITEMS", "LOAD", "RSS BEFORE", "PEAK RSS", "TOKENS/S", "TTFT", "FREED"]]
    for r in rows:
        table.append([r["model_id"], r["backend"], str(r["n_items"] or 0), num(r["load_s"], ".1f") + " s",
                      mb(r["rss_before_bytes"]), mb(r["peak_rss_bytes"]), num(r["tokens_per_s"], ".1f"),
                      num(r["ttft_s"], ".2f") + " s", "yes" if r["freed"] else "no (shared cache)"])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table)
