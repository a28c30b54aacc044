"""What a blind Arena side shows while it streams: both sides start at the same moment.

A side whose prompt is long (few-shot exemplars) shows its first token seconds after a short one
(zero-shot): on a busy machine 44 s against 5 s. Shown live, that gap names the long-prompt side
before a word is read. So each side's text is held back until both sides have begun, and from
then on each side is replayed from its own first token, at the pace it was written: the side that
began early plays its buffered text as if it had begun at the common start, instead of showing
everything it wrote in one burst. The late side is shown live. Both answers end on screen when
their replay reaches the moment the side finished, and only then does the round open for a vote.

Pure and clock-driven (times are passed in), so tests run it without a model or a browser.
Cost: one (time, text) entry per poll where a side's text changed, dropped once it is shown.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Sequence


@dataclass
class _Side:
    began: float | None = None                 # when its first visible character (or its end) arrived
    frames: deque[tuple[float, str]] = field(default_factory=deque)   # (seconds after `began`, text)
    ended: float | None = None                 # seconds after `began` at which it finished
    last: str = ""


class AlignedStart:
    """Holds each side's text until every side has begun, then replays each from its own start."""

    def __init__(self, n_sides: int = 2) -> None:
        self._sides = [_Side() for _ in range(n_sides)]

    def feed(self, now: float, texts: Sequence[str], done: Sequence[bool]) -> None:
        """Record what each side has written by `now` and whether it has finished."""
        for side, text, finished in zip(self._sides, texts, done, strict=True):
            if side.began is None and (text.strip() or finished):
                side.began = now
            if side.began is None:
                continue
            if text != side.last or not side.frames:
                side.frames.append((now - side.began, text))
                side.last = text
            if finished and side.ended is None:
                side.ended = now - side.began

    @property
    def start(self) -> float | None:
        """The common start: when the last side began (None until every side has)."""
        began = [s.began for s in self._sides]
        return None if any(b is None for b in began) else max(began)   # type: ignore[type-var]

    def shown(self, now: float) -> list[str] | None:
        """Each side's text as shown at `now`, or None while some side has not begun."""
        start = self.start
        if start is None:
            return None
        elapsed = now - start
        out = []
        for side in self._sides:
            while len(side.frames) > 1 and side.frames[1][0] <= elapsed:
                side.frames.popleft()            # shown already: the next frame is due
            out.append(side.frames[0][1] if side.frames and side.frames[0][0] <= elapsed else "")
        return out

    def remaining(self, now: float) -> float | None:
        """Seconds until every side's replay reaches its end (0 when it has), or None while a side
        is still writing or has not begun."""
        start = self.start
        if start is None or any(s.ended is None for s in self._sides):
            return None
        return max(0.0, max(s.ended for s in self._sides) - (now - start))   # type: ignore[type-var]
