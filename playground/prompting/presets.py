"""Prompting presets and exemplar sets: YAML files under presets/, validated on load.

Layout (one object per file, so a user adds one by dropping a file in the folder):

    presets/prompting/<anything>.yaml   one `PromptPreset`
    presets/exemplars/<anything>.yaml   one `ExemplarSet`

A preset file:

    id: arithmetic-few-shot-cot          # unique; letters, digits, '-', '_', '.'
    title: Arithmetic, few-shot CoT      # optional, defaults to id
    description: ...                     # optional
    mode: few_shot_cot                   # one of MODES
    family: arithmetic                   # one of FAMILIES
    answer_kind: number                  # optional: number | yes_no | choice | text | auto
    system_prompt: null                  # optional
    instruction_templates:               # required (non-empty) for mode instruction;
      - "Answer the following question.\\n\\n{question}"   # each must contain {question}
    exemplar_set: arithmetic-word-problems  # required for few_shot and few_shot_cot
    shots: 8                             # optional, 0..8, default: all items (at most 8)
    trigger: "Let's think step by step." # optional (zero-shot CoT)
    followup: "Therefore, the answer is" # optional, null disables the two-step answer
    samples: 5                           # optional, 1..20 (self-consistency paths)

An exemplar set file:

    id: arithmetic-word-problems
    title: ...
    family: arithmetic
    answer_kind: number
    items:
      - question: "..."
        answer: "6"                      # the short answer (quote yes/no: YAML reads them as booleans)
        reasoning: "... The answer is 6."  # optional, but needed by the CoT modes

Every problem is reported as a `PresetError(file, field, problem)` and the file is skipped;
loading never raises, so one bad file cannot take the app down.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from playground.errors import PlaygroundError, PresetError
from playground.prompting.plan import ANSWER_KINDS, MODES
from playground.yamlfiles import load_yaml_mapping, require

FAMILIES: tuple[str, ...] = ("arithmetic", "commonsense_yes_no", "sentiment", "general")
FAMILY_TITLES: dict[str, str] = {
    "arithmetic": "Arithmetic word problems",
    "commonsense_yes_no": "Commonsense yes/no",
    "sentiment": "Sentiment (positive/negative)",
    "general": "General chat",
}
PRESET_ANSWER_KINDS: tuple[str, ...] = tuple(k for k in ANSWER_KINDS if k != "none")

FAMILY_ANSWER_KINDS: dict[str, str] = {
    "arithmetic": "number", "commonsense_yes_no": "yes_no", "sentiment": "text", "general": "auto",
}

MAX_SHOTS = 8
MAX_SAMPLES = 20
DEFAULT_SAMPLES = 5
DEFAULT_TRIGGER = "Let's think step by step."
DEFAULT_FOLLOWUP = "Therefore, the answer is"
QUESTION_SLOT = "{question}"

EXEMPLAR_MODES = ("few_shot", "few_shot_cot")
"""Modes that cannot run without an exemplar set (self-consistency falls back to zero-shot CoT)."""
REASONING_MODES = ("few_shot_cot", "self_consistency")
"""Modes whose exemplars must carry worked reasoning."""

_SHOTS_UNSET = -1  # while loading: the file gave no `shots`; replaced once the exemplar set is known
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PRESET_FIELDS = frozenset({
    "id", "title", "description", "mode", "family", "answer_kind", "system_prompt",
    "instruction_templates", "exemplar_set", "shots", "trigger", "followup", "samples",
})
_SET_FIELDS = frozenset({"id", "title", "description", "family", "answer_kind", "items"})
_ITEM_FIELDS = frozenset({"question", "answer", "reasoning"})


@dataclass(frozen=True)
class Exemplar:
    """One demonstration: a question, its short answer, and (for CoT) the worked steps."""

    question: str
    answer: str
    reasoning: str | None = None


@dataclass(frozen=True)
class ExemplarSet:
    id: str
    title: str
    family: str
    answer_kind: str
    items: tuple[Exemplar, ...]
    description: str = ""
    path: str = ""

    @property
    def has_reasoning(self) -> bool:
        return all(item.reasoning for item in self.items)


@dataclass(frozen=True)
class PromptPreset:
    id: str
    title: str
    mode: str
    family: str
    answer_kind: str = "auto"
    system_prompt: str | None = None
    instruction_templates: tuple[str, ...] = ()
    exemplar_set: str | None = None
    shots: int = 0
    trigger: str = DEFAULT_TRIGGER
    followup: str | None = DEFAULT_FOLLOWUP
    samples: int = DEFAULT_SAMPLES
    description: str = ""
    path: str = ""


@dataclass
class PresetLibrary:
    """Everything loaded from one presets folder, plus what was skipped and why."""

    prompting: dict[str, PromptPreset] = field(default_factory=dict)
    exemplars: dict[str, ExemplarSet] = field(default_factory=dict)
    errors: list[PresetError] = field(default_factory=list)

    def exemplars_for(self, preset: PromptPreset) -> ExemplarSet | None:
        return self.exemplars.get(preset.exemplar_set) if preset.exemplar_set else None

    def presets_for(self, mode: str | None = None, family: str | None = None) -> list[PromptPreset]:
        """Presets matching mode and family (None = any), sorted by id."""
        return [p for _, p in sorted(self.prompting.items())
                if (mode is None or p.mode == mode) and (family is None or p.family == family)]

    def default_preset_for(self, mode: str, family: str = "arithmetic") -> PromptPreset:
        """The preset named '<family>-<mode with dashes>' if present, else the first of that mode and family."""
        if mode not in MODES:
            raise PlaygroundError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")
        conventional = self.prompting.get(f"{family}-{mode.replace('_', '-')}")
        if conventional is not None and conventional.mode == mode:
            return conventional
        matches = self.presets_for(mode, family)
        if not matches:
            raise PlaygroundError(
                f"no prompting preset for mode '{mode}' and family '{family}'; add a file to "
                f"presets/prompting/ with 'mode: {mode}' and 'family: {family}'")
        return matches[0]


# ---------------------------------------------------------------- field helpers

def _check_fields(data: dict[str, Any], path: str, known: frozenset[str], where: str = "") -> None:
    """Unknown keys are errors: a typo like 'shot:' must not be silently ignored."""
    for key in data:
        if key not in known:
            raise PresetError(path, f"{where}{key}", f"unknown field (known: {', '.join(sorted(known))})")


def _text(data: dict[str, Any], path: str, name: str, default: Any = ..., where: str = "") -> Any:
    """A string field; `where` prefixes the field name for list items (e.g. 'items[2].')."""
    label = f"{where}{name}"
    if name not in data or data[name] is None:
        if default is ...:
            raise PresetError(path, label, "is required")
        return default
    value = data[name]
    if not isinstance(value, str):
        raise PresetError(path, label, f"expected a string, got {type(value).__name__} {value!r}")
    if not value.strip() and default is ...:
        raise PresetError(path, label, "must not be empty")
    return value


def _identifier(data: dict[str, Any], path: str) -> str:
    value = _text(data, path, "id")
    if not _ID_RE.match(value):
        raise PresetError(path, "id", f"'{value}' may only use letters, digits, '-', '_' and '.'")
    return value


def _choice(data: dict[str, Any], path: str, name: str, allowed: tuple[str, ...], default: Any = ...) -> str:
    value = _text(data, path, name, default)
    if value not in allowed:
        raise PresetError(path, name, f"'{value}' is not one of: {', '.join(allowed)}")
    return value


def _bounded_int(data: dict[str, Any], path: str, name: str, low: int, high: int, default: int) -> int:
    value = require(data, path, name, int, default=default)
    if name in data and data[name] is not None and not low <= value <= high:
        raise PresetError(path, name, f"{value} is out of range [{low}, {high}]")
    return value


def _short_answer(item: dict[str, Any], path: str, where: str) -> str:
    """Answers may be written as numbers; booleans mean YAML turned an unquoted yes/no into True/False."""
    value = item.get("answer")
    if value is None:
        raise PresetError(path, f"{where}answer", "is required")
    if isinstance(value, bool):
        raise PresetError(path, f"{where}answer",
                          f"YAML read this as the boolean {value}; quote it, e.g. answer: \"yes\"")
    if not isinstance(value, (str, int, float)):
        raise PresetError(path, f"{where}answer", f"expected a string or number, got {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise PresetError(path, f"{where}answer", "must not be empty")
    return text


def _optional_text(data: dict[str, Any], path: str, name: str) -> str | None:
    value = _text(data, path, name, default=None)
    return value if value and value.strip() else None


# ---------------------------------------------------------------- exemplar sets

def _exemplar(item: Any, path: str, index: int) -> Exemplar:
    where = f"items[{index}]."
    if not isinstance(item, dict):
        raise PresetError(path, f"items[{index}]",
                          f"expected a mapping with question/answer/reasoning, got {type(item).__name__}")
    _check_fields(item, path, _ITEM_FIELDS, where)
    question = _text(item, path, "question", where=where)
    answer = _short_answer(item, path, where)
    reasoning = _text(item, path, "reasoning", default=None, where=where)
    if reasoning is not None:
        reasoning = reasoning.strip()
        ending = f"The answer is {answer}."
        if not reasoning.endswith(ending):
            raise PresetError(path, f"{where}reasoning",
                              f"must end with '{ending}' (the short answer), so CoT outputs and answers agree")
    return Exemplar(question=question.strip(), answer=answer, reasoning=reasoning or None)


def load_exemplar_set(path: Path) -> ExemplarSet:
    """Read and validate one exemplar-set file; raises PresetError naming the field."""
    source = str(path)
    data = load_yaml_mapping(path)
    _check_fields(data, source, _SET_FIELDS)
    set_id = _identifier(data, source)
    family = _choice(data, source, "family", FAMILIES)
    items = require(data, source, "items", list)
    if not items:
        raise PresetError(source, "items", "needs at least one exemplar")
    return ExemplarSet(
        id=set_id,
        title=_text(data, source, "title", default=set_id),
        family=family,
        answer_kind=_choice(data, source, "answer_kind", PRESET_ANSWER_KINDS, FAMILY_ANSWER_KINDS[family]),
        items=tuple(_exemplar(item, source, i) for i, item in enumerate(items)),
        description=_text(data, source, "description", default=""),
        path=source,
    )


# ---------------------------------------------------------------- prompting presets

def _instruction_templates(data: dict[str, Any], path: str, mode: str) -> tuple[str, ...]:
    raw = require(data, path, "instruction_templates", list, default=[])
    for i, template in enumerate(raw):
        if not isinstance(template, str) or not template.strip():
            raise PresetError(path, f"instruction_templates[{i}]", "expected a non-empty string")
        if QUESTION_SLOT not in template:
            raise PresetError(path, f"instruction_templates[{i}]",
                              f"must contain {QUESTION_SLOT} where the question goes")
    if mode == "instruction" and not raw:
        raise PresetError(path, "instruction_templates", "mode 'instruction' needs at least one template")
    return tuple(raw)


def _followup(data: dict[str, Any], path: str) -> str | None:
    """An explicit `followup: null` turns the two-step zero-shot CoT answer off."""
    if "followup" in data and data["followup"] is None:
        return None
    value = _text(data, path, "followup", default=DEFAULT_FOLLOWUP)
    return value.strip() or None


def load_prompt_preset(path: Path) -> PromptPreset:
    """Read and validate one preset file on its own; references are checked by `load_presets`."""
    source = str(path)
    data = load_yaml_mapping(path)
    _check_fields(data, source, _PRESET_FIELDS)
    preset_id = _identifier(data, source)
    mode = _choice(data, source, "mode", MODES)
    family = _choice(data, source, "family", FAMILIES)
    exemplar_set = _optional_text(data, source, "exemplar_set")
    if mode in EXEMPLAR_MODES and exemplar_set is None:
        raise PresetError(source, "exemplar_set", f"mode '{mode}' needs an exemplar set id")
    trigger = _text(data, source, "trigger", default=DEFAULT_TRIGGER).strip()
    if not trigger:
        raise PresetError(source, "trigger", "must not be empty")
    return PromptPreset(
        id=preset_id,
        title=_text(data, source, "title", default=preset_id),
        mode=mode,
        family=family,
        answer_kind=_choice(data, source, "answer_kind", PRESET_ANSWER_KINDS, FAMILY_ANSWER_KINDS[family]),
        system_prompt=_optional_text(data, source, "system_prompt"),
        instruction_templates=_instruction_templates(data, source, mode),
        exemplar_set=exemplar_set,
        shots=_bounded_int(data, source, "shots", 0, MAX_SHOTS, default=_SHOTS_UNSET),
        trigger=trigger,
        followup=_followup(data, source),
        samples=_bounded_int(data, source, "samples", 1, MAX_SAMPLES, default=DEFAULT_SAMPLES),
        description=_text(data, source, "description", default=""),
        path=source,
    )


def _resolve_exemplars(preset: PromptPreset, sets: dict[str, ExemplarSet]) -> PromptPreset:
    """Check the exemplar reference and fill in the default shot count (all items, at most 8)."""
    if preset.exemplar_set is None:
        return _with_shots(preset, 0 if preset.shots == _SHOTS_UNSET else preset.shots)
    exemplars = sets.get(preset.exemplar_set)
    if exemplars is None:
        known = ", ".join(sorted(sets)) or "none loaded"
        raise PresetError(preset.path, "exemplar_set", f"no exemplar set '{preset.exemplar_set}' (known: {known})")
    if exemplars.family != preset.family:
        raise PresetError(preset.path, "exemplar_set",
                          f"set '{exemplars.id}' is for family '{exemplars.family}', not '{preset.family}'")
    if preset.mode in REASONING_MODES and not exemplars.has_reasoning:
        raise PresetError(preset.path, "exemplar_set",
                          f"mode '{preset.mode}' needs worked reasoning on every item of '{exemplars.id}'")
    available = min(MAX_SHOTS, len(exemplars.items))
    shots = available if preset.shots == _SHOTS_UNSET else preset.shots
    if shots > len(exemplars.items):
        raise PresetError(preset.path, "shots",
                          f"{shots} shots but set '{exemplars.id}' has {len(exemplars.items)} items")
    return _with_shots(preset, shots)


def _with_shots(preset: PromptPreset, shots: int) -> PromptPreset:
    return replace(preset, shots=shots)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def preset_families(presets_dir: Path | None) -> dict[str, str]:
    """Prompting preset id -> task family (a leaderboard category); empty without a presets folder."""
    return {pid: p.family for pid, p in load_presets(presets_dir).prompting.items()} if presets_dir else {}


def load_presets(presets_dir: Path) -> PresetLibrary:
    """Load presets_dir/exemplars/*.yaml then presets_dir/prompting/*.yaml; bad files are reported and skipped."""
    library = PresetLibrary()
    root = Path(presets_dir)
    for path in _yaml_files(root / "exemplars"):
        try:
            exemplar_set = load_exemplar_set(path)
        except PresetError as exc:
            library.errors.append(exc)
            continue
        if exemplar_set.id in library.exemplars:
            first = library.exemplars[exemplar_set.id].path
            library.errors.append(
                PresetError(str(path), "id", f"duplicate exemplar set id '{exemplar_set.id}' (also in {first})"))
            continue
        library.exemplars[exemplar_set.id] = exemplar_set
    for path in _yaml_files(root / "prompting"):
        try:
            preset = _resolve_exemplars(load_prompt_preset(path), library.exemplars)
        except PresetError as exc:
            library.errors.append(exc)
            continue
        if preset.id in library.prompting:
            first = library.prompting[preset.id].path
            library.errors.append(PresetError(str(path), "id", f"duplicate preset id '{preset.id}' (also in {first})"))
            continue
        library.prompting[preset.id] = preset
    return library


def builtin_presets_dir() -> Path:
    """The presets/ folder shipped with the repository."""
    return Path(__file__).resolve().parents[2] / "presets"


@lru_cache(maxsize=1)
def builtin_presets() -> PresetLibrary:
    """The shipped presets, loaded once per process."""
    return load_presets(builtin_presets_dir())


def default_preset_for(mode: str, family: str = "arithmetic", library: PresetLibrary | None = None) -> PromptPreset:
    """The default preset for a mode and family, from `library` or the shipped presets."""
    return (library or builtin_presets()).default_preset_for(mode, family)
