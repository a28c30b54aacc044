"""The sign-in check Gradio calls on POST /login: throttled, and never on the event loop.

Gradio awaits an async auth function on its one event thread. The scrypt check (~50 ms of CPU,
see users.py) therefore runs in a worker thread, one check at a time (on a small machine a
flood of checks would otherwise take every core from the people already signed in), and only
after `LoginThrottle` lets the attempt in. While a name or an address is paused the answer is
held back (asyncio.sleep: free for the server) up to `HOLD_S`, then, if the pause is longer, it
is an HTTP 429 that says how long to wait. The held answer is the "delay that grows" a person
sees; the 429 is what a script sees, and each one still costs it `HOLD_S` per connection.
"""
from __future__ import annotations

import asyncio
import math
from contextvars import ContextVar

from fastapi import HTTPException

from playground.auth.throttle import LoginThrottle
from playground.auth.users import UserTable

HOLD_S = 2.0               # the longest an answer is held back before a pause is refused outright
CHECKS_AT_ONCE = 1         # password checks running at once (each takes a core for ~50 ms)
# the client address of the POST /login being answered, set by the web gate (auth/gate.py):
# Gradio hands the auth function only the name and the password
LOGIN_CLIENT: ContextVar[str] = ContextVar("login_client", default="unknown")


class LoginGuard:
    """`verify` is what `Blocks.launch(auth=...)` takes on a team server."""

    def __init__(self, users: UserTable, throttle: LoginThrottle | None = None) -> None:
        self.users = users
        self.throttle = throttle or LoginThrottle()
        self._checks: asyncio.Semaphore | None = None      # made on the server's loop, on first use

    async def verify(self, name: str, password: str) -> bool:
        """True for the right password; HTTP 429 with the wait while the name or address is paused."""
        address = LOGIN_CLIENT.get()
        while (pause := self.throttle.pause(name, address)) is not None:
            if pause.seconds <= HOLD_S:
                await asyncio.sleep(pause.seconds)
                continue
            await asyncio.sleep(HOLD_S)
            if (pause := self.throttle.pause(name, address)) is not None:
                raise HTTPException(status_code=429, detail=pause.message(),
                                    headers={"Retry-After": str(max(1, math.ceil(pause.seconds)))})
        self.throttle.attempt(name, address)
        if self._checks is None:
            self._checks = asyncio.Semaphore(CHECKS_AT_ONCE)
        async with self._checks:
            ok = await asyncio.to_thread(self.users.verify, name, password)
        if ok:
            self.throttle.succeeded(name, address)
        return ok
