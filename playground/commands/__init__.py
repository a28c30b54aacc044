"""CLI sub-commands: one module each, discovered by playground.cli."""
