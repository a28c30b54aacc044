"""Train on the votes (TRL DPO, LoRA by default) into a catalog model, through the real parts.

The bundled SmolLM2 answers 8 prompts twice through llama.cpp; the answers are stored and voted on
in a real SQLite file with the recording functions; DPO trains 2 steps on its dequantised GGUF with
tiny lengths. The tuned folder is listed by a fresh catalog and answers through the transformers
backend. Cancel, no pairs, a remote base and an unwritable models folder give clear errors.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

import storage
from playground.compare import PaneSpec, run_pane
from playground.errors import ModelError, PlaygroundError
from playground.models.catalog import build_catalog
from playground.models.spec import ModelSpec
from playground.recording import save_generation, save_vote
from playground.sampling import SamplingParams
from playground.training import DPOHyperparameters, TrainCancelled, TrainRequest, train_dpo
from playground.export import PreferenceFilters
from playground.training.scoring import accuracy, implicit_accuracy

REPO = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m-instruct"
PROMPTS = ("What is 2 + 2?", "Name a colour.", "Say hello.", "What is the capital of France?",
           "Name an animal.", "What is 3 times 3?", "Name a fruit.", "Give me a number.")
TINY = DPOHyperparameters(max_steps=2, batch_size=2, max_length=48)
ALL_VOTES = PreferenceFilters(include_truncated=True)


@pytest.fixture(scope="module")
def voted_db(app_ctx, tmp_path_factory) -> Path:
    """8 real pairs: two sampled answers per prompt, the left one preferred, in a fresh SQLite file."""
    path = tmp_path_factory.mktemp("train") / "votes.db"
    spec = app_ctx.catalog.get(MODEL)
    for k, prompt in enumerate(PROMPTS):
        ids = []
        for seed in (k, 100 + k):
            pane = PaneSpec(MODEL, sampling=SamplingParams(temperature=0.9, max_new_tokens=12, seed=seed))
            last = None
            for last in run_pane(app_ctx, pane, prompt, (), None):
                pass
            ids.append(save_generation(path, session_id="trainer", spec=spec, backend="llama_cpp", device="cpu",
                                       mode="zero_shot", preset=None, result=last, sampling=pane.sampling,
                                       conversation=[{"role": "user", "content": prompt}]))
        save_vote(path, left_generation_id=ids[0], right_generation_id=ids[1], winner="left", session_id="trainer",
                  anonymous=False, source="arena")
    return path


def request(models_dir: Path, name: str, **changes) -> TrainRequest:
    return replace(TrainRequest(base=MODEL, name=name, models_dir=models_dir, filters=ALL_VOTES, hyper=TINY),
                   **changes)


def run(app_ctx, db_path: Path, req: TrainRequest, **kw):
    with closing(storage.open_database(db_path)) as db:
        return train_dpo(req, app_ctx.catalog, db, **kw)


def test_lora_run_makes_a_model_the_catalog_lists_and_transformers_answers_with(app_ctx, voted_db, tmp_path):
    from playground.backends.transformers_backend import TransformersBackend

    seen = []
    result = run(app_ctx, voted_db, request(tmp_path, "smol-dpo"), progress=seen.append)
    assert result.path == tmp_path / "smol-dpo" and result.steps == 2 and result.pairs == 8
    assert result.model_id == "smol-dpo" and app_ctx.catalog.get("smol-dpo").tuned_from == MODEL   # listed at once
    assert "loss" in result.final_metrics and "rewards/margins" in result.final_metrics
    assert any(p.logs.get("rewards/accuracies") is not None for p in seen)
    assert [p.step for p in seen if p.stage == "training" and not p.logs][-1] == 2
    assert result.base_accuracy.n == 1 and result.tuned_accuracy.n == 1   # 10% of 8 pairs, rounded up
    card = (result.path / "README.md").read_text()
    facts = json.loads((result.path / "training.json").read_text())
    assert f"base_model: {MODEL}" in card and facts["data"]["sha256"] in card and "learning_rate" in card
    assert facts["base_model"]["sha256"] and facts["data"]["train"] == 7 and facts["steps"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no scratch folder left behind"

    catalog = build_catalog(tmp_path, include_hub=False)
    tuned = catalog.get("smol-dpo")
    assert tuned.tuned_from == MODEL and f"tuned from {MODEL}" in tuned.note and tuned.format == "hf"
    model = TransformersBackend().load(tuned)
    try:
        prompt = model.render_chat([{"role": "user", "content": "Say hello."}])
        chunks = list(model.stream(prompt, SamplingParams(temperature=0.0, max_new_tokens=6)))
    finally:
        model.close()
    assert "".join(c.text for c in chunks).strip() and chunks[-1].finish_reason in ("stop", "length")
    del app_ctx.catalog.models["smol-dpo"]


def test_cancel_mid_run_leaves_nothing_in_the_models_folder(app_ctx, voted_db, tmp_path):
    cancel = threading.Event()

    def stop_at_first_step(p):
        if p.stage == "training" and p.step >= 1:
            cancel.set()

    with pytest.raises(TrainCancelled, match="nothing was written"):
        run(app_ctx, voted_db, request(tmp_path, "cancelled", hyper=replace(TINY, max_steps=50)),
            cancel=cancel, progress=stop_at_first_step)
    assert list(tmp_path.iterdir()) == []
    assert "cancelled" not in build_catalog(tmp_path, include_hub=False).ids()


def test_no_pairs_after_the_filters_is_a_clear_error(app_ctx, voted_db, tmp_path):
    with pytest.raises(PlaygroundError, match="no preference pairs to train on.*anonymous_only=True"):
        run(app_ctx, voted_db, request(tmp_path, "x", filters=PreferenceFilters(anonymous_only=True,
                                                                                 include_truncated=True)))
    assert list(tmp_path.iterdir()) == []


def test_a_remote_model_cannot_be_a_base(app_ctx, voted_db, tmp_path):
    remote = ModelSpec(id="served", display_name="served (remote)", source="remote", backends=("openai_compat",),
                       format="openai", base_url="http://127.0.0.1:9/v1", remote_model="m")
    app_ctx.catalog.models["served"] = remote
    try:
        with pytest.raises(ModelError, match="served cannot be trained here.*weights on disk"):
            run(app_ctx, voted_db, request(tmp_path, "x", base="served"))
    finally:
        del app_ctx.catalog.models["served"]


def test_an_unwritable_models_folder_is_a_clear_error(app_ctx, voted_db, tmp_path):
    blocker = tmp_path / "a-file"          # a folder cannot be made under a file, even by root
    blocker.write_text("not a folder")
    with pytest.raises(PlaygroundError, match="cannot write the tuned model into .*a-file.*writable"):
        run(app_ctx, voted_db, request(blocker / "models", "x"))


def test_an_existing_name_or_bad_name_is_refused_before_any_work(app_ctx, voted_db, tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(PlaygroundError, match="already exists"):
        run(app_ctx, voted_db, request(tmp_path, "taken"))
    with pytest.raises(PlaygroundError, match="not a folder name"):
        run(app_ctx, voted_db, request(tmp_path, "../escape"))


def test_accuracy_and_implicit_reward_signs():
    assert accuracy([1.0, -1.0, 0.5, 0.0]).successes == 2
    implicit = implicit_accuracy([1.0, 1.0, -2.0], [2.0, 0.5, -1.0])   # tuned margin above base: 2 of 3
    assert (implicit.successes, implicit.n) == (2, 3)
    lo, hi = implicit.interval
    assert lo < 2 / 3 < hi


def test_train_tab_date_error_names_its_field(app_ctx):
    """A newcomer's 'last week' in a date box: the error says which box (the form has two) and the fix."""
    from playground.ui.train_tab import build_request, run_training_view

    for col, label in ((4, "Votes since"), (5, "Votes until")):
        form = [MODEL, "x", "lora", None, None, None, False, True, 0.1, None, 1, 2, 2, 48, 0.1]
        form[col] = "last week"
        said = list(run_training_view(app_ctx, {}, lambda form=form: build_request(app_ctx, *form)))[-1][1].status
        assert said.startswith(f"❌ '{label}' (under Which votes): cannot read 'last week' as a date"), said
        assert "2025-01-31" in said                      # the fix: the form it reads


def test_train_tab_handler_runs_full_fine_tuning_with_live_metrics(app_ctx, voted_db, tmp_path, screenshot_dir):
    """The Train tab's handler without a browser: full fine-tuning, progress lines, the metrics figure."""
    from playground.ui.train_tab import battle_it, build_request, run_training_view, trainable_choices

    settings = app_ctx.settings
    app_ctx.settings = replace(settings, db_path=voted_db, models_dir=tmp_path)
    try:
        unnamed = (MODEL, " ", "lora", None, None, None, False, True, 0.1, None, 1, 2, 2, 48, 0.1)
        bad = list(run_training_view(app_ctx, {}, lambda: build_request(app_ctx, *unnamed)))
        assert bad[-1][1].status.startswith("❌ give the tuned model a name")
        kto = build_request(app_ctx, MODEL, "k", "lora", None, None, None, False, True, 0.1, None, 1, 2, 2, 48, 0.1,
                            "kto", True)
        assert kto.objective == "kto" and kto.filters.agreed_only and kto.hyper.batch_size == 2
        form = (MODEL, "smol-full", "full", None, None, None, False, True, 0.1, None, 1, 2, 2, 48, 0.1)
        statuses, figures, state, view = [], [], None, None
        for state, view in run_training_view(app_ctx, {}, lambda: build_request(app_ctx, *form)):
            statuses.append(view.status)
            figures.append(view.figure())
        assert any("⏳ step 2 of 2" in s for s in statuses), statuses
        # a handful of votes: said before the first training step, and kept with the result
        first_step = next(i for i, s in enumerate(statuses) if "⏳ step" in s)
        assert any("will be noise" in s for s in statuses[:first_step]), statuses
        assert "✅ **smol-full**" in view.status and "Held-out preference accuracy" in view.status
        assert "will be noise" in view.status and "95% CI" in view.status
        assert state["run_id"] is None and view.result.steps == 2
        assert [h["step"] for h in view.history if "loss" in h] == [1, 2]
        titles = [ax.get_title() for ax in figures[-1].axes]
        assert titles == ["loss", "rewards/margins", "rewards/accuracies"]
        assert all(len(ax.lines[0].get_xdata()) == 2 for ax in figures[-1].axes)
        figures[-1].savefig(screenshot_dir / "train_metrics.png")
        assert "smol-full" in dict((v, k) for k, v in trainable_choices(app_ctx))
        facts = json.loads((tmp_path / "smol-full" / "training.json").read_text())
        assert facts["hyperparameters"]["method"] == "full" and facts["hyperparameters"]["learning_rate"] == 5e-6

        # "Battle it against its base": the same pool `arena pool --models` saves; the Arena draws from it
        from playground.ui import arena_tab as at
        from storage.arena_pool import current_arena_pool

        assert state["battle"] == [MODEL, "smol-full"]
        assert battle_it(app_ctx, {"run_id": None}).startswith("⚠️ Train a model first")
        said = battle_it(app_ctx, state)
        assert said.startswith(f"⚔️ Arena pool set: **{MODEL}** vs **smol-full**"), said
        with closing(storage.open_database(voted_db)) as db:
            assert current_arena_pool(db) == (MODEL, "smol-full")
        own = at.PoolChoice(models=(MODEL,), modes=("zero_shot", "instruction"))
        st, view = at.arena_new_round(app_ctx, at.new_arena_state(), own)
        sides = {st["round"][s]["contestant"]["model_id"] for s in ("left", "right")}
        assert sides == {MODEL, "smol-full"}, view.status
    finally:
        app_ctx.settings = settings
        app_ctx.catalog.models.pop("smol-full", None)


def test_cli_says_what_to_change_when_no_vote_matches(voted_db, tmp_path, capsys):
    from playground.cli import main

    code = main(["train", "dpo", "--base", MODEL, "--name", "cli-x", "--db", str(voted_db), "--models-dir",
                 str(tmp_path), "--anonymous-only", "--max-steps", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error: no preference pairs to train on" in err and "anonymous_only=True" in err
    assert "answers cut by the token limit left out" in err and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- KTO: unpaired rows


def test_kto_run_trains_on_unpaired_rows_without_the_held_out_answers(app_ctx, voted_db, tmp_path):
    """KTO through the same path: 8 pairs -> 16 unpaired rows, the held-out pair's 2 answers left out."""
    seen = []
    result = run(app_ctx, voted_db, request(tmp_path, "smol-kto", objective="kto"), progress=seen.append)
    assert result.steps == 2 and result.pairs == 14 and result.model_id == "smol-kto"
    assert "loss" in result.final_metrics and "kl" in result.final_metrics
    assert result.base_accuracy.n == 1 and result.tuned_accuracy.n == 1
    facts = json.loads((result.path / "training.json").read_text())
    assert facts["method"] == "KTO (LoRA, merged)" and facts["hyperparameters"]["objective"] == "kto"
    assert facts["data"]["kto_rows"] == 14 and facts["data"]["kto_desirable"] == 7
    assert facts["data"]["kto_export_counts"]["held_out_rows_dropped"] == 2
    card = (result.path / "README.md").read_text()
    assert "tags: [kto, trl, playground]" in card and "trained with KTO on 14 unpaired rows (7 desirable)" in card
    assert build_catalog(tmp_path, include_hub=False).get("smol-kto").tuned_from == MODEL
    del app_ctx.catalog.models["smol-kto"]


def test_kto_needs_a_batch_of_two_and_an_objective_is_checked(app_ctx, voted_db, tmp_path):
    with pytest.raises(PlaygroundError, match="KTO needs a batch size of at least 2"):
        run(app_ctx, voted_db, request(tmp_path, "x", objective="kto", hyper=replace(TINY, batch_size=1)))
    with pytest.raises(PlaygroundError, match="unknown training objective 'ppo'"):
        run(app_ctx, voted_db, request(tmp_path, "x", objective="ppo"))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- agreement filter


@pytest.fixture()
def two_voters_db(voted_db, tmp_path) -> Path:
    """The 8 voted pairs plus alice and bob: both agree with the first pair's vote, disagree on the second."""
    import shutil

    path = tmp_path / "team.db"
    with closing(storage.open_database(voted_db)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pairs = db.execute("SELECT b.left_generation_id, b.right_generation_id FROM battles b ORDER BY b.id"
                           ).fetchall()
    shutil.copy(voted_db, path)
    for voter, first, second in (("alice", "left", "left"), ("bob", "left", "right")):
        for (left, right), winner in zip(pairs[:2], (first, second), strict=True):
            save_vote(path, left_generation_id=left, right_generation_id=right, winner=winner,
                      session_id=f"user:{voter}/s", anonymous=False, source="arena")
    return path


def test_agreed_only_keeps_the_one_pair_every_annotator_judged_alike(two_voters_db):
    from playground.training.data import load_preferences, load_unpaired

    with closing(storage.open_database(two_voters_db)) as db:
        everyone = load_preferences(db, ALL_VOTES, held_out_fraction=0)
        agreed = load_preferences(db, replace(ALL_VOTES, agreed_only=True), held_out_fraction=0)
        rows = load_unpaired(db, replace(ALL_VOTES, agreed_only=True), [])
    # 8 pairs; the first judged alike 3 times (deduped to one row); bob reversed the second: one more pair
    assert everyone.size == 9
    assert agreed.size == 1 and agreed.export_counts["left_out"] == {"single_annotator": 6,
                                                                      "annotators_disagree": 3,
                                                                      "agreed_pair_repeat": 2}
    assert len(rows.rows) == 2 and rows.desirable == 1


def test_cli_agreed_only_reaches_the_filter(voted_db, tmp_path, capsys):
    from playground.cli import main

    code = main(["train", "kto", "--base", MODEL, "--name", "cli-y", "--db", str(voted_db), "--models-dir",
                 str(tmp_path), "--agreed-only", "--max-steps", "2"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no KTO rows to train on" in err and "agreed_only=True" in err and "single_annotator" in err
    assert list(tmp_path.iterdir()) == []


def test_metrics_figure_shows_kl_for_a_kto_run_and_accuracies_for_dpo():
    from playground.ui.train_tab import metrics_figure

    kto = metrics_figure([{"step": 1, "loss": 0.7, "rewards/margins": 0.1, "kl": 0.0}])
    dpo = metrics_figure([{"step": 1, "loss": 0.7, "rewards/margins": 0.1, "rewards/accuracies": 0.5}])
    assert [ax.get_title() for ax in kto.axes] == ["loss", "rewards/margins", "kl"]
    assert [ax.get_title() for ax in dpo.axes] == ["loss", "rewards/margins", "rewards/accuracies"]


def test_too_few_held_out_pairs_are_called_noise_with_the_interval_width():
    from playground.training.scoring import MIN_HELD_OUT_PAIRS, Accuracy, noise_warning

    assert noise_warning(MIN_HELD_OUT_PAIRS, 300) is None
    said = noise_warning(1, 3)
    assert said.startswith("only 1 held-out pair (of 3)") and "will be noise" in said
    assert "wide at 0/1" in noise_warning(1, 3) and "53% wide at 5/10" in noise_warning(10, 100)
    assert "95% CI 21%-100%" in Accuracy(1, 1).label()       # every accuracy carries its interval


def test_metric_plot_steps_are_whole_numbers_and_library_future_warnings_stay_quiet():
    from playground.ui.train_tab import metrics_figure

    fig = metrics_figure([{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6}, {"step": 3, "loss": 0.5}])
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks
    # a process of its own: pytest shows every warning inside tests, whatever the filters say
    code = ("import warnings; from playground.training import dpo; "
            "warnings.warn_explicit('`foo` is deprecated', FutureWarning, 'trainer.py', 1, module='transformers.trainer'); "
            "warnings.warn_explicit('ours', FutureWarning, 'x.py', 1, module='playground.x')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ours" in out.stderr and "foo" not in out.stderr, out.stderr


def test_the_battle_button_is_behind_the_admin_guard(app_ctx):
    """Setting the pool changes every user's Arena: its event is wrapped by auth.policy's role check."""
    from playground.auth.policy import ADMIN_ELEMENTS
    from playground.ui.app import build_ui

    demo = build_ui(app_ctx)
    battle = [f for f in demo.fns.values() if f.api_name == "train_battle"]
    assert ADMIN_ELEMENTS["train-battle"] == "set the Arena pool"
    assert len(battle) == 1 and getattr(battle[0].fn, "__wrapped__", None) is not None
