"""Run every benchmark in bench/ and write docs/benchmarks.md.

Each benchmark measures its own baseline in the same run and reports ratios to it, so the
figures compare like with like on whatever machine runs this. `--quick` uses smaller sizes.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import re
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, machine_info  # noqa: E402

# (module, title, what it compares, full-size kwargs, quick kwargs)
BENCHES: tuple[tuple[str, str, str, dict, dict], ...] = (
    ("bench_app", "Streaming: app vs raw llama-cpp-python",
     "tokens/s and time to first token through the app's engine vs `Llama.create_completion(stream=True)`",
     {"reps": 7, "max_tokens": 128}, {"reps": 3, "max_tokens": 64}),
    ("bench_contention", "A generation beside busy processes",
     "a 600-token prefill + 128 greedy tokens through the app (threads follow the free cores) vs raw "
     "llama-cpp-python on 1 and 2 threads, with 0, 1 and 2 busy processes beside it; targets: >= 0.9x the faster "
     "raw run at every level, >= 0.97x raw 2 threads on a quiet machine",
     {"reps": 3, "max_tokens": 128}, {"reps": 1, "max_tokens": 128}),
    ("bench_readme_round", "The README's round: six panes, quiet and busy",
     "README step 3 (Compare modes, Send to all: six panes, the apples question) on the default model, on a quiet "
     "machine and beside two busy processes, vs the raw batched loop doing the same generations; target: busy <= 2x "
     "quiet", {"reps": 3}, {"reps": 1}),
    ("bench_grid", "Pane grid vs sequential",
     "four prompting modes on one model, all at once vs one after another",
     {"reps": 3, "max_tokens": 48}, {"reps": 1, "max_tokens": 32}),
    ("bench_batch", "Side by side on one model: batched panes",
     "4 same-model panes vs the raw batched loop of llama-cpp-python's low-level API, and 6 panes' first "
     "tokens vs each pane alone", {"reps": 3, "max_tokens": 96}, {"reps": 1, "max_tokens": 48}),
    ("batch_determinism", "Batched decoding keeps greedy answers",
     "each sequence of a batched llama.cpp context (2, 3, 4, 6 sequences; together, joining and leaving) vs its solo "
     "run, token for token, on the bundled Q4_1 file and the default F16 copy",
     {"widths": (2, 3, 4, 6), "n_new": 64}, {"widths": (2, 4, 6), "n_new": 32}),
    ("batch_rows", "Where the batched context's per-token cost goes",
     "rows of one llama_decode, the six-stream context and gaps in sequence ids, each against one row, one "
     "sequence, consecutive ids (raw llama-cpp-python, bundled Q4_1)", {"reps": 3, "steps": 16, "max_tokens": 32}, {"reps": 2, "steps": 8, "max_tokens": 16}),
    ("bench_votes", "Votes per second",
     "8 concurrent writers vs 1 sequential writer, battle + vote per transaction, zero lost",
     {"threads": 8, "votes_per_thread": 1000}, {"threads": 8, "votes_per_thread": 250}),
    ("bench_ranking", "Ranking on 1M battles",
     "Bradley-Terry fit + 1,000-round bootstrap and online Elo vs a per-battle fit in the style of Arena's code",
     {"n_battles": 1_000_000, "n_contestants": 20, "with_db": True},
     {"n_battles": 200_000, "n_contestants": 20, "with_db": False}),
    ("bench_priors", "Rating prior study",
     "mean error per contestant with its 95% interval (2,000 seeds) and 95% interval coverage (200 seeds) on "
     "synthetic battles with known strengths: plain MLE vs the old prior, and tie-as-half-win vs Davidson's tie "
     "model", {"bias_seeds": 2000, "seeds": 200, "rounds": 500, "tie_seeds": 10},
     {"bias_seeds": 200, "seeds": 20, "rounds": 200, "tie_seeds": 4, "figure": False}),
    ("bench_leaderboard_tab", "Leaderboard tab first render",
     "the tab's first render with 10,000 battles vs the old Refresh (all heatmaps and download files built eagerly)",
     {"n_battles": 10_000, "n_contestants": 40}, {"n_battles": 10_000, "n_contestants": 40}),
    ("bench_export", "DPO export",
     "100,000 votes streamed to JSONL vs one query per vote", {"n_votes": 100_000}, {"n_votes": 20_000}),
    ("bench_import", "Importing Chatbot Arena battles",
     "a million synthetic Arena-format battles (JSONL) into a fresh database vs a raw executemany of the same "
     "rows into bare tables; target <= 20 s per million", {"n_battles": 1_000_000}, {"n_battles": 100_000}),
    ("bench_counted_votes", "Judging rules' cost",
     "rankings reading the counted_votes view vs the votes table; bulk inserts with vs without the judging "
     "triggers", {"n_battles": 200_000}, {"n_battles": 50_000}),
    ("bench_lab", "Lab items/s", "the bundled model on GSM8K items, app vs raw llama-cpp-python", {}, {}),
    ("bench_judge", "Judgements/s", "the bundled model as judge (both orders), app vs raw llama-cpp-python",
     {"battles": 6, "max_tokens": 64}, {"battles": 3, "max_tokens": 32}),
    ("bench_remote", "Remote server vs in-process",
     "llama-cpp-python's OpenAI-compatible server vs in-process llama-cpp-python; 4 concurrent users", {}, {}),
    ("gpu_check", "GPU vs CPU",
     "both backends on the GPU (offload verified from llama.cpp's log and torch's tensors) vs the CPU in the "
     "same run; \"not yet measured\" on a machine without a GPU",
     {"tokens": 128, "reps": 3}, {"tokens": 64, "reps": 1}),
    ("bench_f16", "The default model: shipped Q4_1 vs its F16 copy",
     "the F16 build's cost, tokens/s and answers of the bundled SmolLM2-135M as Q4_1 and as F16",
     {"reps": 3, "max_tokens": 96}, {"reps": 1, "max_tokens": 64}),
    ("bench_dpo_effect", "From votes to a tuned model: a measured effect",
     "DPO (LoRA) on votes built from the bundled model's own answers (chosen: first word \"The\"), the property's "
     "rate on held-out prompts before vs after with 95% intervals; CPU time per step, LoRA vs full fine-tuning",
     {}, {"train_subjects": 8, "held_subjects": 4, "per_subject": 2, "samples": 4, "per_prompt": 2,
          "answer_tokens": 12, "eval_samples": 4, "epochs": 1.0, "timing_steps": 3}),
)


def run_one(module_name: str, kwargs: dict) -> tuple[str, dict | None, float]:
    """Import and run one benchmark, capturing what it prints."""
    out = io.StringIO()
    start = time.perf_counter()
    figures = None
    with contextlib.redirect_stdout(out):
        try:
            module = importlib.import_module(module_name)
            figures = module.main(**kwargs)
            if hasattr(module, "report") and figures is not None:
                print(module.report(figures))
        except ModuleNotFoundError as exc:
            print(f"(not available: {exc})")
        except Exception:
            print(traceback.format_exc())
    return out.getvalue().strip(), figures, time.perf_counter() - start


def stamp() -> str:
    """When a benchmark ended and the machine's 1-minute load then (a shared machine skews wall times)."""
    try:
        load = f"{os.getloadavg()[0]:.2f}"
    except OSError:
        load = "?"
    return f"run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC at load {load}"


def _block(name: str, what: str, text: str, figures: dict | None, seconds: float, when: str) -> str:
    """One benchmark's generated block, between markers, stamped with when it ran and the load then."""
    lines = [f"<!-- bench:{name} -->",
             f"{what} (`bench/{name}.py`, {seconds:.0f} s, {when}).", "", "```", text or "(no output)", "```", ""]
    if figures:
        lines += ["| figure | value |", "| --- | --- |"]
        for key, value in figures.items():
            shown = f"{value:,.4g}" if isinstance(value, float) else str(value)
            lines.append(f"| {key} | {shown} |")
        lines.append("")
    lines.append(f"<!-- /bench:{name} -->")
    return "\n".join(lines)


def _split_sections(text: str) -> tuple[str, list[str]]:
    """The text before the first '## ' heading, and each '## ' section whole."""
    parts = re.split(r"(?m)^(?=## )", text)
    return parts[0], parts[1:]


def render(results: list[tuple[str, str, str, str, dict | None, float, str]], quick: bool, existing: str = "") -> str:
    """The benchmarks page with the fresh results put in, everything hand-written kept.

    A benchmark's output lives between `<!-- bench:NAME -->` markers: a run replaces only that block, so prose
    written around it (what the figures mean, what was not measured) survives. An older generated section
    without markers (one that cites "(`bench/NAME.py`, N s") is replaced whole; a new benchmark is appended.
    """
    info = machine_info()
    head = ["# Benchmarks", "",
            "Written by `python bench/run.py`" + (" --quick" if quick else "") +
            f" (last run {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; each block says when it ran and the "
            "load then) and by hand around its blocks. Every figure is compared with a baseline measured in the "
            "same run on the same machine; wall times are noisy when the machine is shared, ratios much less so.",
            "", ""]
    machine = "\n".join(["## Machine", "", "| | |", "| --- | --- |",
                         *[f"| {k} | {v} |" for k, v in info.items()], "", ""])
    _, sections = _split_sections(existing)
    sections = [s for s in sections if not s.startswith("## Machine")]
    fresh = {name: (title, _block(name, what, text, figures, seconds, when))
             for name, title, what, text, figures, seconds, when in results}
    out = []
    for section in sections:
        for name in list(fresh):
            title, block = fresh[name]
            marked = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
            if marked.search(section):
                section = marked.sub(lambda _m, b=block: b, section, count=1)
                del fresh[name]
            elif re.search(rf"\(`bench/{re.escape(name)}\.py`, \d+ s", section):
                section = f"## {title}\n\n{block}\n\n"
                del fresh[name]
        out.append(section if section.endswith("\n") else section + "\n")
    out.extend(f"## {title}\n\n{block}\n\n" for title, block in fresh.values())
    return "\n".join(head) + machine + "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (minutes instead of tens of minutes)")
    parser.add_argument("--only", nargs="*", help="run only these benchmark modules")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    results = []
    for name, title, what, full, quick in BENCHES:
        if args.only and name not in args.only:
            continue
        print(f"== {title} ({name})", flush=True)
        text, figures, seconds = run_one(name, quick if args.quick else full)
        print(text, flush=True)
        results.append((name, title, what, text, figures, seconds, stamp()))
    existing = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
    args.out.write_text(render(results, args.quick, existing), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
