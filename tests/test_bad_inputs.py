"""A catalogue of bad inputs: each gives a clear message naming the thing, and nothing is lost.

Model files, prompts, presets, task files, databases, exports and flags, as a careless or hostile
user would supply them, through the real parts (bundled model, real SQLite files).
"""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from playground.compare import PaneSpec, run_pane, run_panes
from playground.errors import ModelError, PlaygroundError, PresetError, UnknownModelError
from playground.sampling import SamplingParams

REPO = Path(__file__).resolve().parent.parent
SMALL = SamplingParams(max_new_tokens=6)


def final(iterator):
    result = None
    for result in iterator:
        pass
    return result


def _db_with_vote(path: Path) -> tuple[int, int]:
    """A database holding one committed vote; returns (vote id, battle id)."""
    import storage

    db = storage.open_database(path)
    ids = [storage.insert_generation(db, storage.GenerationRecord(
        model_id=m, conversation=[{"role": "user", "content": "q"}], output=f"answer {m}", mode="zero_shot"))
        for m in ("a", "b")]
    battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=False,
                                   session_id="s", source="playground")
    vote = storage.record_vote(db, battle_id=battle, winner="left", session_id="s")
    db.close()
    return vote.vote_id, battle


# --- model loading -----------------------------------------------------------------------------

def test_01_model_file_deleted_after_listing(tmp_path, app_ctx, bundled_gguf):
    copy = tmp_path / "gone.gguf"
    shutil.copy(bundled_gguf, copy)
    spec = replace(app_ctx.catalog.get("smollm2-135m-instruct"), id="gone", path=copy, source="local")
    copy.unlink()
    with pytest.raises(ModelError, match="gone.gguf"):
        app_ctx.ensure_local(spec)


def test_02_file_that_is_not_gguf(tmp_path):
    from playground.models.gguf_meta import read_gguf_info

    bad = tmp_path / "picture.gguf"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(ModelError, match=r"picture.gguf is not a GGUF file"):
        read_gguf_info(bad)


def test_03_truncated_gguf(tmp_path, bundled_gguf):
    from playground.models.gguf_meta import read_gguf_info

    cut = tmp_path / "cut.gguf"
    cut.write_bytes(bundled_gguf.read_bytes()[:5_000_000])
    with pytest.raises(ModelError, match=r"cut.gguf is truncated.*Download or copy it again"):
        read_gguf_info(cut)


def test_04_unknown_model_id_suggests(app_ctx):
    with pytest.raises(UnknownModelError, match="Did you mean: smollm2-135m-instruct"):
        app_ctx.catalog.get("smollm2-135M-instruct")


def test_05_hub_reference_offline_and_not_cached(app_ctx, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    spec = app_ctx.catalog.get("hf:nobody/NoSuchModel-GGUF/model.Q4_K_M.gguf")
    assert not spec.available
    with pytest.raises(ModelError, match="not in the local Hugging Face cache.*offline"):
        app_ctx.ensure_local(spec)


def test_06_malformed_hub_reference(app_ctx):
    with pytest.raises(PlaygroundError, match="hf:owner/repo"):
        app_ctx.catalog.get("hf:")


def test_07_gpu_on_cpu_machine_falls_back_with_warning():
    from playground.devices import resolve_device

    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("GPU offload available here")
    device, warning = resolve_device("gpu", "llama_cpp")
    assert device == "cpu" and "GPU" in warning and "CPU" in warning


# --- prompts -------------------------------------------------------------------------------------

@pytest.mark.parametrize("question", ["", "   \n\t  "])
def test_08_09_empty_and_whitespace_prompts(app_ctx, question):
    with pytest.raises(PlaygroundError, match="(?i)empty|question"):
        final(run_pane(app_ctx, PaneSpec(model_id="smollm2-135m-instruct", sampling=SMALL), question))


def test_10_200k_character_prompt_is_refused_and_the_other_pane_answers(app_ctx):
    huge = "lorem ipsum " * 17_000          # ~200k characters
    panes = [PaneSpec(model_id="smollm2-135m-instruct", sampling=SMALL)] * 2
    snapshots = list(run_panes(app_ctx, panes, huge))
    assert all("context" in (r.error or "") and "2,048" in r.error for r in snapshots[-1])
    ok = final(run_pane(app_ctx, panes[0], "Say hi"))      # the app keeps working
    assert ok.error is None and ok.answer_text


def test_11_unicode_emoji_and_right_to_left_text_survive_storage_and_export(app_ctx, tmp_path):
    from playground.recording import save_generation, save_vote

    import storage
    from playground.export import PreferenceFilters, export_dpo

    question = "مرحبا! 你好 👋🏽 — combien font 2+2 ? עברית"
    pane = PaneSpec(model_id="smollm2-135m-instruct", sampling=SMALL)
    results = [final(run_pane(app_ctx, pane, question)), final(run_pane(app_ctx, replace(pane, mode="instruction"), question))]
    db_path = tmp_path / "u.db"
    spec = app_ctx.catalog.get("smollm2-135m-instruct")
    ids = [save_generation(db_path, session_id="s", spec=spec, backend="llama_cpp", device="cpu", mode=m,
                           preset=None, conversation=[{"role": "user", "content": question}], result=r, sampling=SMALL)
           for m, r in zip(("zero_shot", "instruction"), results, strict=True)]
    save_vote(db_path, left_generation_id=ids[0], right_generation_id=ids[1], winner="left", session_id="s",
              anonymous=False, source="playground")
    out = tmp_path / "dpo.jsonl"
    with storage.open_database(db_path) as db:
        export_dpo(db, out, PreferenceFilters(include_truncated=True))   # short answers: cut by the limit
    row = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert row["prompt"] == question


# --- presets and task files ----------------------------------------------------------------------

def test_12_invalid_sampling_preset_names_file_and_field(tmp_path):
    from playground.sampling import load_sampling_presets

    (tmp_path / "hot.yaml").write_text("id: hot\nparams:\n  temperature: 9\n")
    presets, errors = load_sampling_presets(tmp_path)
    assert presets == {} and "hot.yaml: field 'temperature'" in str(errors[0])


def test_13_prompting_preset_with_unknown_mode_is_skipped(tmp_path):
    from playground.prompting.presets import load_presets

    shutil.copytree(REPO / "presets", tmp_path / "presets")
    (tmp_path / "presets" / "prompting" / "mine.yaml").write_text(
        "id: mine\nmode: telepathy\nfamily: general\n")
    library = load_presets(tmp_path / "presets")
    assert "mine" not in library.prompting and "arithmetic-few-shot" in library.prompting
    assert any("mine.yaml" in str(e) and e.field == "mode" for e in library.errors)


def test_14_preset_with_a_huge_few_shot_set(tmp_path, app_ctx):
    """500 exemplars: the file loads, k is capped at 8, and an overlong prompt is a clear error."""
    from playground.prompting.presets import load_presets

    shutil.copytree(REPO / "presets", tmp_path / "presets")
    long_item = {"question": "What is 1 + 1? " + "Please think. " * 60, "answer": "2",
                 "reasoning": "One plus one is two. The answer is 2."}
    items = [long_item] * 500
    (tmp_path / "presets" / "exemplars" / "huge.yaml").write_text(json.dumps(
        {"id": "huge", "family": "arithmetic", "answer_kind": "number", "items": items}))
    (tmp_path / "presets" / "prompting" / "huge.yaml").write_text(
        "id: huge-few-shot\nmode: few_shot\nfamily: arithmetic\nexemplar_set: huge\n")
    library = load_presets(tmp_path / "presets")
    assert "huge-few-shot" in library.prompting, library.errors
    ctx = replace(app_ctx, presets=library)
    result = final(run_pane(ctx, PaneSpec(model_id="smollm2-135m-instruct", mode="few_shot",
                                          preset_id="huge-few-shot", shots=8, sampling=SMALL), "What is 2+2?"))
    assert result.exact_prompt.count("What is 1 + 1?") == 8
    with pytest.raises(PlaygroundError, match="shots"):
        final(run_pane(ctx, PaneSpec(model_id="smollm2-135m-instruct", mode="few_shot",
                                     preset_id="huge-few-shot", shots=500, sampling=SMALL), "What is 2+2?"))


def test_15_binary_file_as_preset(tmp_path):
    from playground.yamlfiles import load_yaml_mapping

    path = tmp_path / "blob.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(PresetError, match="blob.yaml"):
        load_yaml_mapping(path)


def test_16_binary_file_as_task_set(tmp_path):
    from playground.lab.tasks import load_task_file

    path = tmp_path / "tasks.jsonl"
    path.write_bytes(bytes(range(256)) * 16)
    with pytest.raises(PlaygroundError, match="tasks.jsonl"):
        load_task_file(path)


def test_17_empty_task_file(tmp_path):
    from playground.lab.tasks import load_task_file

    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(PlaygroundError, match="empty.jsonl"):
        load_task_file(path)


def test_18_malformed_task_lines_are_reported_with_line_numbers(tmp_path):
    from playground.lab.tasks import load_task_file

    path = tmp_path / "mixed.jsonl"
    path.write_text('{"question": "1+1?", "answer": "x #### 2"}\n{not json\n{"question": "no answer"}\n'
                    '{"input": "Is fire hot?", "target": "yes"}\n')
    tasks = load_task_file(path)
    assert len(tasks.items) == 2
    lines = sorted(e.line for e in tasks.errors)
    assert lines == [2, 3]


# --- databases, exports, imports, votes ------------------------------------------------------------

def test_19_database_path_is_a_directory(tmp_path):
    import storage

    folder = tmp_path / "dir.db"
    folder.mkdir()
    with pytest.raises(storage.StorageError, match=str(folder)):
        storage.open_database(folder)


def test_20_corrupt_database_file_keeps_its_bytes(tmp_path):
    import storage

    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database at all " * 200)
    before = path.read_bytes()
    with pytest.raises(storage.StorageError, match="junk.db"):
        storage.open_database(path)
    assert path.read_bytes() == before        # nothing was overwritten


def test_21_export_to_an_unwritable_path_loses_nothing(tmp_path):
    import storage
    from playground.export import export_dpo

    db_path = tmp_path / "p.db"
    vote_id, _ = _db_with_vote(db_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with storage.open_database(db_path) as db:
        with pytest.raises(PlaygroundError, match="a-file"):
            export_dpo(db, blocker / "out.jsonl")
    with sqlite3.connect(db_path) as con:
        assert con.execute("select id from votes").fetchall() == [(vote_id,)]


def test_22_vote_on_unknown_battle_and_bad_verdict(tmp_path):
    import storage

    db_path = tmp_path / "v.db"
    _, battle = _db_with_vote(db_path)
    with storage.open_database(db_path) as db:
        with pytest.raises(storage.VoteRefused, match="999"):
            storage.record_vote(db, battle_id=999, winner="left", session_id="s")
        with pytest.raises(storage.VoteRefused, match="winner"):
            storage.record_vote(db, battle_id=battle, winner="<script>", session_id="s")
        assert storage.count_votes(db) == 1


def test_23_import_of_a_binary_file(tmp_path):
    import storage

    path = tmp_path / "battles.json"
    path.write_bytes(b"\x00\x01\x02" * 1000)
    with storage.open_database(tmp_path / "i.db") as db:
        with pytest.raises(PlaygroundError, match="battles.json"):
            storage.import_arena_battles(db, path)


def test_24_vote_before_answers_finish_is_refused(app_ctx):
    from playground.ui.grid import new_grid_state, vote_on_pair

    state = new_grid_state()
    state["busy"][0] = True
    state["generations"][:2] = [1, 2]
    _, message = vote_on_pair(app_ctx, state, 1, 2, "left")
    assert "Wait until both answers are complete" in message


# --- flags -----------------------------------------------------------------------------------------

def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_25_malformed_auth_flag():
    from playground.commands.serve_cmd import auth_file, parse_auth

    with pytest.raises(PlaygroundError, match="no such users file.*users add"):
        auth_file("just-a-name")
    with pytest.raises(PlaygroundError, match="not NAME:PASSWORD"):
        parse_auth("alice:")
    with pytest.raises(PlaygroundError, match="not allowed"):
        parse_auth("al ice:s3cret")
    path, users = parse_auth("alice:s3cret")       # the inline form: one admin, hashed in memory
    assert path is None and users.role("alice") == "admin" and users.verify("alice", "s3cret")
    assert not users.verify("alice", "wrong")


def test_26_unknown_mode_on_the_command_line():
    out = _cli("ask", "hi", "--mode", "telepathy")
    assert out.returncode == 2 and "invalid choice: 'telepathy'" in out.stderr


def test_27_unusable_database_stops_the_app_at_startup_with_the_path(tmp_path):
    bad = tmp_path / "junk.db"
    bad.write_bytes(b"\x00garbage" * 512)
    out = _cli("--db", str(bad), "--port", "0")
    assert out.returncode == 2
    assert str(bad) in out.stderr and "Traceback" not in out.stderr
