"""`python app.py models export-hf`: the bundled GGUF as a plain Hugging Face folder that transformers
loads without the quantised flag (which makes TRL refuse to train), with the same logits."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUNDLED = "smollm2-135m-instruct"


def test_export_hf_writes_a_folder_transformers_loads_unflagged_with_the_same_logits(tmp_path, bundled_gguf):
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "smollm2-hf"
    run = subprocess.run([sys.executable, "app.py", "models", "export-hf", BUNDLED, "--out", str(out),
                          "--db", str(tmp_path / "p.db")], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not list(tmp_path.glob(".smollm2-hf.partial-*"))

    exported = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not getattr(exported, "is_quantized", False) and getattr(exported, "hf_quantizer", None) is None
    assert getattr(exported.config, "quantization_config", None) is None
    gguf = AutoModelForCausalLM.from_pretrained(bundled_gguf.parent, gguf_file=bundled_gguf.name, dtype=torch.float32)
    assert gguf.is_quantized    # what TRL refuses: the reason for the command
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = exported(ids).logits, gguf(ids).logits
    assert torch.allclose(a, b, atol=1e-4), float((a - b).abs().max())
    assert tokenizer.decode(ids[0]) == AutoTokenizer.from_pretrained(
        bundled_gguf.parent, gguf_file=bundled_gguf.name).decode(ids[0])

    again = subprocess.run([sys.executable, "app.py", "models", "export-hf", BUNDLED, "--out", str(out),
                            "--db", str(tmp_path / "p.db")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1 and "already exists" in again.stderr    # never overwrites a folder
