"""Text as it enters the app: lone UTF-16 surrogates (`\\ud800`) replaced by U+FFFD.

JSON lets a client send half of a surrogate pair; Python keeps it in a str, and it breaks every
later encoding of that text (Gradio's reply, the SQLite row, the chat history a session carries
on), so one such message would leave a Chat session failing for good. Every handler of the built
app gets its string inputs cleaned once, at the boundary (`clean_inputs_in`); values with nothing
to clean are passed on as the very same objects (handlers may keep state objects by identity).
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable

import gradio as gr

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(value: Any) -> Any:
    """`value` with lone surrogates in its strings (also inside lists, tuples, dicts) replaced by
    U+FFFD; the same object when there is none."""
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, (list, tuple)):
        cleaned = [clean_text(v) for v in value]
        if all(a is b for a, b in zip(cleaned, value, strict=True)):
            return value
        return type(value)(cleaned) if isinstance(value, list) else tuple(cleaned)
    if isinstance(value, dict):
        cleaned_items = {k: clean_text(v) for k, v in value.items()}
        if all(cleaned_items[k] is v for k, v in value.items()):
            return value
        return cleaned_items
    return value


def cleaning_inputs(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its arguments passed through `clean_text` (same signature and generator-ness)."""
    def args_of(args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return tuple(clean_text(a) for a in args), {k: clean_text(v) for k, v in kwargs.items()}

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            a, k = args_of(args, kwargs)
            yield from fn(*a, **k)
    elif inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            a, k = args_of(args, kwargs)
            async for value in fn(*a, **k):
                yield value
    elif inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            a, k = args_of(args, kwargs)
            return await fn(*a, **k)
    else:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            a, k = args_of(args, kwargs)
            return fn(*a, **k)
    if not hasattr(fn, "__annotations__"):   # a functools.partial: Gradio reads no hints from it either
        wrapper.__annotations__ = {}
    return wrapper


def clean_inputs_in(demo: gr.Blocks) -> None:
    """Wrap every handler of a built Blocks (call after all events are wired)."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None:
            block_fn.fn = cleaning_inputs(block_fn.fn)
