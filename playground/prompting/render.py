"""Render a Hugging Face chat template (GGUF `tokenizer.chat_template`) exactly as transformers does.

The environment mirrors `transformers.utils.chat_template_utils._cached_compile_jinja_template`
(transformers 5.x): an `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with
the `loopcontrols` extension and a `{% generation %}` block tag, the `raise_exception` and
`strftime_now` globals, a `tojson` filter that does not HTML-escape, and guarded `dict` and
`namespace`. `apply_chat_template` also drops None-valued message keys and passes `tools=None`,
`documents=None` and the tokenizer's special tokens; we do the same so templates that test
`tools is defined` take the same branch. The result is the exact prompt text sent to the model,
special tokens included, which the UI shows as "exact prompt sent".
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from playground.errors import PlaygroundError


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    """Jinja's own tojson escapes HTML characters (<, >, &), which would change prompts."""
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:  # noqa: A002 - the name templates call it with
    return datetime.now().strftime(format)


class _TemplateDict:
    """`dict(...)` for templates without exposing the dict type itself to the sandbox."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    """`namespace(...)` that refuses underscore attributes, as transformers does."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # noqa: N805 - jinja's signature trick
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name: Any) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"chat templates cannot set underscore attributes, got {name!r}")


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` (assistant-mask markers): renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.CallBlock:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller: Any) -> str:
        return caller()


@lru_cache(maxsize=32)
def compile_chat_template(template: str) -> jinja2.Template:
    """Compile once per distinct template; syntax errors become PlaygroundError."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise PlaygroundError(
            f"the model's chat template is not valid Jinja (line {exc.lineno}): {exc.message}") from None


def _plain_messages(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Fresh plain dicts without None values, like apply_chat_template's normalisation."""
    return [{k: v for k, v in dict(m).items() if v is not None} for m in messages]


def render_chat_template(template: str, messages: Sequence[Mapping[str, Any]], *, bos_token: str, eos_token: str,
                         add_generation_prompt: bool = True, **special_tokens: str) -> str:
    """The exact text `tokenizer.apply_chat_template(messages, tokenize=False)` would produce.

    Extra keyword arguments (e.g. unk_token, pad_token) are passed to the template like the
    tokenizer's other special tokens. Template errors (including `raise_exception` calls such as
    "roles must alternate") become PlaygroundError with the template's message.
    """
    compiled = compile_chat_template(template)
    context = {"bos_token": bos_token, "eos_token": eos_token, **special_tokens}
    try:
        return compiled.render(messages=_plain_messages(messages), tools=None, documents=None,
                               add_generation_prompt=add_generation_prompt, **context)
    except jinja2.exceptions.TemplateError as exc:
        raise PlaygroundError(f"the model's chat template refused this conversation: {exc}") from None
