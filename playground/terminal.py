"""Text from the database on a terminal: control characters are printed escaped, never executed.

Why: a model name, note or voter typed (or imported) with ESC, NUL or other control characters
would otherwise drive the reader's terminal (move the cursor, rewrite lines, set the title) when
`python app.py leaderboard` or another command prints it.
"""
from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

# C0 controls but newline, tab and carriage return (the output's own layout), DEL and the C1 controls;
# written as \u001b, which is also a valid escape inside the JSON some commands print.
_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if code not in (9, 10, 13)}


def printable(text: str) -> str:
    """`text` for one line or cell: every character that is not printable shown as its escape (\\x1b, \\n, \\u202e)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class EscapingStream:
    """A text stream that writes control characters as escapes (newline, tab and CR pass)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(text.translate(_ESCAPES))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def escaped_output() -> Iterator[None]:
    """stdout and stderr escape control characters inside the block (a CLI command's run)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(sys.stdout), EscapingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
