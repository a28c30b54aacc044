"""Prompting: modes -> `PromptPlan` (pure), presets and exemplar sets, answer extraction, chat templates.

    from playground.prompting import build_plan, load_presets, extract_answer, majority_vote
"""
from playground.prompting.extract import (
    Extracted, Vote, answers_match, extract_answer, majority_vote, normalize_number, split_reasoning,
)
from playground.prompting.modes import SELF_CONSISTENCY_MIN_TEMPERATURE, build_plan, mode_title
from playground.prompting.plan import ANSWER_KINDS, MODE_TITLES, MODES, Message, PromptPlan
from playground.prompting.presets import (
    FAMILIES, FAMILY_TITLES, Exemplar, ExemplarSet, PresetLibrary, PromptPreset, builtin_presets,
    builtin_presets_dir, default_preset_for, load_presets,
)
from playground.prompting.render import render_chat_template

__all__ = [
    "ANSWER_KINDS", "FAMILIES", "FAMILY_TITLES", "MODES", "MODE_TITLES", "SELF_CONSISTENCY_MIN_TEMPERATURE",
    "Exemplar", "ExemplarSet", "Extracted", "Message", "PresetLibrary", "PromptPlan", "PromptPreset", "Vote",
    "answers_match", "build_plan", "builtin_presets", "builtin_presets_dir", "default_preset_for",
    "extract_answer", "load_presets", "majority_vote", "mode_title", "normalize_number",
    "render_chat_template", "split_reasoning",
]
