"""build_plan: every mode x chat/base model, the knobs (shots, samples, trigger, templates), errors."""
from __future__ import annotations

import dataclasses

import pytest

from playground.errors import PlaygroundError
from playground.prompting import (
    MODE_TITLES, MODES, SELF_CONSISTENCY_MIN_TEMPERATURE, PromptPlan, build_plan, builtin_presets,
    default_preset_for, mode_title,
)
from playground.prompting.presets import ExemplarSet, PromptPreset

QUESTION = "A shop has 40 pens and sells 15. How many pens are left?"
HISTORY = ({"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"})


def _plan(mode: str, chat: bool, family: str = "arithmetic", **kwargs) -> PromptPlan:
    preset = default_preset_for(mode, family)
    return build_plan(mode, QUESTION, preset=preset, exemplars=builtin_presets().exemplars_for(preset),
                      chat=chat, **kwargs)


def _roles(plan: PromptPlan) -> list[str]:
    return [m["role"] for m in plan.messages]


def test_modes_and_titles():
    assert MODES == ("zero_shot", "few_shot", "zero_shot_cot", "few_shot_cot", "instruction", "self_consistency")
    assert set(MODE_TITLES) == set(MODES)
    assert mode_title("few_shot_cot") == "Few-shot chain-of-thought"
    with pytest.raises(PlaygroundError):
        mode_title("cot")


@pytest.mark.parametrize("mode", MODES)
def test_chat_shape(mode):
    plan = _plan(mode, chat=True)
    assert plan.mode == mode and plan.text is None and plan.stop == ()
    assert plan.messages[-1]["role"] == "user" and QUESTION in plan.messages[-1]["content"]
    roles = [r for r in _roles(plan) if r != "system"]
    assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"], "turns must alternate"
    assert all(set(m) == {"role", "content"} for m in plan.messages)
    assert plan.preset_id == default_preset_for(mode).id and plan.answer_kind == "number"


@pytest.mark.parametrize("mode", MODES)
def test_base_shape(mode):
    plan = _plan(mode, chat=False)
    assert plan.messages is None and isinstance(plan.text, str)
    assert f"{QUESTION}" in plan.text and "\nQ:" in plan.stop
    assert "<|" not in plan.text, "base frames carry no special tokens"


@pytest.mark.parametrize("chat", [True, False])
def test_plans_are_pure_and_frozen(chat):
    for mode in MODES:
        assert _plan(mode, chat) == _plan(mode, chat)
    with pytest.raises(dataclasses.FrozenInstanceError):
        _plan("zero_shot", chat).mode = "few_shot"


def test_plan_needs_exactly_one_of_messages_and_text():
    with pytest.raises(ValueError):
        PromptPlan(mode="zero_shot", messages=None, text=None, stop=())
    with pytest.raises(ValueError):
        PromptPlan(mode="zero_shot", messages=({"role": "user", "content": "x"},), text="x", stop=())


# ---------------------------------------------------------------- zero-shot

def test_zero_shot_chat_is_the_question_alone():
    plan = _plan("zero_shot", chat=True)
    assert plan.messages == ({"role": "user", "content": QUESTION},)
    assert plan.n_samples == 1 and plan.followup is None


def test_zero_shot_base_frame():
    plan = _plan("zero_shot", chat=False)
    assert plan.text == f"Q: {QUESTION}\nA:"
    assert plan.stop == ("\nQ:", "\n\n")


def test_question_is_stripped():
    preset = default_preset_for("zero_shot")
    plan = build_plan("zero_shot", f"  {QUESTION}\n", preset=preset, exemplars=None, chat=False)
    assert plan.text == f"Q: {QUESTION}\nA:"


def test_general_chat_uses_its_system_prompt_and_free_text():
    plan = _plan("zero_shot", chat=True, family="general")
    assert plan.messages[0]["role"] == "system" and "helpful" in plan.messages[0]["content"]
    base = _plan("zero_shot", chat=False, family="general")
    assert base.text.startswith(plan.messages[0]["content"] + "\n\n")
    assert base.stop == ("\nQ:",), "free-text answers may span paragraphs"


# ---------------------------------------------------------------- few-shot

def test_few_shot_uses_short_answers():
    plan = _plan("few_shot", chat=True, shots=3)
    items = builtin_presets().exemplars["arithmetic-word-problems"].items
    assert _roles(plan) == ["user", "assistant"] * 3 + ["user"]
    for i in range(3):
        assert plan.messages[2 * i]["content"] == items[i].question
        assert plan.messages[2 * i + 1]["content"] == f"The answer is {items[i].answer}."


def test_few_shot_default_shots_come_from_the_preset():
    assert len(_plan("few_shot", chat=True).messages) == 2 * 8 + 1


def test_few_shot_base_blocks():
    plan = _plan("few_shot", chat=False, shots=2)
    items = builtin_presets().exemplars["arithmetic-word-problems"].items
    assert plan.text == (f"Q: {items[0].question}\nA: The answer is {items[0].answer}.\n\n"
                         f"Q: {items[1].question}\nA: The answer is {items[1].answer}.\n\n"
                         f"Q: {QUESTION}\nA:")


def test_zero_shots_is_allowed():
    assert _plan("few_shot", chat=True, shots=0).messages == ({"role": "user", "content": QUESTION},)


@pytest.mark.parametrize("shots", [-1, 9, 2.5, True])
def test_shots_out_of_range(shots):
    with pytest.raises(PlaygroundError, match="shots"):
        _plan("few_shot", chat=True, shots=shots)


def test_more_shots_than_the_set_has():
    preset = default_preset_for("few_shot")
    small = dataclasses.replace(builtin_presets().exemplars_for(preset),
                                items=builtin_presets().exemplars_for(preset).items[:2])
    with pytest.raises(PlaygroundError, match="only 2 items"):
        build_plan("few_shot", QUESTION, preset=preset, exemplars=small, chat=True, shots=3)


def test_few_shot_without_exemplars_explains():
    with pytest.raises(PlaygroundError, match="needs an exemplar set"):
        build_plan("few_shot", QUESTION, preset=default_preset_for("few_shot"), exemplars=None, chat=True)


# ---------------------------------------------------------------- zero-shot CoT

def test_zero_shot_cot_chat_puts_the_trigger_at_the_end_of_the_user_turn():
    plan = _plan("zero_shot_cot", chat=True)
    assert plan.messages == ({"role": "user", "content": f"{QUESTION}\n\nLet's think step by step."},)
    assert plan.followup == "Therefore, the answer (arabic numerals) is"


def test_zero_shot_cot_base_trigger_starts_the_answer():
    plan = _plan("zero_shot_cot", chat=False)
    assert plan.text == f"Q: {QUESTION}\nA: Let's think step by step."
    assert plan.stop == ("\nQ:",), "reasoning may span paragraphs"


def test_zero_shot_cot_custom_trigger_and_family_followup():
    plan = _plan("zero_shot_cot", chat=False, trigger="Let's work this out in a step by step way.")
    assert plan.text.endswith("A: Let's work this out in a step by step way.")
    assert _plan("zero_shot_cot", True, family="commonsense_yes_no").followup == "Therefore, the answer (Yes or No) is"
    with pytest.raises(PlaygroundError, match="trigger"):
        _plan("zero_shot_cot", chat=True, trigger="   ")


# ---------------------------------------------------------------- few-shot CoT

def test_few_shot_cot_exemplars_carry_reasoning():
    plan = _plan("few_shot_cot", chat=True)
    items = builtin_presets().exemplars["arithmetic-word-problems"].items
    answers = [m["content"] for m in plan.messages if m["role"] == "assistant"]
    assert answers == [item.reasoning for item in items]
    assert all(a.endswith(f"The answer is {item.answer}.") for a, item in zip(answers, items, strict=True))
    assert plan.followup is None and plan.n_samples == 1


def test_few_shot_cot_base_ends_with_open_answer():
    plan = _plan("few_shot_cot", chat=False, shots=1)
    item = builtin_presets().exemplars["arithmetic-word-problems"].items[0]
    assert plan.text == f"Q: {item.question}\nA: {item.reasoning}\n\nQ: {QUESTION}\nA:"


def test_few_shot_cot_refuses_a_set_without_reasoning():
    preset = default_preset_for("few_shot_cot")
    exemplars = builtin_presets().exemplars_for(preset)
    bare = dataclasses.replace(exemplars, items=tuple(dataclasses.replace(i, reasoning=None) for i in exemplars.items))
    with pytest.raises(PlaygroundError, match="reasoning"):
        build_plan("few_shot_cot", QUESTION, preset=preset, exemplars=bare, chat=True)


# ---------------------------------------------------------------- instruction

def test_instruction_chat_has_system_and_template():
    plan = _plan("instruction", chat=True, template_index=1)
    preset = default_preset_for("instruction")
    assert plan.messages == (
        {"role": "system", "content": preset.system_prompt},
        {"role": "user", "content": f"{QUESTION}\n\nWhat is the answer?"},
    )


def test_instruction_base_prepends_system_as_text_and_adds_an_answer_cue():
    preset = default_preset_for("instruction")
    plan = _plan("instruction", chat=False, template_index=0)
    assert plan.text == f"{preset.system_prompt}\n\nAnswer the following question.\n\n{QUESTION}\nAnswer:"
    # a template that already ends with a cue is used as is
    assert _plan("instruction", chat=False, template_index=2).text.endswith(f"Q: {QUESTION}\nGive the answer:")


def test_instruction_template_choice():
    templates = default_preset_for("instruction").instruction_templates
    assert len(templates) >= 3
    assert _plan("instruction", True).messages[-1]["content"] == templates[0].replace("{question}", QUESTION)
    seeded = [_plan("instruction", True, rng_seed=seed).messages[-1]["content"] for seed in range(20)]
    assert seeded == [_plan("instruction", True, rng_seed=seed).messages[-1]["content"] for seed in range(20)]
    assert len(set(seeded)) > 1, "different seeds should reach different templates"
    with pytest.raises(PlaygroundError, match="template_index"):
        _plan("instruction", True, template_index=len(templates))


def test_instruction_braces_in_question_stay_literal():
    preset = default_preset_for("instruction")
    plan = build_plan("instruction", "What is {x} in {1, 2}?", preset=preset, exemplars=None, chat=True)
    assert "What is {x} in {1, 2}?" in plan.messages[-1]["content"]


def test_instruction_needs_templates():
    preset = default_preset_for("zero_shot")
    with pytest.raises(PlaygroundError, match="instruction templates"):
        build_plan("instruction", QUESTION, preset=preset, exemplars=None, chat=True)


# ---------------------------------------------------------------- self-consistency

def test_self_consistency_is_few_shot_cot_sampled():
    plan = _plan("self_consistency", chat=True)
    cot = _plan("few_shot_cot", chat=True)
    assert plan.messages == cot.messages and plan.n_samples == 5
    assert _plan("self_consistency", False).text == _plan("few_shot_cot", False).text
    assert SELF_CONSISTENCY_MIN_TEMPERATURE > 0


@pytest.mark.parametrize("samples, ok", [(1, True), (20, True), (0, False), (21, False), (3.0, False)])
def test_self_consistency_samples_range(samples, ok):
    if ok:
        assert _plan("self_consistency", chat=True, samples=samples).n_samples == samples
    else:
        with pytest.raises(PlaygroundError, match="samples"):
            _plan("self_consistency", chat=True, samples=samples)


def test_self_consistency_without_exemplars_samples_zero_shot_cot_paths():
    preset = dataclasses.replace(default_preset_for("self_consistency"), exemplar_set=None, shots=0)
    plan = build_plan("self_consistency", QUESTION, preset=preset, exemplars=None, chat=False, samples=3)
    assert plan.text == f"Q: {QUESTION}\nA: Let's think step by step." and plan.n_samples == 3


# ---------------------------------------------------------------- history and system prompt

@pytest.mark.parametrize("mode", MODES)
def test_history_goes_after_exemplars_before_the_question_chat(mode):
    plan = _plan(mode, chat=True, history=HISTORY)
    assert plan.messages[-3:-1] == HISTORY
    assert QUESTION in plan.messages[-1]["content"]


@pytest.mark.parametrize("mode", MODES)
def test_history_as_earlier_qa_pairs_base(mode):
    plan = _plan(mode, chat=False, history=HISTORY)
    block = "Q: What is 2 + 2?\nA: 4\n\n"
    assert block in plan.text
    assert plan.text.index(block) < plan.text.index(QUESTION)
    if mode in ("few_shot", "few_shot_cot", "self_consistency"):
        last_exemplar = builtin_presets().exemplars["arithmetic-word-problems"].items[7].question
        assert plan.text.index(last_exemplar) < plan.text.index(block)


@pytest.mark.parametrize("history", [
    ({"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}),
    ({"role": "user", "content": "unanswered"},),
    ({"role": "user", "content": "x"}, {"role": "system", "content": "y"}),
    ({"role": "user", "content": None}, {"role": "assistant", "content": "y"}),
])
def test_bad_history(history):
    with pytest.raises(PlaygroundError, match="history"):
        _plan("zero_shot", chat=True, history=history)


def test_system_prompt_override_and_removal():
    plan = _plan("few_shot", chat=True, shots=1, system_prompt="Be terse.")
    assert plan.messages[0] == {"role": "system", "content": "Be terse."}
    removed = _plan("instruction", chat=True, system_prompt="")
    assert removed.messages[0]["role"] == "user"
    base = _plan("zero_shot_cot", chat=False, system_prompt="Be terse.")
    assert base.text.startswith("Be terse.\n\nQ: ")


# ---------------------------------------------------------------- errors

def test_unknown_mode():
    with pytest.raises(PlaygroundError, match="unknown prompting mode 'cot'.*zero_shot"):
        build_plan("cot", QUESTION, preset=default_preset_for("zero_shot"), exemplars=None, chat=True)


@pytest.mark.parametrize("question", ["", "   \n\t"])
def test_empty_question(question):
    with pytest.raises(PlaygroundError, match="question is empty"):
        build_plan("zero_shot", question, preset=default_preset_for("zero_shot"), exemplars=None, chat=True)


def test_types_are_the_documented_ones():
    preset = default_preset_for("few_shot")
    assert isinstance(preset, PromptPreset)
    assert isinstance(builtin_presets().exemplars_for(preset), ExemplarSet)
