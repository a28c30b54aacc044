"""What the browser sees when a handler fails: a message for people and a short error id.

Every handler of the built app is wrapped once (`hide_internal_errors`): a `gr.Error` passes as
is; a `PlaygroundError` (written for users) is shown with an id; anything else is a bug, shown as
"internal error, id X" while its traceback goes to the server log under the same id, so a user
can report the id and the admin can find the traceback. The app launches with show_error=False,
so Gradio itself never sends exception text to the browser.
"""
from __future__ import annotations

import functools
import inspect
import logging
import secrets
from typing import Any, Callable

import gradio as gr

from playground.errors import PlaygroundError

log = logging.getLogger("playground.errors")


def shown_error(exc: Exception) -> gr.Error:
    """The gr.Error the browser gets for `exc`; the traceback is logged under the same id."""
    error_id = secrets.token_hex(4)
    if isinstance(exc, PlaygroundError):
        log.warning("error %s: %s", error_id, exc)
        return gr.Error(f"{exc} (error id {error_id})")
    log.error("internal error %s in a handler", error_id, exc_info=exc)
    return gr.Error(f"Something went wrong inside the playground (error id {error_id}). Your votes and "
                    "answers so far are kept; try again, and if it happens again give the admin this id: "
                    "the details are in the server log.", title="Internal error")


def hide_internal_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with its exceptions turned into `shown_error`s (same signature, same generator-ness)."""
    if getattr(fn, "_errors_hidden", False):
        return fn
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise shown_error(exc) from None
    elif inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                async for value in fn(*args, **kwargs):
                    yield value
            except gr.Error:
                raise
            except Exception as exc:
                raise shown_error(exc) from None
    elif inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise shown_error(exc) from None
    else:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise shown_error(exc) from None
    if not hasattr(fn, "__annotations__"):   # a functools.partial: Gradio reads no hints from it either
        wrapper.__annotations__ = {}
    wrapper._errors_hidden = True
    return wrapper


def hide_errors_in(demo: gr.Blocks) -> None:
    """Wrap every handler of a built Blocks (call after all events are wired)."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None:
            block_fn.fn = hide_internal_errors(block_fn.fn)
