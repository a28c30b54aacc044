"""The model catalog: every model the app can use, with metadata read from the files."""
from playground.models.spec import ModelSpec

__all__ = ["ModelSpec"]
