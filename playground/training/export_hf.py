"""A catalog model as a plain Hugging Face folder (config, tokenizer, safetensors) for scripts of one's own.

transformers loads a GGUF (`gguf_file=`) dequantised to float32 but keeps it flagged as quantised,
so TRL refuses to train it and `save_pretrained` refuses to write it. The app's training clears
that flag (`dpo.load_trainable`); this writes the cleared model once, so that
`AutoModelForCausalLM.from_pretrained(DIR)` in anyone's TRL script gets ordinary float32 weights.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from playground.errors import ModelError, PlaygroundError
from playground.models.spec import ModelSpec
from playground.training.dpo import load_trainable


def export_hf_folder(spec: ModelSpec, out: Path) -> Path:
    """Write `spec` as an HF folder at `out` (a new or empty folder), through a temporary folder beside it."""
    out = Path(out)
    if spec.path is None or not Path(spec.path).exists():
        raise ModelError(f"{spec.id} is not on this disk ({spec.source}): only a local GGUF or model folder can be "
                         "exported; download it first (Models tab)")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PlaygroundError(f"{out} already exists and is not an empty folder: choose a new --out folder")
    tokenizer, model = load_trainable(spec, "cpu")
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except OSError as exc:
        raise PlaygroundError(f"cannot write {out}: {exc.strerror or exc}; check the folder is writable and has "
                              "space") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
