"""Will it fit? The memory a model needs on a device, read from its files, against what the machine has.

need = weights + KV cache at the chosen context length + working buffers, where

- **weights** are the sum of the tensors' real sizes: the GGUF tensor table (`gguf_meta`) or the
  safetensors headers' byte ranges, in the form the backend keeps them: llama.cpp uses GGUF
  tensors as stored; transformers dequantises GGUF to fp32 on the CPU and fp16 on a GPU, and loads
  safetensors as fp32 on the CPU and as stored (`dtype="auto"`) on a GPU
  (`transformers_backend._load_tokenizer_and_model`);
- the **KV cache** is K + V for every layer and every token of the context: llama.cpp stores f16
  (its default cache type), transformers the model's dtype. Widths come from the attention
  tensors' shapes (`blk.N.attn_k/v`), else from the header's head counts. Sliding-window layers
  (Gemma 3) are counted at the full context, so for those models the figure is an upper bound;
- **repacked copies** (llama.cpp on the CPU): with AVX2, llama.cpp's CPU backend keeps a re-laid-out
  copy ("CPU_REPACK") of every matrix it multiplies whose type has an interleaved kernel there
  (Q4_0, Q4_K, IQ4_NL, MXFP4, rows a multiple of 8: `ggml_repack_get_optimal_repack_type` in
  ggml-cpu/repack.cpp), beside the mapped file; the copy has the tensor's own size. The token
  embedding is looked up (GET_ROWS), never multiplied, so it is not copied. Qwen2.5-Coder-0.5B
  Q4_K_M: 28 MiB; its 1.5B: 597 MiB (most of its tensors are Q4_K); Q4_1 and F16: none;
- **buffers**: llama.cpp's compute and output buffers, which grow with the vocabulary and the
  batch (`LLAMA_BUFFER_*` below, measured against llama.cpp's own log on the bundled models);
  transformers gets 10 % of the weights for activations.

One estimate is for one generation at a time: each extra llama.cpp slot (a pane beside another
on the same model) adds one more KV cache and compute buffer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from playground.models.spec import ModelSpec

GB = 1024 ** 3
MB = 1024 ** 2
F16 = 2
F32 = 4
LLAMA_N_UBATCH = 512               # llama-cpp-python's default n_batch / n_ubatch
# llama.cpp's CPU compute buffer + output buffer, per (vocab + 4 x embedding width) x ubatch token,
# in bytes: fitted to "compute buffer size" + "output buffer size" in llama.cpp's load log.
LLAMA_BUFFER_PER_UNIT = 4
GPU_HEADROOM = 0.9                 # use at most 90 % of the free GPU memory (driver, fragmentation)
TRANSFORMERS_ACTIVATIONS = 0.10
# ggml types llama.cpp's CPU backend repacks on x86 with AVX2 (and not AVX-512: Q2_K is then added)
LLAMA_AVX2_REPACKED_TYPES = frozenset({2, 12, 20, 39})     # Q4_0, Q4_K, IQ4_NL, MXFP4 (ggml_type numbers)
LLAMA_LOOKUP_TENSORS = ("token_embd.weight", "per_layer_token_embd.weight", "position_embd.weight",
                        "token_types.weight")              # read by GET_ROWS: never repacked
_BLOCK = re.compile(r"^blk\.(\d+)\.")
_HF_BLOCK = re.compile(r"\.(?:layers|h|blocks|block)\.(\d+)\.")
_ST_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2,
                   "I16": 2, "U16": 2, "I8": 1, "U8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "BOOL": 1}


@dataclass(frozen=True)
class Shape:
    """What memory estimates need to know about a model, read from its files."""

    source: str                     # "GGUF tensor table" | "safetensors headers"
    weights_bytes: int              # the tensors as stored in the file(s)
    n_params: int
    layer_bytes: tuple[int, ...]    # stored weights of each repeating block, in order
    kv_per_token: int               # K + V elements per token, all layers together
    n_vocab: int
    n_embd: int
    stored_element_bytes: float     # weights_bytes / n_params (4 = fp32, 2 = fp16, ~0.6 = Q4)
    repackable_bytes: int = 0       # tensors llama.cpp's AVX2 CPU backend keeps a repacked copy of

    @property
    def n_layers(self) -> int:
        return len(self.layer_bytes)


@dataclass(frozen=True)
class Estimate:
    """Memory one loaded model needs on one device at one context length."""

    model_id: str
    backend: str
    device: str
    n_ctx: int
    weights_bytes: int
    kv_bytes: int
    buffer_bytes: int
    source: str
    repack_bytes: int = 0            # llama.cpp on the CPU: repacked copies beside the weights

    @property
    def total(self) -> int:
        return self.weights_bytes + self.repack_bytes + self.kv_bytes + self.buffer_bytes

    def describe(self) -> str:
        repack = f" + repacked copies {gb(self.repack_bytes)}" if self.repack_bytes else ""
        return (f"{gb(self.total)} (weights {gb(self.weights_bytes)}{repack} + KV cache {gb(self.kv_bytes)} for "
                f"{self.n_ctx:,} tokens + buffers {gb(self.buffer_bytes)})")

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "device": self.device, "n_ctx": self.n_ctx,
                "weights_bytes": self.weights_bytes, "repack_bytes": self.repack_bytes, "kv_bytes": self.kv_bytes,
                "buffer_bytes": self.buffer_bytes, "total_bytes": self.total, "source": self.source}


@dataclass(frozen=True)
class Fit:
    """An estimate against a memory limit: does it fit, and if only in part, how many layers."""

    ok: bool
    summary: str                     # short, for a table cell or a notice
    gpu_layers: int | None = None    # llama.cpp on a GPU: repeating layers to offload (None = all)


def gb(n: int | float | None) -> str:
    if n is None:
        return "?"
    return f"{n / GB:.2f} GB" if n >= 0.1 * GB else f"{n / MB:.0f} MB"


# --- shapes ---------------------------------------------------------------------------------------

def gguf_shape(info: Any) -> Shape:
    """A GGUF file's shape from its tensor table (`gguf_meta.GGUFInfo.tensors`) and header."""
    elements = {name: n for name, n, _ in info.tensors}
    weights = sum(b for _, _, b in info.tensors)
    n_layers = _int(info.metadata.get(f"{info.architecture}.block_count"))
    layers: dict[int, int] = {}
    for name, _, nbytes in info.tensors:
        m = _BLOCK.match(name)
        if m:
            layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + nbytes
    n_layers = max(n_layers or 0, max(layers, default=-1) + 1)
    meta = lambda key: info.metadata.get(f"{info.architecture}.{key}")  # noqa: E731
    n_embd = _int(meta("embedding_length")) or 0
    kv = 0
    for i in range(n_layers):
        k, v = elements.get(f"blk.{i}.attn_k.weight"), elements.get(f"blk.{i}.attn_v.weight")
        if k and v and n_embd:
            kv += (k + v) // n_embd
        else:
            kv += _header_kv_width(meta, n_embd)
    vocab = (elements.get("token_embd.weight", 0) // n_embd) if n_embd else 0
    n_params = sum(elements.values()) or 1
    return Shape(source="GGUF tensor table", weights_bytes=weights, n_params=n_params,
                 layer_bytes=tuple(layers.get(i, 0) for i in range(n_layers)), kv_per_token=kv,
                 n_vocab=vocab or _int(meta("vocab_size")) or 0, n_embd=n_embd,
                 stored_element_bytes=weights / n_params, repackable_bytes=llama_repackable_bytes(info))


def llama_repackable_bytes(info: Any) -> int:
    """Bytes of the tensors llama.cpp's CPU backend (x86, AVX2) copies into its CPU_REPACK buffer:
    2-D matrices (3-D expert stacks) of a repacked type with a row count divisible by 8, other than
    the lookup tables."""
    total = 0
    for (name, _, nbytes), (ggml_type, dims) in zip(info.tensors, info.layouts, strict=True):
        if (ggml_type in LLAMA_AVX2_REPACKED_TYPES and len(dims) in (2, 3) and dims[1] % 8 == 0
                and name not in LLAMA_LOOKUP_TENSORS):
            total += nbytes
    return total


@lru_cache(maxsize=1)
def llama_cpu_repacks() -> bool:
    """Whether this llama.cpp build repacks on the CPU as counted above: its REPACK feature on an
    AVX2 build (what `llama_print_system_info` reports; other CPUs repack other types, not counted)."""
    from playground import devices

    info = devices.llama_cpp_build().system_info.replace(" ", "")
    return "REPACK=1" in info and "AVX2=1" in info


def _header_kv_width(meta: Any, n_embd: int) -> int:
    """K + V width of one layer from head counts, when the tensors do not show it (fused QKV)."""
    heads = _int(meta("attention.head_count")) or 0
    kv_heads = _int(meta("attention.head_count_kv")) or heads
    if not heads or not n_embd:
        return 0
    key = _int(meta("attention.key_length")) or n_embd // heads
    value = _int(meta("attention.value_length")) or key
    return kv_heads * (key + value)


def hf_shape(folder: Path) -> Shape | None:
    """A Hugging Face folder's shape from config.json and the safetensors headers' byte ranges."""
    from playground.models.hf_meta import _read_config, _safetensors_files, read_safetensors_header

    config = _read_config(folder)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    get = lambda key: _int(text.get(key)) or _int(config.get(key))  # noqa: E731
    weights, n_params, layers = 0, 0, {}
    for path in _safetensors_files(folder):
        header = read_safetensors_header(path)
        if header is None:
            return None
        for name, t in header.items():
            if name == "__metadata__" or not isinstance(t, dict):
                continue
            begin, end = (t.get("data_offsets") or [0, 0])[:2]
            size = int(end) - int(begin)
            count = 1
            for d in t.get("shape") or []:
                count *= int(d)
            weights, n_params = weights + size, n_params + count
            m = _HF_BLOCK.search(name)
            if m:
                layers[int(m.group(1))] = layers.get(int(m.group(1)), 0) + size
    if not n_params:
        return None
    n_layers = get("num_hidden_layers") or get("n_layer") or (max(layers, default=-1) + 1)
    n_embd = get("hidden_size") or get("n_embd") or 0
    heads = get("num_attention_heads") or get("n_head") or 0
    kv_heads = get("num_key_value_heads") or heads
    head_dim = get("head_dim") or (n_embd // heads if heads else 0)
    return Shape(source="safetensors headers", weights_bytes=weights, n_params=n_params,
                 layer_bytes=tuple(layers.get(i, 0) for i in range(n_layers)),
                 kv_per_token=n_layers * 2 * kv_heads * head_dim, n_vocab=get("vocab_size") or 0,
                 n_embd=n_embd, stored_element_bytes=weights / n_params)


def model_shape(spec: ModelSpec) -> Shape | None:
    """The shape of a model whose files are on disk; None for remote models and missing files."""
    if spec.source == "remote" or spec.path is None or not Path(spec.path).exists():
        return None
    from playground.errors import PlaygroundError

    try:
        if spec.format == "gguf":
            from playground.models.gguf_meta import gguf_info

            return gguf_shape(gguf_info(spec.path))
        return hf_shape(Path(spec.path))
    except (PlaygroundError, OSError, ValueError):
        return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


# --- estimates ------------------------------------------------------------------------------------

def estimate(spec: ModelSpec, backend: str, device: str, n_ctx: int, shape: Shape | None = None,
             repacks: bool | None = None) -> Estimate | None:
    """Memory `spec` needs on `backend`/`device` with a context of n_ctx tokens (capped by the model);
    None when its files are not on disk or the backend runs elsewhere (a remote server). `repacks`:
    whether llama.cpp keeps repacked copies on the CPU (None: ask this build)."""
    if backend not in ("llama_cpp", "transformers"):
        return None
    shape = shape or model_shape(spec)
    if shape is None:
        return None
    ctx = min(n_ctx, spec.context_length or n_ctx) if n_ctx > 0 else (spec.context_length or 2048)
    on_gpu = device not in ("cpu", "")
    repack = 0
    if backend == "llama_cpp":
        weights = shape.weights_bytes
        if not on_gpu and shape.repackable_bytes and (llama_cpu_repacks() if repacks is None else repacks):
            repack = shape.repackable_bytes
        kv = shape.kv_per_token * ctx * F16
        buffers = llama_buffer_bytes(shape)
    else:
        if not on_gpu:
            element = F32
        elif spec.format == "gguf":
            element = F16
        else:
            element = max(1.0, shape.stored_element_bytes)
        weights = shape.weights_bytes if on_gpu and spec.format == "hf" else int(shape.n_params * element)
        kv = int(shape.kv_per_token * ctx * (F32 if not on_gpu else min(element, F32)))
        buffers = int(weights * TRANSFORMERS_ACTIVATIONS)
    return Estimate(model_id=spec.id, backend=backend, device=device, n_ctx=ctx, weights_bytes=int(weights),
                    kv_bytes=int(kv), buffer_bytes=int(buffers), source=shape.source, repack_bytes=repack)


def llama_buffer_bytes(shape: Shape, n_ubatch: int = LLAMA_N_UBATCH) -> int:
    return LLAMA_BUFFER_PER_UNIT * n_ubatch * (shape.n_vocab + 4 * shape.n_embd)


# --- fitting --------------------------------------------------------------------------------------

def fit_in(est: Estimate, limit: int | None, what: str) -> Fit:
    """The whole estimate against one limit in bytes (RAM, a GPU's free memory, the budget)."""
    if limit is None:
        return Fit(ok=True, summary=f"needs {gb(est.total)} ({what}: unknown)")
    if est.total <= limit:
        return Fit(ok=True, summary=f"fits: {gb(est.total)} of {gb(limit)} {what}")
    return Fit(ok=False, summary=f"too large: needs {gb(est.total)}, {what} {gb(limit)}")


def llama_gpu_fit(est: Estimate, shape: Shape, free: int | None) -> Fit:
    """How many of a GGUF model's layers llama.cpp should offload to a GPU with `free` bytes free.

    All of them when everything fits in GPU_HEADROOM of it; otherwise the most repeating layers
    (with their share of the KV cache) that fit beside the compute buffer. llama.cpp puts the
    *last* n layers on the GPU, so those are the ones counted.
    """
    n = shape.n_layers
    if free is None:
        return Fit(ok=True, summary=f"all {n} layers (GPU memory unknown)", gpu_layers=None)
    room = int(free * GPU_HEADROOM)
    if est.total <= room:
        return Fit(ok=True, summary=f"all {n} layers on the GPU ({gb(est.total)} of {gb(free)} free)",
                   gpu_layers=None)
    kv_per_layer = est.kv_bytes // max(1, n)
    used, k = est.buffer_bytes, 0
    for size in reversed(shape.layer_bytes):
        if used + size + kv_per_layer > room:
            break
        used, k = used + size + kv_per_layer, k + 1
    if k == 0:
        return Fit(ok=False, summary=f"no layer fits in the GPU's {gb(free)} free: runs on the CPU",
                   gpu_layers=0)
    return Fit(ok=True, summary=f"{k} of {n} layers on the GPU ({gb(free)} free), the rest on the CPU",
               gpu_layers=k)


def fit_lines(spec: ModelSpec, memory: Any, n_ctx: int, gpu_backends: Iterable[str]) -> dict[str, Any]:
    """Where one catalog model fits on this machine: its estimate on the CPU and on each GPU backend.

    `memory` is a `devices.Memory`; `gpu_backends` the backends that can use a GPU here.
    """
    backend = spec.backends[0] if spec.backends else ""
    shape = model_shape(spec)
    out: dict[str, Any] = {"model": spec.id, "backend": backend}
    cpu = estimate(spec, backend, "cpu", n_ctx, shape)
    if cpu is None:
        out["cpu"] = None
        out["summary"] = "remote" if spec.source == "remote" else _before_download(spec, backend, memory)
        return out
    cpu_fit = fit_in(cpu, memory.ram_total, "RAM")
    out["cpu"] = {**cpu.to_dict(), "fits": cpu_fit.ok, "verdict": cpu_fit.summary}
    parts = [f"{gb(cpu.total)} · CPU {'✓' if cpu_fit.ok else '✗ too large'}"]
    gpu_backend = backend if backend in gpu_backends else None
    if gpu_backend and memory.gpus:
        free = memory.gpus[0].free_bytes
        gpu = estimate(spec, gpu_backend, "gpu" if gpu_backend == "llama_cpp" else "cuda", n_ctx, shape)
        if gpu is not None:
            verdict = (llama_gpu_fit(gpu, shape, free) if gpu_backend == "llama_cpp"
                       else fit_in(gpu, free, "GPU free"))
            out["gpu"] = {**gpu.to_dict(), "fits": verdict.ok, "verdict": verdict.summary,
                          "gpu_layers": verdict.gpu_layers}
            parts.append(f"GPU: {verdict.summary}")
    else:
        out["gpu"] = None
        parts.append("no GPU" if not memory.gpus else f"GPU: not with {backend}")
    out["summary"] = " · ".join(parts)
    return out


def _before_download(spec: ModelSpec, backend: str, memory: Any) -> str:
    """A Hub model not downloaded yet has no tensor table: only the catalog's declared size (GGUF) or
    parameter count (fp32 on the CPU for transformers) can be shown, marked as approximate."""
    if backend == "llama_cpp":
        approx = spec.file_size or _approx_gguf_bytes(spec.n_params, spec.quantization)
    else:
        approx = (spec.n_params or 0) * F32
    if not approx:
        return "unknown until downloaded"
    ok = approx <= memory.ram_total
    return f"≈{gb(approx)} weights before download (KV cache not counted) · CPU {'✓' if ok else '✗ too large'}"


def _approx_gguf_bytes(n_params: int | None, quantization: str | None) -> int:
    """Declared parameters x the bytes per weight of the quantisation's base type (gguf's own block
    sizes: Q4_K_M -> Q4_K, 4.5 bits; the _M mixes keep some tensors at higher precision, so a real
    file is ~10 % larger); 0 when either is unknown."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    if not n_params or not quantization:
        return 0
    name = quantization.upper()
    for suffix in ("_M", "_S", "_L", "_XS", "_XXS"):
        if name.endswith(suffix) and name[: -len(suffix)] in GGMLQuantizationType.__members__:
            name = name[: -len(suffix)]
            break
    try:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType[name]]
    except KeyError:
        return 0
    return int(n_params * size / block)


def gpu_backends() -> list[str]:
    """The backends that can use a GPU on this machine and build."""
    from playground import devices

    torch = devices.torch_info()
    return [name for name, ok in (("llama_cpp", devices.llama_cpp_build().gpu_offload),
                                  ("transformers", torch.cuda_available or torch.mps_available)) if ok]


def catalog_fit_summaries(specs: Iterable[ModelSpec], n_ctx: int) -> list[str]:
    """One short line per model for the Models tab: its estimate and where it fits, e.g.
    '0.19 GB · CPU ✓ · no GPU' (memory and builds are read once for the whole list)."""
    from playground import devices

    memory, backends = devices.memory(), gpu_backends()
    return [fit_lines(spec, memory, n_ctx, backends)["summary"] for spec in specs]
