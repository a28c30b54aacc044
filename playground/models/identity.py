"""What a model really was, for every source, stored on each generation (`model_identity`).

- GGUF file: sha256 of the file (cached per path, mtime and size: hashing a GB file takes seconds).
- Hugging Face folder: sha256 over config.json and every safetensors *header* (names, shapes,
  dtypes and offsets of the tensors), which changes when the weights' layout or file changes
  without reading gigabytes of weights.
- Hub model: the above plus the repository and the commit of the cached snapshot
  (`.../snapshots/<commit>/...`): what was downloaded, not the branch name asked for.
- Remote server: base URL, the served model id and what the server's /v1/models reports for it
  (asked once per server and model per process, short timeout; a server that does not answer is
  recorded as such, never an error: the answer was already given).
"""
from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

from playground.models.spec import ModelSpec

_HEADER_LIMIT = 100 * 1024 * 1024   # a safetensors header larger than this is not one


@lru_cache(maxsize=64)
def _file_sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _file_sha256(str(path), st.st_mtime_ns, st.st_size)


def folder_signature(folder: Path) -> str:
    """sha256 over config.json and each *.safetensors header (8-byte length + JSON), sorted by name."""
    digest = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        digest.update(b"config.json\0" + config.read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        digest.update(weights.name.encode() + b"\0" + _safetensors_header(weights))
    return digest.hexdigest()


def _safetensors_header(path: Path) -> bytes:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return head
        (length,) = struct.unpack("<Q", head)
        return head + (f.read(length) if length <= _HEADER_LIMIT else b"")


def hub_snapshot(path: Path | None) -> str | None:
    """The commit of a huggingface-hub cache path (`.../snapshots/<commit>/...`), if it is one."""
    if path is None:
        return None
    parts = Path(path).parts
    if "snapshots" in parts:
        index = parts.index("snapshots")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


@lru_cache(maxsize=32)
def _server_report(base_url: str, model: str | None, api_key_env: str | None) -> tuple[tuple[str, Any], ...]:
    from playground.errors import PlaygroundError
    from playground.models.remote import list_server_models

    try:
        entries = list_server_models(base_url, api_key_env, timeout_s=2.0)
    except PlaygroundError as exc:
        return (("error", str(exc)),)
    entry = next((e for e in entries if e.get("id") == model), None)
    return (("entry", entry), ("served_ids", [e.get("id") for e in entries]))


def model_identity(spec: ModelSpec) -> dict[str, Any]:
    """A JSON-able description that tells this model apart from any other with the same name."""
    identity: dict[str, Any] = {"model_id": spec.id, "source": spec.source}
    if spec.base_url:
        identity.update(kind="remote", base_url=spec.base_url, served_model=spec.remote_model,
                        server_reports=dict(_server_report(spec.base_url, spec.remote_model, spec.api_key_env)))
        return identity
    if spec.hub_ref:
        identity.update(hub_ref=spec.hub_ref, hub_commit=hub_snapshot(spec.path))
    path = Path(spec.path) if spec.path else None
    if path is not None and path.is_file():
        identity.update(kind="gguf_file", path=str(path), size=path.stat().st_size, sha256=file_sha256(path))
    elif path is not None and path.is_dir():
        identity.update(kind="hf_folder", path=str(path), sha256=folder_signature(path),
                        sha256_of="config.json + safetensors headers")
    else:
        identity.update(kind="hub" if spec.hub_ref else "unknown", path=str(path) if path else None)
    return identity
