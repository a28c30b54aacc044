"""Backend registry: a backend name maps to its class, imported only when first used.

Importing torch or llama_cpp costs seconds, so the registry holds import paths, not classes.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

from playground.backends.base import Backend, Chunk, LoadedModel
from playground.errors import PlaygroundError

BACKEND_PATHS: dict[str, str] = {
    "llama_cpp": "playground.backends.llama_cpp:LlamaCppBackend",
    "transformers": "playground.backends.transformers_backend:TransformersBackend",
    "openai_compat": "playground.backends.openai_compat:OpenAICompatBackend",
}


@lru_cache(maxsize=None)
def get_backend(name: str) -> Backend:
    """The (stateless) backend object for a name; unknown names list the known ones."""
    if name not in BACKEND_PATHS:
        raise PlaygroundError(f"unknown backend '{name}': choose one of {', '.join(BACKEND_PATHS)}")
    module_name, _, class_name = BACKEND_PATHS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PlaygroundError(
            f"backend '{name}' needs a package that is not installed ({exc.name or exc}): "
            "run `pip install -r requirements.txt`") from None
    return getattr(module, class_name)()


__all__ = ["BACKEND_PATHS", "Backend", "Chunk", "LoadedModel", "get_backend"]
