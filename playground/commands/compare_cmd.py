"""`python app.py compare "question"`: the Playground's side-by-side panes on the command line.

The panes run through `compare.run_panes`, exactly as the Playground tab runs them (same
scheduling, same batching, same per-pane defaults), so benchmarks and scripts measure what a user
sees. Models are loaded before the clock starts: `wall_s` runs from the Send to the last token.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Callable, Sequence

from playground.compare import (COMPARE_MODES_ORDER, PaneSpec, playground_pane, preload_models, run_panes)
from playground.config import Settings
from playground.context import AppContext
from playground.engine import PaneResult
from playground.errors import PlaygroundError
from playground.prompting.modes import MODES

NAME = "compare"
MAX_PANES = 6


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="run several panes side by side, as the Playground does")
    p.add_argument("question")
    p.add_argument("--model", default=None, help="catalog id for every pane (default: the bundled model)")
    p.add_argument("--models", default=None, help="comma-separated catalog ids: one pane per model and mode")
    p.add_argument("--modes", default=",".join(COMPARE_MODES_ORDER),
                   help=f"comma-separated prompting modes (default: all six: {','.join(COMPARE_MODES_ORDER)})")
    p.add_argument("--backend", default=None, help="llama_cpp | transformers | openai_compat (default: the model's first)")
    p.add_argument("--device", default="cpu", help="cpu | gpu (llama_cpp); cpu | cuda | mps | auto (transformers)")
    p.add_argument("--family", default="arithmetic", help="task family of the default prompting presets "
                   "(the Playground's 'Task family'; default arithmetic)")
    p.add_argument("--preset", default="deterministic", help="sampling preset (presets/sampling)")
    p.add_argument("--shots", type=int, default=4, help="few-shot exemplars (the Playground's default 4)")
    p.add_argument("--samples", type=int, default=5, help="self-consistency paths (the Playground's default 5)")
    p.add_argument("--max-tokens", type=int, default=None, help="new tokens per generation")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object: wall_s and the panes (progress "
                   "lines go to stderr, so stdout stays JSON)")


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def panes_from_args(ctx: AppContext, args: argparse.Namespace) -> list[PaneSpec]:
    """One pane per (model, mode), models outermost; at most the Playground's six."""
    models = _split(args.models) or [args.model or ctx.settings.default_model]
    modes = _split(args.modes)
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise PlaygroundError(f"unknown mode(s) {', '.join(unknown) or '(none given)'} in --modes: "
                              f"choose from {', '.join(MODES)}")
    for model_id in models:
        ctx.catalog.get(model_id)   # a clear error (with suggestions) for an unknown id, before loading
    pairs = [(m, mode) for m in models for mode in modes]
    if len(pairs) > MAX_PANES:
        raise PlaygroundError(f"{len(pairs)} panes ({len(models)} models x {len(modes)} modes): the Playground "
                              f"shows at most {MAX_PANES}; give fewer --models or --modes")
    sampling = ctx.sampling(args.preset, max_new_tokens=args.max_tokens, seed=args.seed)
    return [playground_pane(ctx, model_id, mode, family=args.family, backend=args.backend, device=args.device,
                            shots=args.shots, samples=args.samples, sampling=sampling)
            for model_id, mode in pairs]


def pane_json(pane: PaneSpec, result: PaneResult) -> dict[str, Any]:
    return {"model": pane.model_id, "mode": pane.mode, "answer": result.answer_text,
            "extracted_answer": result.extracted.value if result.extracted else None,
            "n_prompt_tokens": result.n_prompt_tokens, "n_output_tokens": result.n_output_tokens,
            "ttft_s": result.ttft_s, "total_s": result.total_s, "finish_reason": result.finish_reason,
            "error": result.error, "notices": result.notices}


PROGRESS_EVERY_S = 2.0     # a line at least this often while nothing finishes


def compare(ctx: AppContext, panes: Sequence[PaneSpec], question: str,
            progress: Callable[[str], None] | None = None) -> tuple[float, list[PaneResult]]:
    """(wall seconds from the Send to the last pane's end, final results); models preloaded first.

    `progress` gets a line (panes finished, tokens so far) when a pane finishes and every
    PROGRESS_EVERY_S meanwhile: a run of several minutes is not silent."""
    preload_models(ctx, panes)
    start = last_shown = time.perf_counter()
    results: list[PaneResult] = []
    finished_shown = 0
    for results in run_panes(ctx, panes, question):
        if progress is None:
            continue
        now = time.perf_counter()
        finished = sum(1 for r in results if r.done)
        if finished != finished_shown or now - last_shown >= PROGRESS_EVERY_S:
            finished_shown, last_shown = finished, now
            progress(progress_line(results, len(panes), now - start))
    return time.perf_counter() - start, results


def progress_line(results: Sequence[PaneResult], n_panes: int, elapsed_s: float) -> str:
    finished = sum(1 for r in results if r.done)
    tokens = sum(r.n_output_tokens for r in results)
    return f"compare: {finished}/{n_panes} panes finished, {tokens} tokens so far ({elapsed_s:.1f} s)"


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = AppContext.create(settings)
    try:
        panes = panes_from_args(ctx, args)
        wall, results = compare(ctx, panes, args.question, progress=_to_stderr)
    finally:
        ctx.cache.clear()   # free models now, not in interpreter shutdown (llama.cpp dislikes that)
    if args.json:
        print(json.dumps({"question": args.question, "wall_s": wall,
                          "panes": [pane_json(p, r) for p, r in zip(panes, results, strict=True)]}, ensure_ascii=False, indent=2))
    else:
        _print_text(panes, results, wall)
    return 1 if any(r.error for r in results) else 0


def _seconds(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "-"


def _print_text(panes: Sequence[PaneSpec], results: Sequence[PaneResult], wall: float) -> None:
    for i, (pane, result) in enumerate(zip(panes, results, strict=True), 1):
        print(f"=== pane {i}: {pane.label()}")
        print(result.answer_text.strip() if not result.error else f"error: {result.error}")
        for notice in result.notices:
            print(f"note: {notice}", file=sys.stderr)
        extracted = result.extracted.value if result.extracted else "-"
        print(f"[answer: {extracted} | prompt {result.n_prompt_tokens} tok | output {result.n_output_tokens} tok | "
              f"ttft {_seconds(result.ttft_s)} | total {_seconds(result.total_s)} | {result.finish_reason}]")
        print()
    print(f"wall time {wall:.2f}s for {len(panes)} panes (model loading excluded)")
