"""How many wrong passwords a user name and a client address get before sign-in pauses for them.

Each name gets `FREE_PER_NAME` misses in a row, each address `FREE_PER_ADDRESS` (an office behind
one address has many people); after that every further miss pauses sign-in for that name or
address, for `FIRST_PAUSE_S` and then twice as long each time, up to `MAX_PAUSE_S`. A right
password ends a name's run of misses; misses are forgotten after `FORGET_AFTER_S` without one.

An attempt counts as a miss from the moment it is let in (the password check is slow), and the
success undoes it: sixteen guesses sent at once cannot all slip in before the first is judged.
Refused attempts count nothing, so a flood cannot stretch a pause forever, only wait it out.
Pure bookkeeping with an injectable clock; `playground/auth/login.py` makes the HTTP answers.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

FREE_PER_NAME = 5
FREE_PER_ADDRESS = 20
FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 300.0
FORGET_AFTER_S = 900.0
MAX_TRACKED = 10_000         # names and addresses remembered at once (unknown names too): bounded memory


@dataclass
class _Misses:
    count: int = 0
    paused_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Pause:
    """Sign-in is paused for `who` ("the name 'ada'" or "your address") for `seconds` more."""

    who: str
    seconds: float
    misses: int

    def message(self) -> str:
        wait = max(1, round(self.seconds))
        return (f"Too many wrong passwords for {self.who} ({self.misses} in a row): sign-in is paused for "
                f"{wait} s more. Wait, then try again; each further wrong password doubles the pause "
                f"(up to {MAX_PAUSE_S / 60:.0f} min).")


class LoginThrottle:
    """Misses per user name and per client address, and the pauses they earn."""

    def __init__(self, *, free_per_name: int = FREE_PER_NAME, free_per_address: int = FREE_PER_ADDRESS,
                 first_pause_s: float = FIRST_PAUSE_S, max_pause_s: float = MAX_PAUSE_S,
                 forget_after_s: float = FORGET_AFTER_S, max_tracked: int = MAX_TRACKED,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free = {"name": free_per_name, "address": free_per_address}
        self.first_pause_s, self.max_pause_s = first_pause_s, max_pause_s
        self.forget_after_s, self.max_tracked = forget_after_s, max_tracked
        self.clock = clock
        # names and addresses apart: a flood of made-up names cannot push its address's misses out
        self._misses: dict[str, OrderedDict[str, _Misses]] = {"name": OrderedDict(), "address": OrderedDict()}

    def pause(self, name: str, address: str) -> Pause | None:
        """The longer pause on this name or address now, or None: the attempt may go ahead."""
        now = self.clock()
        pauses = []
        for kind, key, who in (("name", name, f"the name '{name[:64]}'"), ("address", address, "your address")):
            misses = self._get(kind, key, now)
            if misses is not None and misses.paused_until > now:
                pauses.append(Pause(who, misses.paused_until - now, misses.count))
        return max(pauses, key=lambda p: p.seconds, default=None)

    def attempt(self, name: str, address: str) -> None:
        """Count an attempt that is let in as a miss (undone by `succeeded`)."""
        now = self.clock()
        for kind, key in (("name", name), ("address", address)):
            misses = self._get(kind, key, now) or self._add(kind, key)
            misses.count += 1
            misses.last = now
            over = misses.count - self.free[kind]
            if over >= 0:
                misses.paused_until = now + min(self.max_pause_s, self.first_pause_s * 2 ** min(over, 32))

    def succeeded(self, name: str, address: str) -> None:
        """The password was right: the name starts afresh, and the address gets its miss back."""
        self._misses["name"].pop(name, None)
        misses = self._misses["address"].get(address)
        if misses is not None:
            misses.count = max(0, misses.count - 1)

    def _get(self, kind: str, key: str, now: float) -> _Misses | None:
        misses = self._misses[kind].get(key)
        if misses is not None and now - misses.last > self.forget_after_s and misses.paused_until <= now:
            del self._misses[kind][key]
            return None
        return misses

    def _add(self, kind: str, key: str) -> _Misses:
        table = self._misses[kind]
        while len(table) >= self.max_tracked:
            table.popitem(last=False)          # the oldest first
        misses = table[key] = _Misses()
        return misses
