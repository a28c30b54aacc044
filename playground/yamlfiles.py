"""Reading YAML data files with errors that name the file and the field."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from playground.errors import PresetError


def load_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """Parse one YAML file that must hold a mapping at the top level."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise PresetError(str(p), "", "not a text file (is it binary?)") from None
    except OSError as exc:
        raise PresetError(str(p), "", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise PresetError(str(p), "", f"invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise PresetError(str(p), "", f"expected a mapping of fields, got {type(data).__name__}")
    return data


def require(data: dict[str, Any], path: str | Path, field: str, kind: type | tuple[type, ...],
            default: Any = ..., ) -> Any:
    """Return data[field] checked against kind; missing and no default -> PresetError."""
    if field not in data or data[field] is None:
        if default is ...:
            raise PresetError(str(path), field, "is required")
        return default
    value = data[field]
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise PresetError(str(path), field, f"expected a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PresetError(str(path), field, f"expected {names}, got {type(value).__name__} {value!r}")
    return value
