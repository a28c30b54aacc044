"""Remote models: served by OpenAI-compatible servers, listed in the catalog next to local ones.

Declared in presets/remote_models.yaml (one entry per model, or `discover: true` to list every model
a server's /v1/models reports) or added at run time with `add_remote_model`. Startup never fails
because a server is down: discovery uses a short timeout and a failure becomes a catalog problem
line. A server's options (max_concurrency, timeouts) go to the openai_compat backend, which holds
one request gate per base URL.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playground.errors import PlaygroundError, PresetError
from playground.models.spec import ModelSpec

if TYPE_CHECKING:
    from playground.models.catalog import Catalog

REMOTE_FILE = "remote_models.yaml"
REMOTE_BACKENDS = ("openai_compat",)
DISCOVERY_TIMEOUT_S = 2.0
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
    from playground.models.catalog import slug

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
    from playground.backends.openai_compat import normalize_base_url

    url = normalize_base_url(base_url)
    name = model or "default"
    return ModelSpec(
        id=model_id or f"{model_slug(name)}-remote", source="remote", backends=REMOTE_BACKENDS,
        display_name=display_name or f"{model or 'default model'} @ {_host(url)} (remote)",
        format="openai", base_url=url, remote_model=model, api_key_env=api_key_env,
        is_chat=True if is_chat is None else is_chat, context_length=context_length,
        note=note or f"served by {url}")


def configure_server(base_url: str, max_concurrency: int | None = None, timeout_s: float | None = None) -> None:
    """Hand a server's limits to the openai_compat backend (engine state, one gate per URL)."""
    from playground.backends import get_backend

    get_backend("openai_compat").configure(base_url, max_concurrency=max_concurrency, read_timeout_s=timeout_s)


def list_server_models(base_url: str, api_key_env: str | None = None,
                       timeout_s: float = DISCOVERY_TIMEOUT_S) -> list[dict[str, Any]]:
    """The server's /v1/models entries, with a short timeout; PlaygroundError naming the URL."""
    import httpx

    from playground.backends.openai_compat import _api_key, connection_problem, normalize_base_url

    url = normalize_base_url(base_url)
    try:
        response = httpx.get(f"{url}/models", timeout=timeout_s,
                             headers={"Authorization": f"Bearer {_api_key(api_key_env)}"})
    except httpx.HTTPError as exc:
        raise PlaygroundError(connection_problem(url, exc)) from None
    if response.status_code >= 400:
        raise PlaygroundError(f"{url}/models answered HTTP {response.status_code}: {response.text[:200]}")
    try:
        data = response.json().get("data") or []
    except (ValueError, AttributeError):
        raise PlaygroundError(f"{url}/models did not answer an OpenAI model list") from None
    return [m for m in data if isinstance(m, dict) and m.get("id")]


def add_remote_model(catalog: "Catalog", base_url: str, model: str | None = None, *,
                     model_id: str | None = None, display_name: str | None = None, api_key_env: str | None = None,
                     is_chat: bool | None = None, context_length: int | None = None,
                     max_concurrency: int | None = None, timeout_s: float | None = None,
                     check: bool = True) -> ModelSpec:
    """Add one served model to the catalog at run time (the UI's and the CLI's entry point).

    check=True asks the server's /v1/models first (short timeout): a server that is down is a
    clear PlaygroundError now rather than at the first question; a model name the server does not
    list is noted, not refused (single-model servers answer to any name). model=None takes the
    first model the server lists.
    """
    from playground.backends.openai_compat import _context_from_listing

    note = ""
    if check:
        listing = list_server_models(base_url, api_key_env)
        if model is None and not listing:
            raise PlaygroundError(f"the server at {base_url} lists no models: give the model name")
        model = model or listing[0]["id"]
        entry = next((m for m in listing if m["id"] == model), None)
        if entry is None and listing:
            note = f"not listed by the server (it lists: {', '.join(m['id'] for m in listing[:5])})"
        context_length = context_length or _context_from_listing(entry or {})
    configure_server(base_url, max_concurrency, timeout_s)
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
    from playground.backends.openai_compat import _context_from_listing

    configure_server(base_url, max_concurrency, timeout_s)
    added = []
    for entry in list_server_models(base_url, api_key_env):
        name = entry["id"]
        model_id = f"{id_prefix}-{model_slug(name)}" if id_prefix else None
        added.append(add_remote_model(catalog, base_url, name, model_id=model_id, api_key_env=api_key_env,
                                      is_chat=is_chat, context_length=_context_from_listing(entry),
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
        field = lambda name, kind, default=None: require(item, f"{path} {where}", name, kind, default)  # noqa: E731
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
    from playground.backends.openai_compat import normalize_base_url

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
