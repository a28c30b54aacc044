"""Reading a GGUF file's header: metadata and tensor table, without loading weights.

`gguf.GGUFReader` maps the whole file and builds numpy views of every token and merge string
(about 10 s for a 100 MB model); the catalog only needs a few keys, so this walks the header
once with `struct` and skips the arrays it does not need (about 50 ms).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from playground.errors import ModelError

GGUF_MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}  # needed to name the BOS/EOS tokens


@dataclass(frozen=True)
class GGUFInfo:
    """What the catalog and backends need to know about a GGUF file."""

    path: Path
    architecture: str | None
    name: str | None
    n_params: int
    quantization: str | None
    context_length: int | None
    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    add_bos: bool
    file_size: int
    metadata: dict[str, Any]
    tensors: tuple[tuple[str, int, int], ...] = ()   # (name, elements, bytes in the file) of every tensor
    layouts: tuple[tuple[int, tuple[int, ...]], ...] = ()   # (ggml type, dims ne0, ne1, ...), same order

    @property
    def is_chat(self) -> bool:
        return bool(self.chat_template)


class _Reader:
    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ModelError(f"{self.path}: truncated GGUF header (the file ends early). "
                             "Download or copy the file again.")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.unpack("<Q")
        if n > 1 << 28:
            raise ModelError(f"{self.path}: corrupt GGUF header (string of {n} bytes)")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type, count = self.unpack("<I"), self.unpack("<Q")
            if item_type in _SCALARS and not keep:
                self.f.seek(count * struct.calcsize(_SCALARS[item_type]), 1)
                return None
            if item_type == _STRING and not keep:
                for _ in range(count):
                    self.f.seek(self.unpack("<Q"), 1)
                return None
            return [self.value(item_type, True) for _ in range(count)]
        raise ModelError(f"{self.path}: corrupt GGUF header (unknown value type {vtype})")


def _quant_label(file_type: Any) -> str | None:
    try:
        return LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except (ValueError, TypeError):
        return None


def _tensor_bytes(ggml_type: int, n_elements: int) -> int:
    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    return n_elements // block * size


def read_gguf_info(path: str | Path, whole_size: int | None = None) -> GGUFInfo:
    """Parse the header; a missing, foreign or truncated file raises ModelError naming it.
    `whole_size`: `path` is the first part of a split file whose whole has this many bytes."""
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}. Check the path, or run "
                         "`python app.py models` to list the models the app can see.")
    file_size = whole_size if whole_size is not None else p.stat().st_size
    with p.open("rb") as f:
        r = _Reader(f, p)
        if f.read(4) != GGUF_MAGIC:
            raise ModelError(f"{p} is not a GGUF file (its first bytes are not 'GGUF'). "
                             "Use a .gguf model, or a Hugging Face folder with the transformers backend.")
        version = r.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{p}: unsupported GGUF version {version}")
        n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            meta[key] = r.value(r.unpack("<I"), key in _KEEP_ARRAYS)
        n_params, data_end, sizes, layouts = 0, 0, [], []
        for _ in range(n_tensors):
            name = r.string()
            dims = [r.unpack("<Q") for _ in range(r.unpack("<I"))]
            ggml_type, offset = r.unpack("<I"), r.unpack("<Q")
            n = 1
            for d in dims:
                n *= d
            n_params += n
            try:
                nbytes = _tensor_bytes(ggml_type, n)
            except (ValueError, KeyError):
                raise ModelError(f"{p}: corrupt GGUF tensor table (type {ggml_type})") from None
            data_end = max(data_end, offset + nbytes)
            sizes.append((name, n, nbytes))
            layouts.append((ggml_type, tuple(dims)))
        align = int(meta.get("general.alignment", 32))
        data_start = -(-f.tell() // align) * align
    if data_start + data_end > file_size:
        raise ModelError(f"{p} is truncated: the header promises {data_start + data_end:,} bytes, "
                         f"the file has {file_size:,}. Download or copy it again.")
    arch = meta.get("general.architecture")
    tokens = meta.pop("tokenizer.ggml.tokens", None) or []

    def token(key: str) -> str | None:
        idx = meta.get(key)
        return tokens[idx] if isinstance(idx, int) and 0 <= idx < len(tokens) else None

    return GGUFInfo(
        path=p, architecture=arch, name=meta.get("general.name"), n_params=n_params,
        quantization=_quant_label(meta.get("general.file_type")),
        context_length=meta.get(f"{arch}.context_length") if arch else None,
        chat_template=meta.get("tokenizer.chat_template") or None,
        bos_token=token("tokenizer.ggml.bos_token_id"), eos_token=token("tokenizer.ggml.eos_token_id"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)), file_size=file_size, metadata=meta,
        tensors=tuple(sizes), layouts=tuple(layouts),
    )


@lru_cache(maxsize=256)
def _cached_info(path: str, mtime_ns: int, size: int) -> GGUFInfo:
    return read_gguf_info(path)


def gguf_info(path: str | Path) -> GGUFInfo:
    """read_gguf_info, cached per (path, mtime, size) so a re-scan costs nothing."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        return read_gguf_info(p)  # raises the clear not-found error
    return _cached_info(str(p), st.st_mtime_ns, st.st_size)
