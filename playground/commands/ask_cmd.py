"""`python app.py ask "question"`: one answer from one model under one prompting mode."""
from __future__ import annotations

import argparse
import json
import sys

from playground.compare import PaneSpec, run_pane
from playground.config import Settings
from playground.context import AppContext
from playground.engine import PaneResult
from playground.prompting.modes import MODES

NAME = "ask"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="ask one model a question and stream the answer")
    p.add_argument("question")
    p.add_argument("--model", default=None, help="catalog id or hf: reference (default: the bundled model)")
    p.add_argument("--backend", default=None, help="llama_cpp | transformers | openai_compat (default: the model's first)")
    p.add_argument("--device", default="cpu", help="cpu | gpu (llama_cpp); cpu | cuda | mps | auto (transformers)")
    p.add_argument("--mode", default="zero_shot", choices=MODES, help="prompting mode")
    p.add_argument("--preset", default="deterministic", help="sampling preset (presets/sampling)")
    p.add_argument("--prompt-preset", default=None, help="prompting preset id (default: the mode's default)")
    p.add_argument("--shots", type=int, default=None, help="few-shot exemplars (0-8)")
    p.add_argument("--samples", type=int, default=None, help="self-consistency paths")
    p.add_argument("--trigger", default=None, help="zero-shot CoT trigger")
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument("--temperature", type=float, default=None)
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--min-p", type=float, default=None)
    p.add_argument("--repeat-penalty", type=float, default=None)
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=None, help="stop string (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    remote = p.add_argument_group("remote server (OpenAI-compatible; no catalog entry needed)")
    remote.add_argument("--base-url", default=None,
                        help="e.g. http://127.0.0.1:8000/v1; --model is then the server's model name "
                             "(default: the first it lists)")
    remote.add_argument("--api-key-env", default=None, help="name of the env var holding the server's API key")
    remote.add_argument("--remote-base-model", action="store_true",
                        help="the served model is a base model: plain-text frames to /v1/completions")


def pane_from_args(ctx: AppContext, args: argparse.Namespace) -> PaneSpec:
    sampling = ctx.sampling(args.preset, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                            min_p=args.min_p, repeat_penalty=args.repeat_penalty,
                            max_new_tokens=args.max_tokens, seed=args.seed,
                            stop=tuple(args.stop) if args.stop else None)
    return PaneSpec(model_id=args.model or ctx.settings.default_model, mode=args.mode, backend=args.backend,
                    device=args.device, preset_id=args.prompt_preset, shots=args.shots, samples=args.samples,
                    trigger=args.trigger, system_prompt=args.system, sampling=sampling)


def result_json(pane: PaneSpec, result: PaneResult, backend: str) -> dict:
    return {
        "model": pane.model_id, "backend": backend, "device": result.device or pane.device,
        "device_requested": pane.device, "ran_on": result.ran_on, "mode": pane.mode,
        "answer": result.answer_text, "extracted_answer": result.extracted.value if result.extracted else None,
        "exact_prompt": result.exact_prompt, "n_prompt_tokens": result.n_prompt_tokens,
        "n_output_tokens": result.n_output_tokens, "ttft_s": result.ttft_s, "total_s": result.total_s,
        "tokens_per_s": result.tokens_per_s, "finish_reason": result.finish_reason,
        "samples": result.samples_json(), "notices": result.notices, "sampling": pane.sampling.to_dict(),
    }


def run(args: argparse.Namespace, settings: Settings) -> int:
    ctx = AppContext.create(settings)
    try:
        return _ask(ctx, args)
    finally:
        ctx.cache.clear()   # free models now, not in interpreter shutdown (llama.cpp dislikes that)


def _remote_model_id(ctx: AppContext, args: argparse.Namespace) -> str:
    """--base-url: build the catalog entry on the fly (asks the server's /v1/models first)."""
    from playground.models.remote import add_remote_model

    spec = add_remote_model(ctx.catalog, args.base_url, args.model, api_key_env=args.api_key_env,
                            is_chat=not args.remote_base_model)
    return spec.id


def _ask(ctx: AppContext, args: argparse.Namespace) -> int:
    if getattr(args, "base_url", None):
        args.model = _remote_model_id(ctx, args)
    pane = pane_from_args(ctx, args)
    backend = pane.backend or ctx.catalog.get(pane.model_id).backends[0]
    result, shown = PaneResult(), 0
    for result in run_pane(ctx, pane, args.question):
        if not args.json and not result.samples:
            text = result.answer_text
            sys.stdout.write(text[shown:])
            sys.stdout.flush()
            shown = len(text)
    if args.json:
        print(json.dumps(result_json(pane, result, backend), ensure_ascii=False, indent=2))
        return 0
    if result.samples:
        for i, path in enumerate(result.samples, 1):
            print(f"--- path {i} (answer: {path.answer})\n{path.text.strip()}")
        print("--- tally: " + ", ".join(f"{a}: {n}" for a, n in result.tally))
    print()
    for notice in result.notices:
        print(f"note: {notice}", file=sys.stderr)
    answer = f"answer: {result.extracted.value} | " if result.extracted else ""  # none asked, none shown
    tps = f"{result.tokens_per_s:.1f}" if result.tokens_per_s else "-"
    ttft = f"{result.ttft_s:.3f}s" if result.ttft_s is not None else "-"
    print(f"[{answer}prompt {result.n_prompt_tokens} tok | output {result.n_output_tokens} tok | "
          f"ttft {ttft} | {tps} tok/s | {result.finish_reason} | ran on {result.ran_on or '?'}]", file=sys.stderr)
    return 0
