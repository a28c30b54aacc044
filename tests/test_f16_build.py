"""The default model's F16 copy: built once into the cache, keyed by the source's checksum,
written atomically, one build for several processes starting at once.

The build logic runs on a small GGUF made here with gguf's own writer and quantiser (fast); the
real bundled file's copy is checked against its source (every metadata field, the checksum).
"""
from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from playground.models.f16 import ensure_f16, f16_build_for, is_ready, sha256_file

gguf = pytest.importorskip("gguf")


def write_small_gguf(path: Path, seed: int) -> dict[str, np.ndarray]:
    """A llama-shaped GGUF: one Q4_1 matrix, one F32 vector, a few metadata fields (string, int,
    float, string array, int array)."""
    rng = np.random.default_rng(seed)
    weights = {"blk.0.attn_q.weight": rng.standard_normal((8, 64)).astype(np.float32),
               "output_norm.weight": rng.standard_normal(64).astype(np.float32)}
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("small")
    writer.add_context_length(128)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_token_list(["<s>", "</s>", "a", "b"])
    writer.add_token_types([3, 3, 1, 1])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    quantised = gguf.quants.quantize(weights["blk.0.attn_q.weight"], gguf.GGMLQuantizationType.Q4_1)
    writer.add_tensor("blk.0.attn_q.weight", quantised, raw_shape=quantised.shape,
                      raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    writer.add_tensor("output_norm.weight", weights["output_norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return weights


def fields(path: Path) -> dict[str, object]:
    reader = gguf.GGUFReader(path)
    return {name: f.contents() for name, f in reader.fields.items() if not name.startswith("GGUF.")}


def test_builds_an_f16_copy_with_every_field(tmp_path: Path) -> None:
    source = tmp_path / "pkg" / "Small.Q4_1.gguf"
    source.parent.mkdir()
    weights = write_small_gguf(source, seed=1)
    reports: list[tuple[str, float]] = []
    build = f16_build_for(source, tmp_path / "cache", "1.0")
    assert not is_ready(build)
    target = ensure_f16(build, lambda m, f: reports.append((m, f)))
    assert target == tmp_path / "cache" / "f16" / "Small.F16.gguf" and is_ready(build)
    assert reports[-1][1] == 1.0 and [f for _, f in reports] == sorted(f for _, f in reports)

    old, new = fields(source), fields(target)
    assert new.pop("general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    old.pop("general.file_type")
    assert new == old                    # every other field, arrays included, copied as it was
    reader = gguf.GGUFReader(target)
    tensors = {t.name: t for t in reader.tensors}
    q = tensors["blk.0.attn_q.weight"]
    assert q.tensor_type == gguf.GGMLQuantizationType.F16
    values = np.asarray(q.data, dtype=np.float32).reshape(8, 64)
    assert np.abs(values - weights["blk.0.attn_q.weight"]).max() < 0.5     # 4-bit rounding, no more
    norm = tensors["output_norm.weight"]
    assert norm.tensor_type == gguf.GGMLQuantizationType.F32
    assert np.array_equal(np.asarray(norm.data), weights["output_norm.weight"])

    manifest = json.loads(build.manifest.read_text())
    assert manifest["source_sha256"] == sha256_file(source) and manifest["size"] == target.stat().st_size
    assert not list(target.parent.glob("*.partial")), "no temporary file is left behind"


def test_rebuilt_only_when_the_source_changes(tmp_path: Path) -> None:
    source = tmp_path / "Small.Q4_1.gguf"
    write_small_gguf(source, seed=1)
    cache = tmp_path / "cache"
    target = ensure_f16(f16_build_for(source, cache, "1.0"))
    first = target.stat().st_mtime_ns

    os.utime(source)                     # same bytes, new mtime and a new package version
    assert is_ready(f16_build_for(source, cache, "1.1")), "the checksum says it is the same file"
    assert ensure_f16(f16_build_for(source, cache, "1.1")).stat().st_mtime_ns == first

    write_small_gguf(source, seed=2)     # the package now ships other weights
    build = f16_build_for(source, cache, "1.2")
    assert not is_ready(build)
    ensure_f16(build)
    assert json.loads(build.manifest.read_text())["source_sha256"] == sha256_file(source)

    with open(target, "r+b") as handle:  # a truncated copy (disk full, killed by hand) is redone
        handle.truncate(100)
    assert not is_ready(build)
    assert ensure_f16(build).stat().st_size == json.loads(build.manifest.read_text())["size"]


def _build_in_another_process(source: str, cache: str, log: str) -> str:
    def report(message: str, fraction: float) -> None:
        if message.startswith("checking"):
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(f"{os.getpid()}\n")
    return str(ensure_f16(f16_build_for(Path(source), Path(cache), "1.0"), report))


def test_processes_starting_at_once_build_once(tmp_path: Path) -> None:
    source = tmp_path / "Small.Q4_1.gguf"
    write_small_gguf(source, seed=3)
    log = tmp_path / "builds.log"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        paths = pool.starmap(_build_in_another_process, [(str(source), str(tmp_path / "cache"), str(log))] * 3)
    assert len(set(paths)) == 1 and is_ready(f16_build_for(source, tmp_path / "cache", "1.0"))
    assert len(log.read_text().split()) == 1, "exactly one process built, the others waited for it"
    assert fields(Path(paths[0]))["general.name"] == "small"


def test_bundled_default_model_is_the_f16_copy(app_ctx, default_model, bundled_gguf: Path) -> None:
    spec = app_ctx.catalog.get(app_ctx.settings.default_model)
    assert spec.id == "smollm2-135m-instruct-f16" and spec.quantization == "F16" and spec.available
    assert spec.built_from == bundled_gguf and spec.source == "bundled"
    assert Path(spec.path).parent.parent == app_ctx.settings.cache_dir, "built into the configured cache dir"
    assert app_ctx.settings.cache_dir == Path(os.environ["PLAYGROUND_CACHE"]), "tests use their own cache"
    manifest = json.loads(Path(str(spec.path) + ".json").read_text())
    assert manifest["source_sha256"] == sha256_file(bundled_gguf)
    shipped = app_ctx.catalog.get("smollm2-135m-instruct")
    assert shipped.quantization == "Q4_1" and "as shipped" in shipped.display_name
    assert spec.n_params == shipped.n_params and spec.context_length == shipped.context_length
    assert list(app_ctx.catalog.ids())[:2] == ["smollm2-135m-instruct-f16", "smollm2-135m-instruct"]
    assert default_model.spec.id == spec.id
