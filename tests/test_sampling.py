"""Sampling presets: the shipped ones load; broken files are reported with file and field."""
from __future__ import annotations

from pathlib import Path

import pytest

from playground.errors import PresetError
from playground.sampling import SamplingParams, load_sampling_preset, load_sampling_presets

PRESETS = Path(__file__).resolve().parent.parent / "presets" / "sampling"


def test_shipped_presets_load():
    presets, errors = load_sampling_presets(PRESETS)
    assert errors == []
    assert {"deterministic", "balanced", "creative"} <= set(presets)
    assert presets["deterministic"].params.temperature == 0.0
    assert presets["creative"].params.temperature > presets["balanced"].params.temperature


@pytest.mark.parametrize("body, field, problem", [
    ("id: x\nparams:\n  temperature: hot\n", "temperature", "expected a number"),
    ("id: x\nparams:\n  top_p: 1.5\n", "top_p", "out of range"),
    ("id: x\nparams:\n  max_new_tokens: 2.5\n", "max_new_tokens", "expected an integer"),
    ("id: x\nparams:\n  temprature: 0.3\n", "temprature", "unknown sampling field"),
    ("id: x\nparams:\n  stop: [\"\"]\n", "stop", "non-empty strings"),
    ("params:\n  temperature: 0.3\n", "id", "is required"),
    ("id: x\nparams: 3\n", "params", "expected a mapping"),
    ("id: [unclosed\n", "", "invalid YAML at line"),
    ("- just\n- a list\n", "", "expected a mapping"),
])
def test_invalid_preset_names_file_and_field(tmp_path, body, field, problem):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(PresetError) as err:
        load_sampling_preset(path)
    assert str(path) in str(err.value)
    assert err.value.field == field
    assert problem in str(err.value)


def test_bad_files_are_skipped_not_fatal(tmp_path):
    (tmp_path / "good.yaml").write_text("id: good\nparams:\n  temperature: 0.5\n")
    (tmp_path / "bad.yaml").write_text("id: bad\nparams:\n  top_k: -1\n")
    (tmp_path / "dup.yaml").write_text("id: good\nparams: {}\n")
    (tmp_path / "binary.yaml").write_bytes(b"\x00\xff\xfe\x00" * 10)
    presets, errors = load_sampling_presets(tmp_path)
    assert list(presets) == ["good"]
    messages = "\n".join(map(str, errors))
    assert "bad.yaml: field 'top_k'" in messages
    assert "field 'id': duplicate id 'good'" in messages   # files load in name order: the later one is refused
    assert "binary.yaml" in messages


def test_to_dict_round_trip():
    params = SamplingParams(temperature=0.7, stop=("\n\n",), seed=3)
    assert SamplingParams(**{**params.to_dict(), "stop": tuple(params.to_dict()["stop"])}) == params
