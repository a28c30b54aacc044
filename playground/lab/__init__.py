"""The emergence lab: task sets x models x prompting modes, scored and stored in SQLite, then plotted.

One module per job:

- `tasks`: reading task files (GSM8K, generic JSONL) and scoring one answer by exact match;
- `config`: the user's request validated into a job of (model, mode) runs;
- `scoring`: the gold answer's log-likelihood (the smooth metric);
- `runner`: running the job item by item, resuming what is stored;
- `reports`: summaries with intervals, per-item rows, CSVs, the text table;
- `plots`: the figures.

The tables live in `storage/lab.py`. The names below are the lab's public surface, importable
from `playground.lab` as before the split.
"""
from playground.lab.config import (
    DEFAULT_MODES, DEFAULT_SAMPLING_PRESET, LabConfig, LabJob, LabRunSpec, check_models, check_modes,
    config_key, prepare_lab, resolve_preset,
)
from playground.lab.reports import (
    ITEM_COLUMNS, SUMMARY_COLUMNS, SummaryRow, file_stem, format_summary, list_runs, load_items,
    params_label, run_ids_for, summarize, summary_dicts, write_csv,
)
from playground.lab.runner import (
    STATUSES, ItemResult, LabOutcome, LabProgress, error_run, finish_run, run_item, run_lab, start_run,
    store_result,
)
from playground.lab.scoring import (
    ANSWER_PREFIX, PREFIX_MODES, answer_prefix, gold_logprob, scoring_continuation, scoring_prompt,
)
from storage.lab import find_run, finished_indices

__all__ = [
    "ANSWER_PREFIX", "DEFAULT_MODES", "DEFAULT_SAMPLING_PRESET", "ITEM_COLUMNS", "PREFIX_MODES", "STATUSES",
    "SUMMARY_COLUMNS", "ItemResult", "LabConfig", "LabJob", "LabOutcome", "LabProgress", "LabRunSpec",
    "SummaryRow", "answer_prefix", "check_models", "check_modes", "config_key", "error_run", "file_stem",
    "find_run", "finish_run", "finished_indices", "format_summary", "gold_logprob", "list_runs", "load_items",
    "params_label", "prepare_lab", "resolve_preset", "run_ids_for", "run_item", "run_lab", "scoring_continuation",
    "scoring_prompt", "start_run", "store_result", "summarize", "summary_dicts", "write_csv",
]
