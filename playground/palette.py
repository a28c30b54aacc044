"""One colour per prompting mode and per model, for every figure (matplotlib files and plotly views).

Colours used to come from each figure's own colour cycle, so zero-shot was blue in one plot and
orange in the next. Modes get fixed colours (the six of `prompting.modes`, in their usual order);
any other name (a model id, a task, a pair label) gets a colour from its text, so the same
model has the same colour in every figure and every session.
"""
from __future__ import annotations

import zlib

# Okabe-Ito (colour-blind safe) for the modes, in the Playground's order
MODE_COLOURS: dict[str, str] = {
    "zero_shot": "#0072B2",         # blue
    "few_shot": "#E69F00",          # orange
    "zero_shot_cot": "#009E73",     # green
    "few_shot_cot": "#CC79A7",      # pink
    "instruction": "#D55E00",       # vermilion
    "self_consistency": "#56B4E9",  # sky blue
}
# for models and anything else: Tableau 10 without the hues taken above
OTHER_COLOURS = ("#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#76B7B2", "#EDC948", "#9C755F",
                 "#FF9DA7", "#BAB0AC")
KIND_COLOURS = {"base": "#999999", "instruct": "#0072B2"}


def colour(name: str) -> str:
    """The colour of a mode, model or label; a label that starts with a mode ("few_shot k=2",
    "zero_shot · task") takes that mode's colour."""
    key = (name or "").strip()
    if key in MODE_COLOURS:
        return MODE_COLOURS[key]
    if key in KIND_COLOURS:
        return KIND_COLOURS[key]
    first = key.split()[0] if key else ""
    if first in MODE_COLOURS:
        return MODE_COLOURS[first]
    return OTHER_COLOURS[zlib.crc32(key.encode("utf-8")) % len(OTHER_COLOURS)]


def contestant_colours(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Leaderboard contestants ("model" or "model + mode"): by mode when they are the modes of one
    model (the bundled-model case), else by contestant."""
    parts = [name.rsplit(" + ", 1) for name in names]
    one_model = all(len(p) == 2 for p in parts) and len({p[0] for p in parts}) == 1
    return {name: colour(p[1] if one_model else name) for name, p in zip(names, parts, strict=True)}
