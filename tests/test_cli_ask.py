"""`python app.py ask` through a real process, every prompting mode, on the bundled model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
QUESTION = "A box has 6 pens. Ann adds 5 pens. How many pens are in the box?"


def ask(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLAYGROUND_DB": str(Path(os.environ.get("TMPDIR", "/tmp")) / "cli-ask.db")}
    return subprocess.run([sys.executable, "app.py", "ask", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("mode, extra", [
    ("zero_shot", []), ("few_shot", ["--shots", "2"]), ("zero_shot_cot", []),
    ("few_shot_cot", ["--shots", "1"]), ("instruction", []),
    ("self_consistency", ["--shots", "1", "--samples", "2", "--seed", "3"]),
])
def test_ask_json_every_mode(bundled_gguf, mode, extra):
    out = ask(QUESTION, "--mode", mode, "--max-tokens", "40", "--json", *extra)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == mode and data["model"] == "smollm2-135m-instruct-f16"   # the default model
    assert data["exact_prompt"].startswith("<|im_start|>") and QUESTION in data["exact_prompt"]
    assert data["n_prompt_tokens"] > 0 and data["n_output_tokens"] > 0
    assert data["finish_reason"] in ("stop", "length")
    assert "extracted_answer" in data and data["ttft_s"] > 0
    if mode == "few_shot":
        assert data["exact_prompt"].count("<|im_start|>user") == 3
    if mode == "self_consistency":
        assert len(data["samples"]["paths"]) == 2
        assert sum(n for _, n in data["samples"]["tally"]) == 2


def test_ask_streams_text_and_prints_figures(bundled_gguf):
    out = ask("Say hello.", "--max-tokens", "12")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip()
    assert "prompt" in out.stderr and "tok/s" in out.stderr and "output" in out.stderr


def test_ask_unknown_model_is_a_clear_error():
    out = ask("hi", "--model", "smollm-135m-instruct")
    assert out.returncode == 2
    assert "unknown model 'smollm-135m-instruct'" in out.stderr
    assert "Did you mean: smollm2-135m-instruct" in out.stderr
    assert "Traceback" not in out.stderr


def test_ask_unknown_sampling_preset():
    out = ask("hi", "--preset", "wild")
    assert out.returncode == 2 and "unknown sampling preset 'wild'" in out.stderr


def test_gpu_request_on_cpu_machine_falls_back_with_warning(bundled_gguf):
    from playground.devices import gpu_summary  # noqa: F401  (the module exists)
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this machine has GPU offload: the fallback cannot be shown here")
    out = ask("Say hi.", "--device", "gpu", "--max-tokens", "4", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert any("GPU" in n and "CPU" in n for n in data["notices"]), data["notices"]
