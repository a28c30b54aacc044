"""Judge prompts (presets/judges/*.yaml, one per file, validated like the other presets) and the
parsing of a judge's verdict.

A judge prompt file:

    id: general                     # letters, digits, '-', '_', '.'; part of the judge's name
    title: ...                      # optional
    description: ...                # optional
    kind: pairwise                  # pairwise | reference (needs {reference}: a known answer)
    allow_both_bad: true            # may the judge answer [[D]] (both bad)?
    max_tokens: 512                 # optional, 1..4096: the judge's token budget
    system_prompt: ...              # optional; must name the verdict format
    template: "... {question} ... {answer_a} ... {answer_b} ..."

The verdict is the judge's last line of defence against guessing: exactly one distinct marker
among [[A]], [[B]], [[C]] (tie) and [[D]] (both bad, when allowed) anywhere in the output, else
the output is `unparseable` (stored as such and counted, never guessed). This is MT-Bench's own
rule. Small judges sometimes write "[Assistant A]" instead; `parse_verdict(..., variants=True)`
counts that form too (bench/judge_sizes.py reports both), but the app keeps the strict rule:
every such output recorded so far named the answer shown first, and the pairs it would complete
were inconsistent, i.e. position rather than judgement (docs/benchmarks.md "Judges of three sizes").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playground.errors import PlaygroundError, PresetError
from playground.yamlfiles import load_yaml_mapping, require

KINDS = ("pairwise", "reference")
LABELS = ("A", "B", "tie", "both_bad")
UNPARSEABLE = "unparseable"
SLOTS = ("{question}", "{answer_a}", "{answer_b}")
_FIELDS = frozenset({"id", "title", "description", "kind", "allow_both_bad", "max_tokens", "system_prompt",
                     "template"})
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MARKER_RE = re.compile(r"\[\[\s*(A|B|C|D|tie|both[ _-]?bad)\s*\]\]", re.IGNORECASE)
_MARKER_LABEL = {"a": "A", "b": "B", "c": "tie", "tie": "tie", "d": "both_bad"}
# The variants small judges write instead of [[A]]: "[[Assistant A]]" and "[Assistant A]" (never
# "[Assistant A's Answer]", which echoes the template's own headers, nor a bare "[A]").
_VARIANT_RE = re.compile(r"\[\[\s*assistant\s+(A|B)\s*\]\]|\[\s*assistant\s+(A|B)\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class JudgePrompt:
    id: str
    title: str
    kind: str
    template: str
    system_prompt: str | None = None
    allow_both_bad: bool = False
    max_tokens: int = 512
    description: str = ""
    path: str = ""

    def messages(self, question: str, answer_a: str, answer_b: str,
                 reference: str | None = None) -> list[dict[str, str]]:
        """The chat messages sent to the judge for one order of one pair."""
        if self.kind == "reference" and not reference:
            raise PlaygroundError(f"judge prompt '{self.id}' needs a reference answer; this question has none")
        user = (self.template.replace("{reference}", reference or "").replace("{answer_a}", answer_a)
                .replace("{answer_b}", answer_b).replace("{question}", question))
        system = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        return [*system, {"role": "user", "content": user}]


@dataclass
class JudgePromptLibrary:
    prompts: dict[str, JudgePrompt] = field(default_factory=dict)
    errors: list[PresetError] = field(default_factory=list)

    def get(self, prompt_id: str) -> JudgePrompt:
        if prompt_id not in self.prompts:
            known = ", ".join(sorted(self.prompts)) or "none"
            skipped = "".join(f"; skipped {e}" for e in self.errors)
            raise PlaygroundError(f"no judge prompt '{prompt_id}' (known: {known}); add "
                                  f"presets/judges/{prompt_id}.yaml{skipped}")
        return self.prompts[prompt_id]


def parse_verdict(output: str, allow_both_bad: bool = True, variants: bool = False) -> str:
    """A, B, tie, both_bad, or `unparseable`: none, several different markers, or [[D]] when the
    prompt does not allow it. Never a guess from the wording. `variants` also counts
    "[[Assistant A]]" and "[Assistant A]" (A or B only) as markers, under the same one-verdict
    rule; the app does not use it (see the module docstring)."""
    text = output or ""
    found = {_MARKER_LABEL.get(m.lower(), "both_bad") for m in _MARKER_RE.findall(text)}
    if variants:
        found |= {_MARKER_LABEL[(a or b).lower()] for a, b in _VARIANT_RE.findall(text)}
    if len(found) != 1:
        return UNPARSEABLE
    label = found.pop()
    if label == "both_bad" and not allow_both_bad:
        return UNPARSEABLE
    return label


def label_to_side(label: str, order: str) -> str:
    """The judge's label in the battle's terms: order AB shows left as A, BA shows right as A."""
    if label in ("tie", "both_bad", UNPARSEABLE):
        return label
    first, second = ("left", "right") if order == "AB" else ("right", "left")
    return first if label == "A" else second


def _text(data: dict[str, Any], path: str, name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise PresetError(path, name, "is required")
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise PresetError(path, name, f"expected a non-empty string, got {type(value).__name__} {value!r}")
    return value


def load_judge_prompt(path: Path) -> JudgePrompt:
    """One file; raises PresetError(file, field, problem) naming what to fix."""
    p = str(path)
    data = load_yaml_mapping(path)
    for key in data:
        if key not in _FIELDS:
            raise PresetError(p, key, f"unknown field (known: {', '.join(sorted(_FIELDS))})")
    prompt_id = _text(data, p, "id")
    if not _ID_RE.match(prompt_id) or "@" in prompt_id:
        raise PresetError(p, "id", f"'{prompt_id}' may only use letters, digits, '-', '_' and '.'")
    kind = _text(data, p, "kind")
    if kind not in KINDS:
        raise PresetError(p, "kind", f"'{kind}' is not one of: {', '.join(KINDS)}")
    template = _text(data, p, "template")
    for slot in SLOTS + (("{reference}",) if kind == "reference" else ()):
        if slot not in template:
            raise PresetError(p, "template", f"must contain {slot}")
    if kind == "pairwise" and "{reference}" in template:
        raise PresetError(p, "template", "{reference} is only for kind: reference")
    system = _text(data, p, "system_prompt", required=False)
    allow_both_bad = require(data, p, "allow_both_bad", bool, default=False)
    instructions = (system or "") + template
    needed = ("[[A]]", "[[B]]", "[[C]]") + (("[[D]]",) if allow_both_bad else ())
    missing = [m for m in needed if m not in instructions]
    if missing:
        raise PresetError(p, "system_prompt", f"the prompt must tell the judge the verdict format: "
                                              f"{', '.join(missing)} not mentioned")
    max_tokens = require(data, p, "max_tokens", int, default=512)
    if not 1 <= max_tokens <= 4096:
        raise PresetError(p, "max_tokens", f"{max_tokens} is out of range [1, 4096]")
    title = _text(data, p, "title", required=False) or prompt_id
    description = _text(data, p, "description", required=False) or ""
    return JudgePrompt(id=prompt_id, title=title, kind=kind, template=template, system_prompt=system,
                       allow_both_bad=allow_both_bad, max_tokens=max_tokens, description=description.strip(),
                       path=p)


def load_judge_prompts(presets_dir: Path) -> JudgePromptLibrary:
    """Every presets/judges/*.yaml; a bad file is reported in `errors` and skipped, never raised."""
    library = JudgePromptLibrary()
    folder = Path(presets_dir) / "judges"
    for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
        try:
            prompt = load_judge_prompt(path)
        except PresetError as exc:
            library.errors.append(exc)
            continue
        if prompt.id in library.prompts:
            library.errors.append(PresetError(str(path), "id", f"'{prompt.id}' is already defined in "
                                                               f"{library.prompts[prompt.id].path}"))
            continue
        library.prompts[prompt.id] = prompt
    return library
