"""GPU for real: honest detection, where a model really ran, memory fit, refusal before loading, doctor.

Through the real parts on whatever machine runs them: the bundled model through llama.cpp, the
real CLI in a subprocess, the catalog. On a CPU-only build (this machine) a GPU request must run
on the CPU and say so with the reinstall command; the partial-offload arithmetic and the parsing
of a CUDA load log, which only a GPU machine can exercise for real, are checked on their own
(`bench/gpu_check.py` checks them on a GPU).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from playground import devices
from playground.backends.llama_placement import parse_load_log
from playground.compare import PaneSpec, run_pane
from playground.errors import ModelError
from playground.models.fit import GB, MB, Shape, estimate, gguf_shape, llama_gpu_fit, model_shape
from playground.models.gguf_meta import read_gguf_info
from playground.sampling import SamplingParams

REPO = Path(__file__).resolve().parent.parent
SMALL = SamplingParams(max_new_tokens=6)
SMOL = "smollm2-135m-instruct"


def app(*args: str, tmp: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PLAYGROUND_DB": str(tmp / "cli.db")}
    return subprocess.run([sys.executable, "app.py", *args, "--models-dir", str(tmp)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env)


def final(results):
    last = None
    for last in results:
        pass
    return last


def no_offload() -> None:
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("GPU offload available here: the CPU fallback cannot be shown")


# --- the doctor ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def doctor_json(bundled_gguf, tmp_path_factory) -> dict:
    out = app("doctor", "--json", "--no-hub", tmp=tmp_path_factory.mktemp("doctor"))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_doctor_json_reports_this_machine(bundled_gguf, doctor_json):
    """Every figure is checked against a reading taken independently of the doctor."""
    import llama_cpp

    report = doctor_json
    assert report["cpu"]["cores"] == len(os.sched_getaffinity(0))
    mem_total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    assert report["memory"]["ram_total_bytes"] == mem_total
    offload = bool(llama_cpp.llama_supports_gpu_offload())
    assert report["llama_cpp"]["installed"] and report["llama_cpp"]["gpu_offload"] is offload
    assert report["llama_cpp"]["version"] == llama_cpp.__version__
    assert report["llama_cpp"]["system_info"] == llama_cpp.llama_print_system_info().decode().strip()
    assert ("gpu" in report["devices"]["llama_cpp"]) is offload
    smol = next(m for m in report["models"] if m["model"] == SMOL)
    expected = estimate(app_spec(bundled_gguf), "llama_cpp", "cpu", 2048)
    assert smol["cpu"]["total_bytes"] == expected.total and smol["cpu"]["fits"] is True
    assert smol["within_budget"] is True and "CPU ✓" in smol["summary"]


def test_doctor_on_this_cpu_machine(bundled_gguf, doctor_json, tmp_path):
    """This machine: no GPU, llama.cpp without offload, a CPU-only torch: the doctor says so and
    names the commands that would add GPU support."""
    import torch

    no_offload()
    if torch.cuda.is_available() or devices.gpus():
        pytest.skip("this machine has GPU memory to report")
    report = doctor_json
    assert report["gpus"] == [] and report["devices"]["llama_cpp"] == ["cpu"]
    assert report["torch"]["cuda_available"] is False
    advice = "\n".join(report["advice"])
    assert devices.llama_cpp_fix_command() in advice and "no GPU found" in advice
    if report["torch"]["cuda_build"] is None:
        assert devices.INSTALL_TORCH_CUDA in advice
    smol = next(m for m in report["models"] if m["model"] == SMOL)
    assert smol["gpu"] is None and smol["summary"].endswith("no GPU")
    text = app("doctor", "--no-hub", tmp=tmp_path)
    assert text.returncode == 0 and "GPU: none found" in text.stdout and "GPU offload no" in text.stdout
    assert f"{report['cpu']['cores']} cores" in text.stdout and SMOL in text.stdout


# --- a GPU request on a CPU-only build -------------------------------------------------------------

def test_gpu_request_runs_on_cpu_with_notice_and_figures(app_ctx):
    no_offload()
    result = final(run_pane(app_ctx, PaneSpec(model_id=SMOL, device="gpu", sampling=SMALL), "Say hi."))
    assert result.error is None and result.n_output_tokens > 0
    notice = next(n for n in result.notices if "GPU requested" in n)
    assert "running on CPU" in notice and devices.llama_cpp_fix_command() in notice
    assert result.device == "cpu"
    n_layers = read_gguf_info(app_ctx.catalog.get(SMOL).path).metadata["llama.block_count"] + 1
    assert result.ran_on == f"cpu (0/{n_layers} layers on GPU)"
    from playground.ui.common import format_metrics

    assert f"ran on cpu (0/{n_layers} layers on GPU)" in format_metrics(result)


def test_ask_cli_gpu_request_says_where_it_ran(bundled_gguf, tmp_path):
    no_offload()
    out = app("ask", "Say hi.", "--device", "gpu", "--max-tokens", "4", "--json", tmp=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["device_requested"] == "gpu" and data["device"] == "cpu"
    assert data["ran_on"].startswith("cpu (0/")
    assert any(devices.llama_cpp_fix_command() in n for n in data["notices"]), data["notices"]


def test_device_menu_labels_what_cannot_run_here():
    no_offload()
    menu = dict((value, label) for label, value in devices.device_menu("llama_cpp"))
    assert menu["cpu"] == "cpu" and "runs on CPU" in menu["gpu"]


# --- the fit estimate against the real file and the real allocation --------------------------------

def app_spec(path: Path):
    from playground.models.catalog import build_catalog

    return build_catalog(path.parent / "no-such-models-dir", REPO / "presets", include_hub=False).get(SMOL)


def test_fit_estimate_of_bundled_model_matches_its_tensors(bundled_gguf):
    """Weights = the tensor table's sizes, which fill the file's data section; KV width = what the
    attention tensors' shapes say, equal to the header's head counts."""
    info = read_gguf_info(bundled_gguf)
    shape = gguf_shape(info)
    meta, arch = info.metadata, info.architecture
    assert shape.weights_bytes == sum(b for _, _, b in info.tensors)
    assert shape.n_params == info.n_params
    header = bundled_gguf.stat().st_size - shape.weights_bytes
    assert 0 < header < 8 * MB                    # only the header (tokenizer) and alignment are left
    n_layers = meta[f"{arch}.block_count"]
    head_dim = meta[f"{arch}.embedding_length"] // meta[f"{arch}.attention.head_count"]
    assert shape.n_layers == n_layers
    assert shape.kv_per_token == n_layers * 2 * meta[f"{arch}.attention.head_count_kv"] * head_dim
    assert sum(shape.layer_bytes) < shape.weights_bytes      # embeddings and norms are outside the blocks
    est = estimate(app_spec(bundled_gguf), "llama_cpp", "cpu", 2048)
    assert est.weights_bytes == shape.weights_bytes
    assert est.kv_bytes == shape.kv_per_token * 2048 * 2


@pytest.mark.parametrize("model", [SMOL, "qwen2.5-coder-0.5b-instruct"])
def test_fit_estimate_matches_what_llama_cpp_allocates(app_ctx, request, model):
    """llama.cpp's own load log (captured by the backend) against the estimate: weights within 1 %,
    the KV cache exactly. Second family: Qwen2.5-Coder 0.5B (Q4_K_M, grouped-query attention)."""
    spec = app_ctx.catalog.get(SMOL) if model == SMOL else request.getfixturevalue("qwen05_spec")
    with app_ctx.cache.use(spec, "llama_cpp", "cpu") as model:
        buffers = model.placement.buffers_mib
        est = estimate(spec, "llama_cpp", "cpu", model.context_length)
    # The file's weights (mapped or loaded), and the re-laid-out copies llama.cpp's AVX2 CPU backend
    # keeps of its Q4_0/Q4_K/IQ4_NL/MXFP4 matrices ("CPU_REPACK": the Qwen file's Q4_K ffn_down,
    # 28 MiB; none of the SmolLM2 Q4_1/F16), each against its part of the estimate.
    weights_mib = sum(v for k, v in buffers.items() if k.endswith(" model") and "REPACK" not in k)
    repack_mib = sum(v for k, v in buffers.items() if k.endswith(" model") and "REPACK" in k)
    kv_mib = sum(v for k, v in buffers.items() if k.endswith(" KV"))
    assert weights_mib == pytest.approx(est.weights_bytes / MB, rel=0.01), buffers
    assert repack_mib == pytest.approx(est.repack_bytes / MB, abs=0.05), (buffers, est)
    if spec.id != SMOL:
        assert repack_mib > 20, buffers                   # the case that matters is really exercised
    assert kv_mib == pytest.approx(est.kv_bytes / MB, abs=0.01), buffers


def test_repacked_copies_are_counted_on_the_cpu_only(qwen05_spec, bundled_gguf):
    """The Qwen file's Q4_K matrices (not its token embedding) are counted once more for llama.cpp on
    the CPU of a build that repacks; not on a GPU, not when the build does not repack, and never
    for the bundled Q4_1 file."""
    shape = gguf_shape(read_gguf_info(qwen05_spec.path))
    assert 27 * MB < shape.repackable_bytes < 29 * MB
    cpu = estimate(qwen05_spec, "llama_cpp", "cpu", 2048, shape, repacks=True)
    assert cpu.repack_bytes == shape.repackable_bytes
    assert cpu.total == cpu.weights_bytes + cpu.repack_bytes + cpu.kv_bytes + cpu.buffer_bytes
    assert "repacked copies" in cpu.describe() and cpu.to_dict()["repack_bytes"] == cpu.repack_bytes
    assert estimate(qwen05_spec, "llama_cpp", "cpu", 2048, shape, repacks=False).repack_bytes == 0
    assert estimate(qwen05_spec, "llama_cpp", "gpu", 2048, shape, repacks=True).repack_bytes == 0
    assert estimate(qwen05_spec, "transformers", "cpu", 2048, shape, repacks=True).repack_bytes == 0
    assert gguf_shape(read_gguf_info(bundled_gguf)).repackable_bytes == 0


# --- refusing what will not fit, before loading ----------------------------------------------------

def test_model_too_large_for_budget_is_refused_before_loading(bundled_gguf):
    from playground.backends import get_backend
    from playground.backends.cache import ModelCache

    real = get_backend("llama_cpp")
    calls = []

    class Counting:
        name, devices = real.name, real.devices
        supports = staticmethod(real.supports)
        estimate_bytes = staticmethod(real.estimate_bytes)

        def load(self, *args, **kwargs):
            calls.append(args)
            return real.load(*args, **kwargs)

    spec = app_spec(bundled_gguf)
    need = estimate(spec, "llama_cpp", "cpu", 2048).total
    cache = ModelCache(budget_bytes=need - 1, threads=1, n_ctx=2048, backend_lookup=lambda name: Counting())
    with pytest.raises(ModelError) as err:
        with cache.use(spec, "llama_cpp", "cpu"):
            pass
    message = str(err.value)
    assert "will not fit in the memory budget" in message and "--memory-budget" in message
    assert SMOL in message and "KV cache" in message and "lower --n-ctx" in message
    assert calls == [] and cache.loaded_keys() == [] and cache.loads == 0
    # the same model fits a budget of exactly its estimate
    cache = ModelCache(budget_bytes=need, threads=1, n_ctx=2048, backend_lookup=lambda name: Counting())
    with cache.use(spec, "llama_cpp", "cpu") as model:
        assert model.spec.id == SMOL
    cache.clear()


def test_too_large_model_refused_by_cli(bundled_gguf, tmp_path):
    out = app("ask", "hi", "--memory-budget", "10", tmp=tmp_path)
    assert out.returncode == 2
    assert "will not fit in the memory budget" in out.stderr and "Traceback" not in out.stderr


# --- the GPU paths, checked without a GPU ------------------------------------------------------------

def shape_of(n_layers: int, layer_mb: int) -> Shape:
    return Shape(source="test", weights_bytes=n_layers * layer_mb * MB + 200 * MB, n_params=10**9,
                 layer_bytes=(layer_mb * MB,) * n_layers, kv_per_token=n_layers * 1024, n_vocab=32000,
                 n_embd=4096, stored_element_bytes=0.6)


def test_partial_offload_counts_the_layers_that_fit():
    from playground.models.fit import Estimate

    shape = shape_of(32, 100)
    est = Estimate("m", "llama_cpp", "gpu", 4096, shape.weights_bytes, shape.kv_per_token * 4096 * 2,
                   300 * MB, "test")
    assert llama_gpu_fit(est, shape, 16 * GB).gpu_layers is None                 # all of it
    half = llama_gpu_fit(est, shape, 2 * GB)
    per_layer = 100 * MB + est.kv_bytes // 32
    assert half.gpu_layers == (int(2 * GB * 0.9) - 300 * MB) // per_layer
    assert f"{half.gpu_layers} of 32 layers" in half.summary
    assert llama_gpu_fit(est, shape, 100 * MB).gpu_layers == 0
    assert llama_gpu_fit(est, shape, None).gpu_layers is None                   # unknown: let llama.cpp try


def test_cuda_load_log_is_read_as_gpu():
    """The lines llama.cpp prints on a CUDA build (format from llama-model.cpp / llama-kv-cache.cpp)."""
    log = ["load_tensors: offloading output layer to GPU\n", "load_tensors: offloaded 31/31 layers to GPU\n",
           "load_tensors:   CPU_Mapped model buffer size =    28.12 MiB\n",
           "load_tensors:        CUDA0 model buffer size =    60.40 MiB\n",
           "llama_kv_cache:      CUDA0 KV buffer size =    45.00 MiB\n"]
    placement = parse_load_log(log, 30)
    assert placement.device == "gpu" and placement.describe() == "gpu CUDA0 (31/31 layers)"
    partial = parse_load_log([line.replace("31/31", "12/31") for line in log], 30)
    assert partial.describe() == "gpu CUDA0 (12/31 layers)"
    cpu = parse_load_log(["load_tensors:   CPU_Mapped model buffer size =    88.50 MiB\n"], 30)
    assert cpu.device == "cpu" and cpu.describe() == "cpu (0/31 layers on GPU)"


def test_models_tab_fit_column(app_ctx):
    from playground.models.fit import gb
    from playground.ui.models_tab import COLUMNS, catalog_rows

    rows = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in catalog_rows(app_ctx)}
    spec = app_ctx.catalog.get(SMOL)
    need = estimate(spec, "llama_cpp", "cpu", app_ctx.settings.n_ctx)
    assert rows[SMOL]["memory · fits"].startswith(f"{gb(need.total)} · CPU ✓")
    assert model_shape(spec) is not None


def test_fit_estimate_of_a_safetensors_folder(tmp_path):
    """An HF folder: weights from the safetensors headers' byte ranges (fp16 as stored on a GPU,
    fp32 on the CPU, as the transformers backend loads them), KV width from config.json."""
    import numpy as np
    from safetensors.numpy import save_file

    from playground.models.spec import ModelSpec

    tensors = {"model.embed_tokens.weight": np.zeros((50, 8), np.float16)}
    for i in range(2):
        tensors[f"model.layers.{i}.self_attn.q_proj.weight"] = np.zeros((8, 8), np.float16)
        tensors[f"model.layers.{i}.self_attn.k_proj.weight"] = np.zeros((4, 8), np.float16)
        tensors[f"model.layers.{i}.self_attn.v_proj.weight"] = np.zeros((4, 8), np.float16)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 2, "hidden_size": 8,
        "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 50, "max_position_embeddings": 64}))
    shape = model_shape(ModelSpec(id="tiny", display_name="tiny", source="local", backends=("transformers",),
                                  path=tmp_path, format="hf", context_length=64))
    assert shape.weights_bytes == sum(t.nbytes for t in tensors.values())
    assert shape.layer_bytes == ((64 + 32 + 32) * 2,) * 2
    assert shape.kv_per_token == 2 * 2 * 1 * 4             # layers x (K + V) x kv heads x head dim
    spec = ModelSpec(id="tiny", display_name="tiny", source="local", backends=("transformers",), path=tmp_path,
                     format="hf", context_length=64)
    cpu = estimate(spec, "transformers", "cpu", 2048, shape)
    gpu = estimate(spec, "transformers", "cuda", 2048, shape)
    assert cpu.n_ctx == 64 and cpu.weights_bytes == shape.n_params * 4 and cpu.kv_bytes == 16 * 64 * 4
    assert gpu.weights_bytes == shape.weights_bytes and gpu.kv_bytes == 16 * 64 * 2
