"""hf_meta: metadata of Hugging Face folders from config + safetensors headers, no weights loaded."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from playground.errors import ModelError
from playground.models.hf_meta import display_name, has_chat_template, is_hf_folder, read_hf_folder


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> None:
    """A valid safetensors file written by hand: header length, JSON header, zero bytes."""
    itemsize = {"F32": 4, "BF16": 2, "F16": 2, "I8": 1}
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = itemsize[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(offset))


def make_folder(tmp_path: Path, config: dict, **files: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    return folder


def test_reads_exact_params_arch_context_dtype(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                    "max_position_embeddings": 8192, "torch_dtype": "bfloat16"})
    write_safetensors(folder / "model.safetensors", {"embed": ("BF16", [100, 16]), "norm": ("BF16", [16])})
    meta = read_hf_folder(folder)
    assert meta["n_params"] == 100 * 16 + 16
    assert meta["architecture"] == "LlamaForCausalLM"
    assert meta["context_length"] == 8192
    assert meta["quantization"] == "bf16"
    assert meta["is_chat"] is False
    assert meta["display_name"] == "model"
    assert is_hf_folder(folder)


def test_sharded_index_sums_every_shard(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"model_type": "qwen2", "dtype": "float32"})
    write_safetensors(folder / "model-00001-of-00002.safetensors", {"a": ("F32", [10, 10])})
    write_safetensors(folder / "model-00002-of-00002.safetensors", {"b": ("F32", [5]), "c": ("F32", [2, 3])})
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors",
                            "c": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    meta = read_hf_folder(folder)
    assert meta["n_params"] == 100 + 5 + 6
    assert meta["quantization"] == "fp32"
    assert meta["architecture"] == "qwen2"


def test_nested_text_config_and_quantization_method(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"architectures": ["Gemma3ForConditionalGeneration"],
                                    "text_config": {"max_position_embeddings": 131072},
                                    "quantization_config": {"quant_method": "gptq", "bits": 4}})
    write_safetensors(folder / "model.safetensors", {"w": ("I8", [4, 4])})
    meta = read_hf_folder(folder)
    assert meta["context_length"] == 131072
    assert meta["quantization"] == "gptq-4bit"


def test_dtype_falls_back_to_tensor_headers(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"model_type": "llama"})
    write_safetensors(folder / "model.safetensors", {"w": ("F16", [8, 8]), "b": ("F32", [8])})
    assert read_hf_folder(folder)["quantization"] == "fp16"


@pytest.mark.parametrize("files", [
    {"tokenizer_config__json": json.dumps({"chat_template": "{{ messages }}"})},
    {"chat_template__jinja": "{{ messages }}"},
    {"chat_template__json": json.dumps({"chat_template": "{{ messages }}"})},
])
def test_chat_template_sources(tmp_path: Path, files: dict[str, str]) -> None:
    folder = make_folder(tmp_path, {"model_type": "llama"}, **files)
    assert has_chat_template(folder) is True


def test_no_chat_template_is_base(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"model_type": "llama"},
                         tokenizer_config__json=json.dumps({"bos_token": "<s>"}))
    assert has_chat_template(folder) is False


def test_missing_or_broken_weights_give_none(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, {"model_type": "llama"})
    assert read_hf_folder(folder)["n_params"] is None
    assert not is_hf_folder(folder)
    (folder / "model.safetensors").write_bytes(b"\x05\x00")        # truncated header
    assert read_hf_folder(folder)["n_params"] is None


def test_unreadable_config_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"config\.json"):
        read_hf_folder(folder)
    with pytest.raises(ModelError, match="config.json not found"):
        read_hf_folder(tmp_path)


def test_display_name_of_hub_snapshot(tmp_path: Path) -> None:
    snap = tmp_path / "models--HuggingFaceTB--SmolLM2-135M" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    assert display_name(snap) == "SmolLM2-135M"
    assert display_name(tmp_path / "my-model") == "my-model"
