"""`python app.py compare`: the Playground's panes on the command line, on the bundled model."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from playground.backends.cache import ModelCache
from playground.commands.compare_cmd import compare
from playground.compare import COMPARE_MODES_ORDER, playground_pane, run_pane
from playground.sampling import SamplingParams

REPO = Path(__file__).resolve().parent.parent
QUESTION = "A box has 6 pens. Ann adds 5 pens. How many pens are in the box?"
PANE_KEYS = {"model", "mode", "answer", "extracted_answer", "n_prompt_tokens", "n_output_tokens", "ttft_s", "total_s"}


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLAYGROUND_DB": str(Path(os.environ.get("TMPDIR", "/tmp")) / "cli-compare.db")}
    # one thread: on a shared CI machine two llama.cpp threads mostly wait for each other
    return subprocess.run([sys.executable, "app.py", "compare", "--threads", "1", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_compare_json_has_every_field(bundled_gguf):
    out = run_cli(QUESTION, "--modes", "zero_shot,few_shot,self_consistency", "--samples", "2",
                  "--max-tokens", "24", "--seed", "1", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)          # stdout is pure JSON: progress went to stderr
    progress = [line for line in out.stderr.splitlines() if line.startswith("compare: ")]
    assert progress and progress[-1].startswith("compare: 3/3 panes finished"), out.stderr
    assert "tokens so far" in progress[-1]
    assert data["wall_s"] > 0 and len(data["panes"]) == 3
    assert [p["mode"] for p in data["panes"]] == ["zero_shot", "few_shot", "self_consistency"]
    for pane in data["panes"]:
        assert PANE_KEYS <= set(pane) and pane["model"] == "smollm2-135m-instruct-f16"
        assert pane["answer"].strip() and pane["n_prompt_tokens"] > 0 and pane["n_output_tokens"] > 0
        assert 0 < pane["ttft_s"] <= pane["total_s"] <= data["wall_s"] + 0.05
    assert data["panes"][1]["n_prompt_tokens"] > data["panes"][0]["n_prompt_tokens"]   # exemplars


def test_compare_text_output_and_bad_modes(bundled_gguf):
    out = run_cli("Say hello.", "--modes", "zero_shot,instruction", "--max-tokens", "8")
    assert out.returncode == 0, out.stderr
    assert "=== pane 1: smollm2-135m-instruct-f16 · zero_shot" in out.stdout
    assert "ttft" in out.stdout and "wall time" in out.stdout
    bad = run_cli("hi", "--modes", "zero_shot,telepathy")
    assert bad.returncode == 2 and "unknown mode(s) telepathy" in bad.stderr and "Traceback" not in bad.stderr
    many = run_cli("hi", "--models", "smollm2-135m-instruct,smollm2-135m-instruct", "--modes",
                   ",".join(COMPARE_MODES_ORDER))
    assert many.returncode == 2 and "at most 6" in many.stderr


def test_compare_answers_equal_each_pane_alone(app_ctx):
    """Six panes in 'compare modes' give, pane for pane, the answer each gives alone (greedy; the
    self-consistency samples seeded)."""
    ctx = dataclasses.replace(app_ctx, cache=ModelCache(budget_bytes=1 << 30, threads=1, n_ctx=2048))
    sampling = SamplingParams(max_new_tokens=16, seed=5)
    panes = [playground_pane(ctx, "smollm2-135m-instruct", m, samples=2, sampling=sampling)
             for m in COMPARE_MODES_ORDER]
    try:
        wall, together = compare(ctx, panes, QUESTION)
        assert wall > 0 and all(r.done and r.error is None for r in together), [r.error for r in together]
        for pane, result in zip(panes, together, strict=True):
            alone = None
            for alone in run_pane(ctx, pane, QUESTION):
                pass
            assert (alone.answer_text, alone.n_output_tokens) == (result.answer_text, result.n_output_tokens), \
                pane.mode
    finally:
        ctx.cache.clear()
