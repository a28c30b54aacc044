"""ModelSpec: what the catalog knows about one model, read from its files, not its name."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry.

    `path` is the GGUF file or HF folder when it is on disk; None for a hub reference that is
    not downloaded yet (then the metadata fields are None until it is).
    """

    id: str
    display_name: str
    source: str                      # bundled | package | local | hub | remote
    backends: tuple[str, ...]        # first is the default
    path: Path | None = None
    format: str = "gguf"             # gguf | hf
    hub_ref: str | None = None       # hf:owner/repo[/file.gguf]
    n_params: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    is_chat: bool | None = None      # has a chat template (instruct) or not (base)
    architecture: str | None = None
    file_size: int | None = None
    note: str = ""
    base_url: str | None = None      # remote (OpenAI-compatible) server, e.g. http://127.0.0.1:8000/v1
    remote_model: str | None = None  # the model name the server knows
    api_key_env: str | None = None   # name of the env var holding the API key (never the key itself)
    built_from: Path | None = None   # bundled file this entry is derived from on first use (F16 copy)
    tuned_from: str | None = None    # base model id of a model trained here (its training.json)
    provenance: str = ""             # who made the file, from what (third-party repackagings say so)
    license: str | None = None       # the original model's licence, when the catalog knows it
    original_model: str | None = None   # the model a repackaged file comes from (e.g. Qwen/Qwen2.5-...)

    @property
    def available(self) -> bool:
        if self.source == "remote":
            return True
        return self.path is not None and Path(self.path).exists()

    @property
    def kind(self) -> str:
        return {True: "instruct", False: "base"}.get(self.is_chat, "unknown")

    def params_label(self) -> str:
        if not self.n_params:
            return "?"
        n = float(self.n_params)
        for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if n >= size:
                return f"{n / size:.3g}{unit}"
        return str(self.n_params)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path) if self.path else None
        data["built_from"] = str(self.built_from) if self.built_from else None
        data["backends"] = list(self.backends)
        data["kind"] = self.kind
        data["available"] = self.available
        return data


def status_word(spec: ModelSpec) -> str:
    """One word or two: can it run now, and if not, what happens on first use (Models tab, `models`)."""
    if spec.available:
        return "ready"
    if spec.built_from is not None:
        return "assembled on first use" if spec.source == "package" else "built on first use"
    if spec.source == "hub":
        return "not downloaded"
    return "missing"


def slug(text: str) -> str:
    """A catalog id part: lower case, runs of other characters as '-'."""
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-") or "model"
