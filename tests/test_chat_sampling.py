"""Chat sampling presets: the sliders show the preset's values and override it only once moved."""
from __future__ import annotations

from playground.ui.chat import (new_chat_state, on_preset_change, pop_last_turn, preset_slider_values,
                                slider_moved, stream_reply)

MODEL = "smollm2-135m-instruct"      # the shipped Q4_1: the fastest; sampling is what is tested here
QUESTION = "Tell me something about cats."


def reply(app_ctx, state, message, preset, temperature, max_tokens, touched):
    *_, last = stream_reply(app_ctx, state, message, MODEL, "llama_cpp", "cpu", preset, "", temperature,
                            max_tokens, touched)
    chatbot, state, metrics, notices, prompt, _ = last
    assert not notices, notices
    return state, chatbot[-1]["content"], metrics


def regenerate(app_ctx, state, preset, temperature, max_tokens, touched):
    state, question = pop_last_turn(state)
    return reply(app_ctx, state, question, preset, temperature, max_tokens, touched)


def test_sliders_show_each_presets_values(app_ctx):
    for preset_id, preset in app_ctx.sampling_presets.items():
        temperature, max_tokens = preset_slider_values(app_ctx, preset_id)
        assert (temperature, max_tokens) == (preset.params.temperature, preset.params.max_new_tokens)
    t, m, touched = on_preset_change(app_ctx, "creative")
    assert t["value"] == app_ctx.sampling_presets["creative"].params.temperature > 0
    assert m["value"] == app_ctx.sampling_presets["creative"].params.max_new_tokens
    assert touched == {}, "picking a preset forgets earlier slider moves"
    assert slider_moved("temperature", {}) == {"temperature": True}
    assert slider_moved("max_tokens", {"temperature": True}) == {"temperature": True, "max_tokens": True}


def test_creative_regenerate_gives_a_different_answer(app_ctx, smol):
    """The sliders still show 'deterministic' values (0.0, 256) but were not moved: creative's own
    temperature applies, so Regenerate samples a new answer. Max tokens was moved (to 16): it
    overrides, the temperature does not."""
    touched = {"max_tokens": True}
    state, first, metrics = reply(app_ctx, new_chat_state(), QUESTION, "creative", 0.0, 16, touched)
    answers = {first}
    for _ in range(2):
        state, again, metrics = regenerate(app_ctx, state, "creative", 0.0, 16, touched)
        answers.add(again)
        assert "output 16 tok" in metrics or "finish: stop" in metrics, metrics
    assert len(answers) > 1, "creative sampling repeated itself on every Regenerate"
    assert len(state["history"]) == 2, "Regenerate replaces the last exchange"


def test_a_moved_temperature_slider_overrides_the_preset(app_ctx, smol):
    touched = {"temperature": True, "max_tokens": True}
    state, first, _ = reply(app_ctx, new_chat_state(), QUESTION, "creative", 0.0, 16, touched)
    state, again, _ = regenerate(app_ctx, state, "creative", 0.0, 16, touched)
    assert again == first, "temperature 0 (moved by the user) is greedy: the same answer each time"


def test_unmoved_sliders_leave_deterministic_greedy(app_ctx, smol):
    touched = {"max_tokens": True}     # the temperature slider shows 1.5 but was never moved
    state, first, _ = reply(app_ctx, new_chat_state(), QUESTION, "deterministic", 1.5, 16, touched)
    state, again, _ = regenerate(app_ctx, state, "deterministic", 1.5, 16, touched)
    assert again == first, "a slider left alone does not override the preset"
