"""Which controls are admin-only, and how a built Blocks enforces that for every request.

Tabs do not check roles themselves: they give their controls elem_ids, and this table names the
admin-only ones. `apply_policy` then, for each event of the built app,
- refuses it server-side for non-admins when one of its triggers is admin-only (the handler is
  wrapped; gradio_client callers get the same refusal as the browser);
- blanks outputs listed in REDACTED_OUTPUTS for non-admins (other people's data);
and hides the admin-only controls from non-admins on page load (showing them, instead, the notes in
ADMIN_ONLY_NOTES that say who can). A test checks that every id
below exists in the app, so renaming a control cannot silently drop its protection.
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import gradio as gr

from playground.auth.access import Access, AccessDenied

# elem_id -> what it does (the refusal says "only an admin can <what>")
ADMIN_ELEMENTS: dict[str, str] = {
    "models-rescan": "re-scan the models",
    "models-hub": "download models from the Hugging Face Hub",
    "models-hub-download": "download models from the Hugging Face Hub",
    "models-remote": "add remote model servers",
    "models-remote-add": "add remote model servers",
    "lab-run": "run the lab",
    "lab-cancel": "cancel lab runs",
    "lab-upload": "upload lab task files",
    "train-start": "train models",
    "train-cancel": "cancel training",
    "train-battle": "set the Arena pool",
    "arena-judge-controls": "run judge models",
    "arena-judge-run": "run judge models",
    "lb-data-note": "download everyone's votes and conversations",
    "lb-download-dpo": "download everyone's votes and conversations",
    "lb-download-dpo-meta": "download everyone's votes and conversations",
    "lb-download-dpo-conv": "download everyone's votes and conversations",
    "lb-download-dpo-conv-meta": "download everyone's votes and conversations",
    "lb-download-kto": "download everyone's votes and conversations",
    "lb-download-battles": "download everyone's votes and conversations",
    "lb-prepare-data": "download everyone's votes and conversations",
    "lb-anonymous": "download everyone's votes and conversations",
    "lb-model-filter": "download everyone's votes and conversations",
    "lb-mode-filter": "download everyone's votes and conversations",
    "lb-dedupe": "download everyone's votes and conversations",
}
# notes that say why a tab's admin controls are missing ("ask an admin"): shown to non-admins only,
# so an annotator facing the Lab's or the Train tab's form is not left looking for its button
ADMIN_ONLY_NOTES: frozenset[str] = frozenset({"lab-admin-only", "train-admin-only", "models-admin-only"})
# outputs that carry everyone's data: emptied for non-admins (annotators get theirs in "My votes")
REDACTED_OUTPUTS: frozenset[str] = frozenset({
    "lb-download-dpo", "lb-download-dpo-meta", "lb-download-dpo-conv", "lb-download-dpo-conv-meta",
    "lb-download-kto", "lb-download-battles",
})


def apply_policy(demo: gr.Blocks, access: Access) -> None:
    """Guard every event of `demo` and hide admin controls from non-admins. Call inside `with demo:`."""
    by_id = {block_id: block for block_id, block in demo.blocks.items()}
    for block_fn in list(demo.fns.values()):
        if block_fn.fn is None:
            continue
        triggers = [getattr(by_id.get(block_id), "elem_id", None) for block_id, _ in block_fn.targets]
        refused = next((ADMIN_ELEMENTS[t] for t in triggers if t in ADMIN_ELEMENTS), None)
        redact = [i for i, out in enumerate(block_fn.outputs) if getattr(out, "elem_id", None) in REDACTED_OUTPUTS]
        if refused or redact:
            block_fn.fn = guarded(block_fn.fn, access, refuse=refused, redact=redact, n_outputs=len(block_fn.outputs))
    if not access.login_required:
        return      # local and open modes: everyone is an admin, everything stays visible
    hidden = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) in ADMIN_ELEMENTS]
    for block in hidden:
        block.visible = False            # until the page load says this user is an admin
    notes = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) in ADMIN_ONLY_NOTES]

    def show_admin_controls(request: gr.Request) -> list[Any]:
        admin = access.user(request).is_admin
        return ([gr.update(visible=True) if admin else gr.skip() for _ in hidden]
                + [gr.skip() if admin else gr.update(visible=True) for _ in notes])

    if hidden or notes:
        demo.load(show_admin_controls, None, hidden + notes, queue=False, api_visibility="private")


def guarded(fn: Callable[..., Any], access: Access, *, refuse: str | None, redact: list[int],
            n_outputs: int) -> Callable[..., Any]:
    """`fn` behind a role check: a gr.Request parameter is added in front (Gradio fills it), the user
    is looked up, and a non-admin is refused (`refuse` says what) or gets `redact`ed outputs."""

    def check(request: Any) -> bool:
        user = access.user(request)
        if user.is_admin:
            return False
        if refuse:
            try:
                user.require_admin(refuse)
            except AccessDenied as exc:
                raise gr.Error(str(exc), title="Not allowed") from None
        return True

    def blank(value: Any) -> Any:
        if not redact:
            return value
        if n_outputs == 1:
            return gr.update(value=None, interactive=False)
        values = list(value)
        for i in redact:
            values[i] = gr.update(value=None, interactive=False)
        return values

    if inspect.isgeneratorfunction(fn):
        def wrapper(request: gr.Request, *args: Any, **kwargs: Any) -> Any:
            restricted = check(request)
            for value in fn(*args, **kwargs):
                yield blank(value) if restricted else value
    elif inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        raise TypeError(f"{fn!r}: async handlers are not guarded yet; make it a plain function")
    else:
        def wrapper(request: gr.Request, *args: Any, **kwargs: Any) -> Any:
            restricted = check(request)
            value = fn(*args, **kwargs)
            return blank(value) if restricted else value

    return with_request_parameter(wrapper, fn)


def with_request_parameter(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give `wrapper` the signature and type hints of `fn` plus a leading gr.Request parameter, so
    Gradio passes the request first and the inputs (and gr.Progress, other requests) as before."""
    signature = inspect.signature(fn)
    request = inspect.Parameter("_policy_request", inspect.Parameter.POSITIONAL_ONLY, annotation=gr.Request)
    params = list(signature.parameters.values())
    if any(p.kind == inspect.Parameter.POSITIONAL_ONLY for p in params):
        raise TypeError(f"{fn!r}: positional-only parameters cannot be guarded")
    functools.update_wrapper(wrapper, fn)
    wrapper.__signature__ = signature.replace(parameters=[request, *params])
    target = fn.func if isinstance(fn, functools.partial) else fn
    try:
        hints = dict(inspect.get_annotations(target, eval_str=True)) if inspect.isfunction(target) else {}
    except Exception:     # unresolvable forward references: Gradio would ignore them too
        hints = {}
    hints = {k: v for k, v in hints.items() if k in signature.parameters}
    wrapper.__annotations__ = {"_policy_request": gr.Request, **hints}
    return wrapper
