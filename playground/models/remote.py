"""Remote models: served by OpenAI-compatible servers, listed in the catalog next to local ones.

Declared in presets/remote_models.yaml (one entry per model, or `discover: true` to list every model
a server's /v1/models reports) or added at run time with `add_remote_model`. Startup never fails
because a server is down: discovery uses a short timeout and a failure becomes a catalog problem
line. A server's options (max_concurrency, timeouts) go to the openai_compat backend, which holds
one request gate per base URL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playground.errors import PlaygroundError, PresetError
from playground.models.spec import ModelSpec, slug

if TYPE_CHECKING:
    from playground.models.catalog import Catalog

REMOTE_FILE = "remote_models.yaml"
REMOTE_BACKENDS = ("openai_compat",)
DISCOVERY_TIMEOUT_S = 2.0
SERVED_NAME_RE = re.compile(r"^[\w./:@+-]{1,200}$")   # what a served model name looks like; anything else is dropped
_FIELDS = {"id", "display_name", "base_url", "model", "api_key_env", "is_chat", "context_length",
           "max_concurrency", "discover", "timeout_s", "note"}


@dataclass(frozen=True)
class RemoteEntry:
    """One entry of presets/remote_models.yaml."""

    base_url: str
    id: str | None = None
    display_name: str | None = None
    model: str | None = None
    api_key_env: str | None = None      # the NAME of the env var holding the key, never the key
    is_chat: bool | None = None         # None: assume an instruct (chat) model
    context_length: int | None = None
    max_concurrency: int | None = None  # requests in flight to this server (default 4)
    discover: bool = False
    timeout_s: float | None = None      # longest silence between streamed pieces
    note: str = ""


def model_slug(model: str) -> str:
    """A catalog id part for a served model name (a GGUF path becomes its file stem)."""
    if model.startswith(("/", ".", "~")) or model.endswith(".gguf"):
        model = Path(model).stem
    return slug(model)


def _host(base_url: str) -> str:
    parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def remote_spec(base_url: str, model: str | None, *, model_id: str | None = None,
                display_name: str | None = None, api_key_env: str | None = None,
                is_chat: bool | None = None, context_length: int | None = None, note: str = "") -> ModelSpec:
    """A catalog entry for a model on a server (no network: nothing is checked here)."""
    from playground.backends.remote_http import normalize_base_url

    url = normalize_base_url(base_url)
    name = model or "default"
    return ModelSpec(
        id=model_id or f"{model_slug(name)}-remote", source="remote", backends=REMOTE_BACKENDS,
        display_name=display_name or f"{model or 'default model'} @ {_host(url)} (remote)",
        format="openai", base_url=url, remote_model=model, api_key_env=api_key_env,
        is_chat=True if is_chat is None else is_chat, context_length=context_length,
        note=note or f"served by {url}")


def configure_server(base_url: str, max_concurrency: int | None = None, timeout_s: float | None = None,
                     api_key: str | None = None) -> None:
    """Hand a server's limits (and a pasted API key, kept in memory) to the openai_compat backend."""
    from playground.backends import get_backend

    server = get_backend("openai_compat").configure(base_url, max_concurrency=max_concurrency,
                                                    read_timeout_s=timeout_s)
    if api_key is not None:
        server.set_api_key(api_key)


def list_server_models(base_url: str, api_key_env: str | None = None,
                       timeout_s: float = DISCOVERY_TIMEOUT_S, api_key: str | None = None) -> list[dict[str, Any]]:
    """The server's /v1/models entries, with a short timeout; PlaygroundError naming the URL.

    Errors never quote the server's answer: a URL typed in the browser must not turn the app into
    a proxy that reads other services' pages back to the person who typed it. No redirects either.
    """
    import httpx

    from playground.backends.remote_http import api_key_from_env, connection_problem, normalize_base_url

    url = normalize_base_url(base_url)
    key = api_key_from_env(api_key_env) if api_key_env else (api_key or "EMPTY")
    try:
        response = httpx.get(f"{url}/models", timeout=timeout_s, follow_redirects=False,
                             headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        raise PlaygroundError(connection_problem(url, exc)) from None
    if response.status_code >= 400:
        hint = ": check the API key" if response.status_code in (401, 403) else ""
        raise PlaygroundError(f"{url}/models answered HTTP {response.status_code}{hint}")
    try:
        data = response.json().get("data") or []
    except (ValueError, AttributeError):
        raise PlaygroundError(f"{url}/models did not answer an OpenAI model list (HTTP {response.status_code}, "
                              f"{len(response.content)} bytes, not shown)") from None
    if not isinstance(data, list):
        raise PlaygroundError(f"{url}/models did not answer an OpenAI model list") from None
    return [m for m in data if isinstance(m, dict) and isinstance(m.get("id"), str) and SERVED_NAME_RE.match(m["id"])]


def check_server_url(base_url: str) -> str:
    """A server URL an admin typed in the browser, checked before anything is sent to it.

    http(s) only, no user:password@ part, and a host that does not resolve to a link-local
    (cloud metadata, 169.254.x.x / fe80::), multicast, unspecified or reserved address. Loopback
    and private networks stay allowed: that is where people run vLLM and llama.cpp servers.
    """
    import ipaddress
    import socket

    text = (base_url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PlaygroundError(f"{text!r} is not a server URL: give http:// or https:// with a host, "
                              "e.g. http://127.0.0.1:8000/v1")
    if parts.username or parts.password:
        raise PlaygroundError("put the API key in the API key box, not in the URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, ValueError, UnicodeError) as exc:
        raise PlaygroundError(f"cannot resolve the server host {parts.hostname!r}: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        mapped = getattr(address, "ipv4_mapped", None)
        address = mapped or address
        blocked = address.is_link_local or address.is_multicast or address.is_unspecified
        if blocked or (address.is_reserved and not address.is_loopback):   # ::1 lies in a reserved block
            raise PlaygroundError(f"{parts.hostname} resolves to {address}, a link-local, multicast or reserved "
                                  "address (such as a cloud metadata service): the playground does not send "
                                  "requests there")
    return text


def add_remote_model(catalog: "Catalog", base_url: str, model: str | None = None, *,
                     model_id: str | None = None, display_name: str | None = None, api_key_env: str | None = None,
                     is_chat: bool | None = None, context_length: int | None = None,
                     max_concurrency: int | None = None, timeout_s: float | None = None,
                     check: bool = True, api_key: str | None = None) -> ModelSpec:
    """Add one served model to the catalog at run time (the UI's and the CLI's entry point).

    check=True asks the server's /v1/models first (short timeout): a server that is down is a
    clear PlaygroundError now rather than at the first question; a model name the server does not
    list is noted, not refused (single-model servers answer to any name). model=None takes the
    first model the server lists. `api_key` is a key pasted by an admin: it goes to the server in
    the Authorization header and stays in this process's memory, never in a file or a log.
    """
    from playground.backends.remote_http import context_from_listing

    note = ""
    if check:
        listing = list_server_models(base_url, api_key_env, api_key=api_key)
        if model is None and not listing:
            raise PlaygroundError(f"the server at {base_url} lists no models: give the model name")
        model = model or listing[0]["id"]
        entry = next((m for m in listing if m["id"] == model), None)
        if entry is None and listing:
            note = f"not listed by the server (it lists: {', '.join(m['id'] for m in listing[:5])})"
        context_length = context_length or context_from_listing(entry or {})
    configure_server(base_url, max_concurrency, timeout_s, api_key=api_key)
    spec = remote_spec(base_url, model, model_id=model_id, display_name=display_name, api_key_env=api_key_env,
                       is_chat=is_chat, context_length=context_length, note=note)
    existing = catalog.models.get(spec.id)
    if existing is not None and existing.base_url == spec.base_url and existing.remote_model == spec.remote_model:
        catalog.models[spec.id] = spec    # the same model again: refresh its entry, no "-2" copy
        return spec
    return catalog.add(spec)


def discover_remote_models(catalog: "Catalog", base_url: str, *, api_key_env: str | None = None,
                           is_chat: bool | None = None, max_concurrency: int | None = None,
                           timeout_s: float | None = None, id_prefix: str | None = None) -> list[ModelSpec]:
    """Add every model the server lists; PlaygroundError when it cannot be reached."""
    from playground.backends.remote_http import context_from_listing

    configure_server(base_url, max_concurrency, timeout_s)
    added = []
    for entry in list_server_models(base_url, api_key_env):
        name = entry["id"]
        model_id = f"{id_prefix}-{model_slug(name)}" if id_prefix else None
        added.append(add_remote_model(catalog, base_url, name, model_id=model_id, api_key_env=api_key_env,
                                      is_chat=is_chat, context_length=context_from_listing(entry),
                                      check=False))
    return added


# ---------------------------------------------------------------------------------------------
# presets/remote_models.yaml


def load_remote_entries(path: Path) -> list[RemoteEntry]:
    """Validate the file; PresetError names the file and the field."""
    from playground.yamlfiles import load_yaml_mapping, require

    data = load_yaml_mapping(path)
    items = data.get("models") or []
    if not isinstance(items, list):
        raise PresetError(str(path), "models", "expected a list of entries")
    entries = []
    for i, item in enumerate(items):
        where = f"models[{i}]"
        if not isinstance(item, dict):
            raise PresetError(str(path), where, "expected a mapping with at least base_url")
        unknown = set(item) - _FIELDS
        if unknown:
            raise PresetError(str(path), f"{where}.{sorted(unknown)[0]}",
                              f"unknown field (known: {', '.join(sorted(_FIELDS))})")
        def field(name: str, kind: Any, default: Any = None, item: dict = item, where: str = where) -> Any:
            return require(item, f"{path} {where}", name, kind, default)   # this entry's, bound now
        entry = RemoteEntry(
            base_url=field("base_url", str, ...), id=field("id", str), display_name=field("display_name", str),
            model=field("model", str), api_key_env=field("api_key_env", str), is_chat=field("is_chat", bool),
            context_length=field("context_length", int), max_concurrency=field("max_concurrency", int),
            discover=field("discover", bool, False), timeout_s=field("timeout_s", (int, float)),
            note=field("note", str, ""))
        if entry.max_concurrency is not None and entry.max_concurrency < 1:
            raise PresetError(str(path), f"{where}.max_concurrency", "must be at least 1")
        if not entry.discover and not entry.model:
            raise PresetError(str(path), f"{where}.model", "is required unless discover: true")
        entries.append(entry)
    return entries


def _strictest_limits(entries: list[RemoteEntry]) -> dict[str, int]:
    """Several entries on one server share its gate: the smallest declared limit wins."""
    from playground.backends.remote_http import normalize_base_url

    limits: dict[str, int] = {}
    for e in entries:
        if e.max_concurrency is not None:
            url = normalize_base_url(e.base_url)
            limits[url] = min(limits.get(url, e.max_concurrency), e.max_concurrency)
    return limits


def add_declared_models(catalog: "Catalog", presets_dir: Path) -> None:
    """The catalog step for presets/remote_models.yaml: problems are recorded, never raised."""
    path = Path(presets_dir) / REMOTE_FILE
    if not path.is_file():
        return
    try:
        entries = load_remote_entries(path)
        for url, limit in _strictest_limits(entries).items():
            configure_server(url, limit)
    except PlaygroundError as exc:
        catalog.problems.append(str(exc))
        return
    for e in entries:
        try:
            if e.discover:
                discover_remote_models(catalog, e.base_url, api_key_env=e.api_key_env, is_chat=e.is_chat,
                                       timeout_s=e.timeout_s, id_prefix=e.id)
            else:
                configure_server(e.base_url, None, e.timeout_s)
                catalog.add(remote_spec(e.base_url, e.model, model_id=e.id, display_name=e.display_name,
                                        api_key_env=e.api_key_env, is_chat=e.is_chat,
                                        context_length=e.context_length, note=e.note))
        except PlaygroundError as exc:
            catalog.problems.append(f"remote models ({path.name}, {e.base_url}): {exc}")
