"""The users file: one user per line, `name:role:scrypt$n$r$p$salt$hash`, written by `users add`.

Passwords are never stored or passed on the command line: the file holds a salted scrypt hash
(standard library `hashlib.scrypt`, 16 MiB of memory and ~50 ms per check, which is what makes
guessing slow), and the password reaches `users add` through a no-echo prompt or an env var.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from playground.errors import PlaygroundError

ROLES = ("admin", "annotator")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES, SALT_BYTES = 2 ** 14, 8, 1, 32, 16
MIN_PASSWORD = 8
HEADER = "# playground users: name:role:scrypt hash. Add or change one with `python app.py users add NAME --role ROLE`.\n"


class UsersFileError(PlaygroundError):
    """The users file is missing or has a line that is not name:role:hash."""


@dataclass(frozen=True)
class UserEntry:
    name: str
    role: str
    password_hash: str

    def line(self) -> str:
        return f"{self.name}:{self.role}:{self.password_hash}"


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$key`, salt and key in base64."""
    salt = salt or secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)])


def check_password(password: str, password_hash: str) -> bool:
    """True when password matches the stored hash (constant-time comparison)."""
    try:
        kind, n, r, p, salt, key = password_hash.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = KEY_BYTES) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=dklen)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise PlaygroundError(f"user name {name!r} is not allowed: use 1-64 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise PlaygroundError(f"role {role!r} is not known: use {' or '.join(ROLES)}")
    return role


def read_users(path: Path) -> dict[str, UserEntry]:
    """Every user in the file, by name; UsersFileError names the file and line of a bad entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsersFileError(f"the users file {path} does not exist: create it with "
                             f"`python app.py users add NAME --role admin --file {path}`") from None
    except OSError as exc:
        raise UsersFileError(f"cannot read the users file {path}: {exc.strerror or exc}") from None
    users: dict[str, UserEntry] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 3 or not parts[2].startswith("scrypt$"):
            raise UsersFileError(
                f"{path}:{n}: expected name:role:scrypt-hash. Plain user:password lines are no longer "
                "accepted (a password must not sit in a file or on a command line in clear): recreate the "
                f"user with `python app.py users add NAME --role admin|annotator --file {path}`")
        name, role, password_hash = parts
        try:
            users[check_name(name)] = UserEntry(name, check_role(role), password_hash)
        except PlaygroundError as exc:
            raise UsersFileError(f"{path}:{n}: {exc}") from None
    return users


def write_user(path: Path, name: str, role: str, password: str) -> bool:
    """Add the user, or replace their role and password; True when the user is new.

    The file is rewritten through a temporary file and a rename, readable by its owner only.
    """
    path = Path(path)
    check_name(name)
    check_role(role)
    if len(password) < MIN_PASSWORD:
        raise PlaygroundError(f"the password for {name} is too short: use at least {MIN_PASSWORD} characters")
    users = read_users(path) if path.exists() else {}
    is_new = name not in users
    users[name] = UserEntry(name, role, hash_password(password))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(HEADER + "".join(u.line() + "\n" for u in users.values()))
    os.replace(tmp, path)
    return is_new


class UserTable:
    """The users of one running server, read once at start; `verify` is Gradio's auth callable."""

    def __init__(self, users: dict[str, UserEntry], path: Path | None = None) -> None:
        if not users:
            raise UsersFileError(f"the users file {path} has no users: add one with `python app.py users add`")
        self._users = users
        self.path = path
        self._dummy = hash_password(secrets.token_hex(8))   # unknown names cost as much as known ones

    @classmethod
    def load(cls, path: Path) -> "UserTable":
        return cls(read_users(path), Path(path))

    def verify(self, name: str, password: str) -> bool:
        entry = self._users.get(name or "")
        ok = check_password(password or "", entry.password_hash if entry else self._dummy)
        return ok and entry is not None

    def role(self, name: str | None) -> str | None:
        entry = self._users.get(name or "")
        return entry.role if entry else None

    def names(self) -> list[str]:
        return list(self._users)
