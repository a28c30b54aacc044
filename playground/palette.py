"""One colour per prompting mode and per model, for every figure (matplotlib files and plotly views).

Colours used to come from each figure's own colour cycle, so zero-shot was blue in one plot and
orange in the next. Modes get fixed colours (the six of `prompting.modes`, in their usual order);
any other name (a model id, a task, a pair label) gets a colour from its text, so the same
model has the same colour in every figure and every session.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Iterable

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
# a mode's further series: its hue darker (< 0, toward black) or lighter (> 0, toward white)
SHADES = (0.0, -0.45, 0.45, -0.7, 0.7)
# (matplotlib marker, plotly symbol): the same shapes in files and in the browser
MARKERS = (("o", "circle"), ("s", "square"), ("^", "triangle-up"), ("D", "diamond"), ("v", "triangle-down"),
           ("P", "cross"), ("X", "x"), ("*", "star"), ("<", "triangle-left"), (">", "triangle-right"))


@dataclass(frozen=True)
class SeriesStyle:
    """How one line is drawn: its colour, its matplotlib marker and the same shape's plotly symbol."""
    colour: str
    marker: str
    symbol: str


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


def _shade(hex_colour: str, amount: float) -> str:
    channels = [int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]
    target = 255 if amount > 0 else 0
    return "#" + "".join(f"{round(c + (target - c) * abs(amount)):02X}" for c in channels)


def _natural(label: str) -> list:
    """Sort key reading numbers as numbers: "k=2" before "k=10"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", label)]


def series_styles(labels: Iterable[str]) -> dict[str, SeriesStyle]:
    """A distinct colour and marker for every line of one figure. A mode keeps its hue in every
    figure (its first series, in natural order, has the mode's own colour; "few_shot_cot k=1" or
    a second model under the same mode get darker and lighter shades of it), so two series of one
    mode never look alike; other labels keep their own colour, or the next free one when taken.
    Markers follow the natural order, so the same lines get the same shapes in every figure."""
    ordered = sorted(set(labels), key=_natural)
    used: set[str] = set()
    per_mode: dict[str, int] = {}
    styles: dict[str, SeriesStyle] = {}
    for i, label in enumerate(ordered):
        first = label.split()[0] if label.split() else ""
        if first in MODE_COLOURS:
            nth = per_mode.get(first, 0)
            per_mode[first] = nth + 1
            hue = _shade(MODE_COLOURS[first], SHADES[nth % len(SHADES)])
            if nth >= len(SHADES):                    # past the shades: a colour of its own
                hue = colour(label)
        else:
            hue = colour(label)
        if hue.upper() in used:
            free = [c for c in OTHER_COLOURS if c.upper() not in used]
            hue = free[0] if free else hue
        used.add(hue.upper())
        marker, symbol = MARKERS[i % len(MARKERS)]
        styles[label] = SeriesStyle(hue, marker, symbol)
    return styles
