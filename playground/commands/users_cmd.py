"""`python app.py users add NAME --role admin|annotator [--file F]` and `users list`: the users file.

The password is read without echo (getpass), or from $PLAYGROUND_PASSWORD for scripts and tests;
never from the command line, where every user of the machine could read it in the process list.
"""
from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from playground.auth.users import MIN_PASSWORD, ROLES, read_users, write_user
from playground.config import Settings
from playground.errors import PlaygroundError

NAME = "users"
PASSWORD_ENV = "PLAYGROUND_PASSWORD"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(NAME, help="create users for a shared (team) server: `users add NAME --role ROLE`")
    actions = p.add_subparsers(dest="users_action", metavar="action", required=True)
    add = actions.add_parser("add", help="add a user, or change a user's role and password")
    add.add_argument("name", help="login name (letters, digits, '.', '_', '-')")
    add.add_argument("--role", required=True, choices=ROLES, help="admin: everything; annotator: judge and see "
                     "their own data")
    add.add_argument("--file", type=Path, default=None, help="users file (default: data/users.txt)")
    lst = actions.add_parser("list", help="list the users and their roles (never the hashes)")
    lst.add_argument("--file", type=Path, default=None, help="users file (default: data/users.txt)")


def default_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / "users.txt"


def read_password(name: str) -> str:
    """$PLAYGROUND_PASSWORD, else asked twice without echo."""
    from_env = os.environ.get(PASSWORD_ENV)
    if from_env:
        return from_env
    if not sys.stdin.isatty():
        raise PlaygroundError(f"no terminal to ask {name}'s password on: set {PASSWORD_ENV} for scripts")
    first = getpass.getpass(f"Password for {name} (at least {MIN_PASSWORD} characters): ")
    if getpass.getpass("Again: ") != first:
        raise PlaygroundError("the two passwords differ: nothing was changed")
    return first


def run(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or default_file(settings)
    if args.users_action == "list":
        for user in read_users(path).values():
            print(f"{user.name}\t{user.role}")
        return 0
    is_new = write_user(path, args.name, args.role, read_password(args.name))
    print(f"{'Added' if is_new else 'Updated'} {args.name} ({args.role}) in {path}. Start the server with "
          f"`python app.py --host 0.0.0.0 --auth {path}`", file=sys.stderr)
    return 0
