"""The playground: run local LLMs side by side, judge their answers, rank and export."""

__version__ = "0.1.0"
