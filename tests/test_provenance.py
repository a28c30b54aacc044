"""Provenance: a stored answer says what really ran (sampling after every override,
every prompt sent) and which model it was, whatever its source.

The bundled SmolLM2 through llama.cpp and a real SQLite file; a loopback stub answers /v1/models.
"""
from __future__ import annotations

import json
import struct
import threading
from pathlib import Path


import storage
from playground.compare import PaneSpec, run_pane
from playground.engine import FOLLOWUP_MAX_TOKENS, SELF_CONSISTENCY_TEMPERATURE, run_plan
from playground.models.identity import folder_signature, model_identity
from playground.models.spec import ModelSpec
from playground.prompting.plan import PromptPlan
from playground.recording import save_generation
from playground.sampling import SamplingParams

MODEL = "smollm2-135m-instruct"


def stored(db_path: Path, generation_id: int) -> dict:
    db = storage.open_database(db_path)
    try:
        row = db["generations"].get(generation_id)
    finally:
        db.close()
    return {k: (json.loads(v) if k in ("sampling", "sampling_requested", "calls", "model_identity") and v else v)
            for k, v in row.items()}


def answer_and_save(ctx, pane: PaneSpec, question: str, cancel: threading.Event | None = None,
                    stop_after: int | None = None) -> dict:
    last = None
    for k, last in enumerate(run_pane(ctx, pane, question, (), cancel)):
        if stop_after is not None and k >= stop_after and cancel is not None:
            cancel.set()
    spec = ctx.catalog.get(pane.model_id)
    gid = save_generation(ctx.settings.db_path, session_id="prov", spec=spec, backend="llama_cpp", device="cpu",
                          mode=pane.mode, preset=pane.preset_id, result=last, sampling=pane.sampling,
                          conversation=[{"role": "user", "content": question}])
    return stored(ctx.settings.db_path, gid)


def test_zero_shot_cot_stores_both_prompts_and_the_second_steps_settings(app_ctx):
    requested = SamplingParams(max_new_tokens=12, seed=0)
    row = answer_and_save(app_ctx, PaneSpec(MODEL, mode="zero_shot_cot", sampling=requested), "What is 3 + 4?")
    calls = row["calls"]
    assert [c["step"] for c in calls] == ["answer", "answer_extraction"]
    first, second = calls
    assert first["prompt"] == row["rendered_prompt"]
    assert second["prompt"].startswith(first["prompt"]) and "Therefore, the answer" in second["prompt"]
    assert second["sampling"]["max_new_tokens"] == FOLLOWUP_MAX_TOKENS and second["sampling"]["temperature"] == 0.0
    assert second["ends"] == "at the end of its first line with text"   # how the step was cut, not a stop string
    assert row["output"].count("Therefore, the answer") == 1
    assert row["sampling"] == first["sampling"] and row["sampling_requested"] == requested.to_dict()


def test_self_consistency_stores_the_temperature_that_ran(app_ctx):
    requested = SamplingParams(temperature=0.0, max_new_tokens=6, seed=3)
    row = answer_and_save(app_ctx, PaneSpec(MODEL, mode="self_consistency", samples=2, shots=1,
                                            sampling=requested), "What is 2 + 5?")
    assert row["sampling"]["temperature"] == SELF_CONSISTENCY_TEMPERATURE
    assert row["sampling_requested"]["temperature"] == 0.0
    assert row["calls"][0]["n"] == 2 and row["calls"][0]["seeds"] == [3, 4]


def test_max_tokens_clipped_to_the_context_is_what_is_stored(app_ctx):
    cancel = threading.Event()    # the clipped limit is what matters; stop early to stay fast
    row = answer_and_save(app_ctx, PaneSpec(MODEL, mode="zero_shot", sampling=SamplingParams(max_new_tokens=100_000)),
                          "Tell me a story.", cancel=cancel, stop_after=2)
    room = app_ctx.settings.n_ctx - row["n_prompt_tokens"]
    assert row["sampling"]["max_new_tokens"] == room < 100_000
    assert row["sampling_requested"]["max_new_tokens"] == 100_000
    assert row["finish_reason"] == "cancelled"


def test_a_modes_stop_strings_are_stored(smol):
    plan = PromptPlan(mode="few_shot", messages=None, text="Q: 1 + 1?\nA: 2\n\nQ: 2 + 2?\nA:", stop=("\nQ:",),
                      system="Answer briefly.")
    final = list(run_plan(smol, plan, SamplingParams(max_new_tokens=4, stop=("###",))))[-1]
    assert final.sampling_used["stop"] == ["\nQ:", "###"]
    assert final.system_prompt == "Answer briefly."


def test_the_contestants_system_prompt_is_stored_apart_from_the_input(app_ctx):
    pane = PaneSpec(MODEL, mode="zero_shot", system_prompt="You are terse.", sampling=SamplingParams(max_new_tokens=4))
    row = answer_and_save(app_ctx, pane, "Hi")
    assert row["system_prompt"] == "You are terse." and "You are terse." in row["rendered_prompt"]
    assert json.loads(row["conversation"]) == [{"role": "user", "content": "Hi"}]
    assert row["input_fingerprint"] == storage.input_fingerprint([{"role": "user", "content": "Hi"}])


def test_model_identity_of_the_bundled_gguf(app_ctx, bundled_gguf):
    import hashlib

    identity = model_identity(app_ctx.catalog.get(MODEL))
    assert identity["kind"] == "gguf_file"
    assert identity["sha256"] == hashlib.sha256(bundled_gguf.read_bytes()).hexdigest()


def write_safetensors(path: Path, header: dict) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 16)


def test_model_identity_of_an_hf_folder_and_a_hub_snapshot(tmp_path):
    folder = tmp_path / "models--owner--tiny" / "snapshots" / "0123abcd" / ""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    write_safetensors(folder / "model.safetensors", {"w": {"dtype": "F16", "shape": [2, 4], "data_offsets": [0, 16]}})
    spec = ModelSpec(id="hf:owner/tiny", display_name="tiny", source="hub", backends=("transformers",), path=folder,
                     format="hf", hub_ref="hf:owner/tiny")
    identity = model_identity(spec)
    assert identity["kind"] == "hf_folder" and identity["hub_commit"] == "0123abcd"
    before = folder_signature(folder)
    write_safetensors(folder / "model.safetensors", {"w": {"dtype": "F32", "shape": [2, 4], "data_offsets": [0, 32]}})
    assert folder_signature(folder) != before     # other weights, same file name: another identity


def test_model_identity_of_a_remote_server():
    from tests.llama_server import StubServer, send_json

    served = {"id": "qwen-7b", "object": "model", "owned_by": "vllm", "root": "Qwen/Qwen2.5-7B-Instruct"}
    server = StubServer(lambda req: send_json(req, 200, {"object": "list", "data": [served]}))
    try:
        spec = ModelSpec(id="remote:qwen", display_name="qwen", source="remote", backends=("openai_compat",),
                         base_url=server.url, remote_model="qwen-7b")
        identity = model_identity(spec)
    finally:
        server.close()
    assert identity["kind"] == "remote" and identity["base_url"] == server.url
    assert identity["served_model"] == "qwen-7b" and identity["server_reports"]["entry"] == served
