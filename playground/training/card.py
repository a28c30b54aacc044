"""The tuned model's card: README.md for people, training.json for the catalog (same facts).

The catalog reads only `training.json` (`base_model.id`, models/hf_meta.py `read_tuned_from`) to mark the
model "tuned from <base>".
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playground.models.hf_meta import TRAINING_FILE


def write_card(folder: Path, facts: dict[str, Any]) -> None:
    """README.md (model card) and training.json into `folder`."""
    (folder / TRAINING_FILE).write_text(json.dumps(facts, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (folder / "README.md").write_text(render_card(facts), encoding="utf-8")


def render_card(facts: dict[str, Any]) -> str:
    base, data, ev = facts["base_model"], facts["data"], facts["evaluation"]
    objective = facts["hyperparameters"].get("objective", "dpo")
    if "kto_rows" in data:
        rows = (f"- trained with KTO on {data['kto_rows']} unpaired rows ({data['kto_desirable']} desirable) from the "
                f"votes, the held-out pairs' answers left out; rows sha256: `{data['kto_sha256']}`\n")
        pairs = (f"- {data['pairs']} DPO pairs (conversational) from the same votes: {data['held_out']} held out "
                 "for scoring")
    else:
        rows = ""
        pairs = (f"- {data['pairs']} DPO pairs (conversational) from the votes: {data['train']} for training, "
                 f"{data['held_out']} held out")
    hp = "\n".join(f"| {k} | {v} |" for k, v in facts["hyperparameters"].items())
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                        for k, v in facts["final_metrics"].items()) or "| (none logged) | |"
    return f"""---
base_model: {base['id']}
library_name: transformers
tags: [{objective}, trl, playground]
---
# {facts['name']}

Tuned from **{base['id']}** ({base['display_name']}) with {facts['method']} on the votes stored in the
playground, on {facts['date']}.

## Base model
- id: `{base['id']}`, path: `{base['path']}`
- identity (sha256): `{base.get('sha256') or 'unknown'}`

## Data
{rows}{pairs}
- set sha256: `{data['sha256']}`
- filters: {data['filters_text']}
- export counts: `{json.dumps(data['export_counts'])}`

## Hyperparameters
| name | value |
|---|---|
{hp}

## Final metrics (TRL's last logged values)
| metric | value |
|---|---|
{metrics}

## Held-out preference accuracy (Wilson 95% intervals)
- base model, log p(chosen) > log p(rejected): {ev['base_label']}
- tuned model, same measure: {ev['tuned_label']}
- tuned model's implicit reward prefers the chosen answer: {ev['implicit_label']}

Steps: {facts['steps']}, wall time {facts['wall_seconds']:.1f} s.
"""
