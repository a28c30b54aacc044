"""User-facing errors: each says what went wrong, where, and how to fix it.

The UI and the CLI catch `PlaygroundError` and show its message; anything else is a bug.
"""
from __future__ import annotations


class PlaygroundError(Exception):
    """A problem the user can act on; the message is shown as is."""


class ModelError(PlaygroundError):
    """A model could not be found, read or loaded."""


class UnknownModelError(ModelError, KeyError):
    """No catalog entry has this id; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class ContextOverflowError(PlaygroundError):
    """The prompt does not fit in the model's context window."""


class PresetError(PlaygroundError):
    """A preset or task file is invalid: names the file, the field and the problem."""

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = str(path), field, problem
        where = f"{self.path}: field '{field}'" if field else self.path
        super().__init__(f"{where}: {problem}")
