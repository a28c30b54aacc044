"""Who is asking, and what they may do: the roles model in one place.

Three modes, fixed when the server starts:
- `local`: bound to this machine, no login: the one person at the keyboard is `local`, an admin
  (the app works exactly as it always did);
- `open`: reachable from other machines with `--insecure-no-auth`: nobody logs in, every visitor
  is an admin, and every page says so in a banner;
- `team`: `--auth FILE`: everyone logs in; the users file gives each an `admin` or `annotator` role.

Admins do everything. Annotators chat, compare, battle and vote, see the aggregate leaderboard and
their own votes and downloads; they cannot add models or servers, download from the Hub, re-scan,
run the lab, or download other people's data. Which controls and handlers those are is listed in
`playground/auth/policy.py`; the check itself is `User.require_admin`, made from the gr.Request.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playground.auth.users import UserTable
from playground.errors import PlaygroundError

ADMIN, ANNOTATOR = "admin", "annotator"
MODES = ("local", "open", "team")
INSECURE_BANNER = ("⚠️ **No login:** this playground is reachable from other machines without a password "
                   "(`--insecure-no-auth`). Anyone who can open this page can do everything, including admin "
                   "operations. Restart it with `--auth FILE` to require a login.")


class AccessDenied(PlaygroundError):
    """An annotator asked for an admin-only operation."""


@dataclass(frozen=True)
class User:
    """The person behind one request."""

    name: str
    role: str
    logged_in: bool = True

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    @property
    def voter(self) -> str | None:
        """Whose votes are "theirs": their `votes.voter` (the login name); None = every vote
        (single-user modes, where all votes on the machine are the one user's)."""
        return self.name if self.logged_in else None

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise AccessDenied(f"only an admin can {what}: you are signed in as {self.name} ({self.role}). "
                               "Ask an admin of this playground to do it.")

    def label(self) -> str:
        return f"{self.name} ({self.role})" if self.logged_in else f"{self.name} (admin, no login)"


LOCAL_USER = User("local", ADMIN, logged_in=False)
OPEN_USER = User("anyone", ADMIN, logged_in=False)


@dataclass(frozen=True)
class Access:
    """The server's access mode and users; lives on AppContext, read by every guarded handler."""

    mode: str = "local"
    users: UserTable | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown access mode {self.mode!r}")
        if (self.mode == "team") != (self.users is not None):
            raise ValueError("team mode needs a users table, and only team mode has one")

    @property
    def login_required(self) -> bool:
        return self.mode == "team"

    def user(self, request: Any) -> User:
        """The user of a gr.Request (None outside a request: the local user)."""
        if self.mode == "local":
            return LOCAL_USER
        if self.mode == "open":
            return OPEN_USER
        name = getattr(request, "username", None) or ""
        role = self.users.role(name) if self.users else None
        return User(name, role or ANNOTATOR)    # unknown in the table: the least rights

    def gradio_auth(self) -> Any:
        """What `Blocks.launch(auth=...)` takes: the throttled password check (async, off the event
        loop: auth/login.py), or None without login."""
        from playground.auth.login import LoginGuard

        return LoginGuard(self.users).verify if self.users is not None else None
