"""The smooth metric does not depend on the engine: the gold log-probability of the same items through
llama.cpp and through transformers, on the same F16 weights, agree within TOLERANCE (docs/benchmarks.md).

The F16 file is made here from the bundled Q4_1 file (dequantised with gguf's own `dequantize`,
every metadata field copied): transformers dequantises a GGUF to float32 on load, so both engines
then hold the same numbers. On the Q4_1 file itself they would not agree as closely: llama.cpp
quantises activations to 8 bits for Q4_1 dot products, transformers multiplies in float32.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from playground.lab import LabConfig, prepare_lab
from playground.lab.scoring import gold_logprob, scoring_prompt

REPO = Path(__file__).resolve().parent.parent
TASKS = REPO / "presets" / "tasks" / "arithmetic-word-problems.jsonl"
TOLERANCE = 0.02   # nats, on each item's mean per-token log-prob of the gold answer (measured: docs/benchmarks.md)


def make_f16(source: Path, target: Path) -> Path:
    """Dequantise every quantised tensor of a GGUF to F16 (1-D tensors stay F32), metadata copied."""
    gguf = pytest.importorskip("gguf")
    reader = gguf.GGUFReader(source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(target, arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = 1 if field.name == gguf.Keys.General.FILE_TYPE else field.contents()   # 1: mostly F16
        writer.add_key_value(field.name, value, kind, sub_type=sub)
    plain = (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16)
    for tensor in reader.tensors:
        if tensor.tensor_type in plain:
            data = np.asarray(tensor.data)
        else:
            data = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
            data = data.astype(np.float16) if data.ndim > 1 else data.astype(np.float32)
        writer.add_tensor(tensor.name, np.ascontiguousarray(data))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return target


def test_gold_logprob_agrees_across_backends_on_f16(app_ctx, bundled_gguf, tmp_path):
    pytest.importorskip("torch")
    from playground.backends import get_backend
    from playground.models.catalog import spec_from_gguf
    from playground.models.gguf_meta import gguf_info

    f16 = make_f16(bundled_gguf, tmp_path / "smollm2-135m-instruct-f16.gguf")
    spec = spec_from_gguf("smol-f16", "SmolLM2 135M F16", "local", gguf_info(f16))
    job = prepare_lab(app_ctx, LabConfig(task_path=TASKS, models=("smollm2-135m-instruct",),
                                         modes=("zero_shot", "few_shot_cot"), limit=3, shots=1))
    scores: dict[str, list[float]] = {}
    for backend in ("llama_cpp", "transformers"):
        model = get_backend(backend).load(spec, device="cpu", threads=2, n_ctx=2048)
        try:
            values = []
            for run in job.runs:
                from playground.compare import plan_for
                from playground.engine import exact_prompt

                for item in job.items:
                    plan = plan_for(app_ctx, run.pane, item.question, (), chat=True)
                    mean, n = gold_logprob(model, scoring_prompt(exact_prompt(model, plan), plan), item)
                    assert mean is not None and n >= 1
                    values.append(mean)
            scores[backend] = values
        finally:
            model.close()
    llama, hf = np.array(scores["llama_cpp"]), np.array(scores["transformers"])
    diff = np.abs(llama - hf)
    print(f"\ncross-backend gold log-prob, {len(diff)} (item, mode) pairs: llama.cpp {llama.round(4).tolist()} "
          f"transformers {hf.round(4).tolist()} max |diff| {diff.max():.4f} mean |diff| {diff.mean():.4f}")
    assert diff.max() <= TOLERANCE
