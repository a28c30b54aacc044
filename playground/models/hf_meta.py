"""Metadata of a Hugging Face model folder, read from its files without loading any weights.

The parameter count comes from the safetensors headers (8-byte little-endian length + JSON with
each tensor's shape), so it is exact and costs a few kilobytes of reading, whatever the model size.
"""
from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

from playground.errors import ModelError

SAFETENSORS_INDEX = "model.safetensors.index.json"
TRAINING_FILE = "training.json"   # written by training/card.py next to a model trained here
_MAX_HEADER_BYTES = 100_000_000          # the safetensors format's own limit
_CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length",
                 "n_ctx", "max_seq_len", "model_max_length")
_DTYPE_NAMES = {
    "float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16",
    "float64": "fp64", "F32": "fp32", "F16": "fp16", "BF16": "bf16", "F64": "fp64",
    "I8": "int8", "U8": "uint8", "F8_E4M3": "fp8", "F8_E5M2": "fp8",
}
_SNAPSHOT_RE = re.compile(r"^[0-9a-f]{40}$")


def is_hf_folder(path: Path) -> bool:
    """A folder transformers can load: config.json plus safetensors weights."""
    p = Path(path)
    if not p.is_dir() or not (p / "config.json").is_file():
        return False
    return (p / SAFETENSORS_INDEX).is_file() or any(p.glob("*.safetensors"))


def read_hf_folder(folder: Path) -> dict[str, Any]:
    """architecture, n_params, context_length, quantization, is_chat, display_name, file_size.

    Raises ModelError naming config.json when it is missing or not valid JSON; every other field
    falls back to None when its file is absent or unreadable.
    """
    folder = Path(folder)
    config = _read_config(folder)
    text_config = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    headers = _safetensors_headers(folder)
    return {
        "architecture": _architecture(config, text_config),
        "n_params": _count_params(headers),
        "context_length": _context_length(config, text_config),
        "quantization": _quantization(config, text_config, headers),
        "is_chat": has_chat_template(folder),
        "display_name": display_name(folder),
        "file_size": _weights_size(folder),
    }


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelError(f"{path} not found: a Hugging Face model folder needs config.json "
                         "(download the whole model repository, not only the weights)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}. Re-download the model's config.json") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} is not a JSON object: re-download the model's config.json")
    return data


def _architecture(config: dict[str, Any], text_config: dict[str, Any]) -> str | None:
    for source in (config, text_config):
        archs = source.get("architectures")
        if isinstance(archs, list) and archs and isinstance(archs[0], str):
            return archs[0]
    model_type = config.get("model_type") or text_config.get("model_type")
    return str(model_type) if model_type else None


def _context_length(config: dict[str, Any], text_config: dict[str, Any]) -> int | None:
    for source in (config, text_config):
        for key in _CONTEXT_KEYS:
            value = source.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def _quantization(config: dict[str, Any], text_config: dict[str, Any],
                  headers: list[dict[str, Any]]) -> str | None:
    """The quantization method if any, else the stored dtype (config first, then tensors)."""
    qconfig = config.get("quantization_config") or text_config.get("quantization_config")
    if isinstance(qconfig, dict):
        method = qconfig.get("quant_method") or qconfig.get("quantization_method")
        if method == "bitsandbytes":
            bits = "4bit" if qconfig.get("load_in_4bit") else "8bit" if qconfig.get("load_in_8bit") else ""
            return f"bitsandbytes-{bits}" if bits else "bitsandbytes"
        if method:
            bits = qconfig.get("bits")
            return f"{method}-{bits}bit" if isinstance(bits, int) else str(method)
    for source in (config, text_config):
        dtype = source.get("dtype") or source.get("torch_dtype")
        if isinstance(dtype, str) and dtype in _DTYPE_NAMES:
            return _DTYPE_NAMES[dtype]
    return _dominant_header_dtype(headers)


def _dominant_header_dtype(headers: list[dict[str, Any]]) -> str | None:
    sizes: dict[str, int] = {}
    for header in headers:
        for name, info in header.items():
            if name == "__metadata__" or not isinstance(info, dict):
                continue
            dtype = str(info.get("dtype", ""))
            sizes[dtype] = sizes.get(dtype, 0) + _numel(info.get("shape"))
    if not sizes:
        return None
    dtype = max(sizes, key=sizes.__getitem__)
    return _DTYPE_NAMES.get(dtype, dtype.lower() or None)


def has_chat_template(folder: Path) -> bool:
    """True iff the folder ships a chat template (tokenizer_config.json, .jinja or .json file)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    if (folder / "additional_chat_templates").is_dir() and any((folder / "additional_chat_templates").iterdir()):
        return True
    path = folder / "tokenizer_config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and bool(data.get("chat_template"))


def display_name(folder: Path) -> str:
    """The folder name, or the repo name for a Hub cache snapshot (.../models--o--r/snapshots/<sha>)."""
    folder = Path(folder)
    if _SNAPSHOT_RE.match(folder.name) and folder.parent.name == "snapshots":
        repo_dir = folder.parent.parent.name
        if repo_dir.startswith("models--"):
            return repo_dir.split("--")[-1]
    return folder.name


def _safetensors_files(folder: Path) -> list[Path]:
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            weight_map = {}
        if isinstance(weight_map, dict) and weight_map:
            return [folder / name for name in sorted(set(weight_map.values()))]
    return sorted(folder.glob("*.safetensors"))


def _safetensors_headers(folder: Path) -> list[dict[str, Any]]:
    """Every shard's JSON header; empty if a shard is missing or unreadable (count unknown)."""
    headers = []
    for path in _safetensors_files(folder):
        header = read_safetensors_header(path)
        if header is None:
            return []
        headers.append(header)
    return headers


def read_safetensors_header(path: Path) -> dict[str, Any] | None:
    """The JSON header of one .safetensors file, or None if it is not a readable one."""
    try:
        with open(path, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                return None
            (length,) = struct.unpack("<Q", raw_len)
            if length <= 0 or length > _MAX_HEADER_BYTES:
                return None
            raw = fh.read(length)
    except OSError:
        return None
    if len(raw) != length:
        return None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return header if isinstance(header, dict) else None


def _numel(shape: Any) -> int:
    if not isinstance(shape, list) or not all(isinstance(d, int) for d in shape):
        return 0
    return math.prod(shape)


def _count_params(headers: list[dict[str, Any]]) -> int | None:
    if not headers:
        return None
    total = sum(_numel(info.get("shape")) for header in headers for name, info in header.items()
                if name != "__metadata__" and isinstance(info, dict))
    return total or None


def _weights_size(folder: Path) -> int | None:
    files = _safetensors_files(folder)
    try:
        return sum(p.stat().st_size for p in files) or None
    except OSError:
        return None


def read_tuned_from(folder: Path) -> str | None:
    """The base model id of a model trained here, or None (no or unreadable training.json)."""
    try:
        facts = json.loads((Path(folder) / TRAINING_FILE).read_text(encoding="utf-8"))
        return str(facts["base_model"]["id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
