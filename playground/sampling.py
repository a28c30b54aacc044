"""Sampling parameters and the sampling presets in presets/sampling/*.yaml."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from playground.errors import PresetError
from playground.yamlfiles import load_yaml_mapping


@dataclass(frozen=True)
class SamplingParams:
    """How to pick tokens. temperature 0 means greedy; top_k 0 means off."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    max_new_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def with_changes(self, **changes: Any) -> "SamplingParams":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stop"] = list(self.stop)
        return data


# field -> (type, minimum, maximum); None means unbounded
_RULES: dict[str, tuple[type, float | None, float | None]] = {
    "temperature": (float, 0.0, 5.0),
    "top_p": (float, 0.0, 1.0),
    "top_k": (int, 0, 100_000),
    "min_p": (float, 0.0, 1.0),
    "repeat_penalty": (float, 0.5, 3.0),
    "max_new_tokens": (int, 1, 32_768),
    "seed": (int, 0, 2**32 - 1),
}


def sampling_from_mapping(data: dict[str, Any], source: str) -> SamplingParams:
    """Validate a mapping of sampling fields; errors name the source and the field."""
    known = {f.name for f in fields(SamplingParams)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise PresetError(source, key, f"unknown sampling field (known: {', '.join(sorted(known))})")
        if key == "stop":
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
                raise PresetError(source, key, "expected a list of non-empty strings")
            values[key] = tuple(value)
            continue
        if value is None and key == "seed":
            values[key] = None
            continue
        kind, low, high = _RULES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise PresetError(source, key, f"expected {'an integer' if kind is int else 'a number'}, got {value!r}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise PresetError(source, key, f"{value} is out of range [{low}, {high}]")
        values[key] = kind(value)
    return SamplingParams(**values)


@dataclass(frozen=True)
class SamplingPreset:
    id: str
    title: str
    params: SamplingParams


def load_sampling_preset(path: Path) -> SamplingPreset:
    """One preset file: {id, title, params: {...}}."""
    data = load_yaml_mapping(path)
    for key in ("id", "params"):
        if key not in data:
            raise PresetError(str(path), key, "is required")
    if not isinstance(data["id"], str) or not data["id"].strip():
        raise PresetError(str(path), "id", "expected a non-empty string")
    if not isinstance(data["params"], dict):
        raise PresetError(str(path), "params", "expected a mapping of sampling fields")
    params = sampling_from_mapping(data["params"], str(path))
    return SamplingPreset(id=data["id"], title=str(data.get("title") or data["id"]), params=params)


def load_sampling_presets(folder: Path) -> tuple[dict[str, SamplingPreset], list[PresetError]]:
    """Every *.yaml in folder; invalid files are reported and skipped, never raised."""
    presets: dict[str, SamplingPreset] = {}
    errors: list[PresetError] = []
    for path in sorted(Path(folder).glob("*.y*ml")):
        try:
            preset = load_sampling_preset(path)
        except PresetError as exc:
            errors.append(exc)
            continue
        if preset.id in presets:
            errors.append(PresetError(str(path), "id", f"duplicate id '{preset.id}'"))
            continue
        presets[preset.id] = preset
    return presets, errors
