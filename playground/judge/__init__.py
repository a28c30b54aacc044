"""A model as judge: judge prompts (presets/judges/*.yaml), verdict parsing, the runner that
judges stored battles in both orders, and agreement with people's votes (docs/architecture.md,
"A model as judge")."""
