"""The Gradio UI: one module per tab, handlers as plain functions."""
