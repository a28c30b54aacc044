"""DPO (TRL's DPOTrainer) or KTO (KTOTrainer) on the stored votes: LoRA (peft, merged) or full fine-tuning.

The two objectives share everything but the data and the trainer class: DPO trains on the DPO
export's pairs, KTO on the KTO export's unpaired rows (prompt, completion, desirable or not),
without the held-out pairs' answers; both are scored on the same held-out DPO pairs.

The result is an HF folder under the models directory that the catalog lists at once. It is
written into a hidden temporary folder beside its final place (the catalog skips hidden
folders) and renamed at the very end, so a failed or cancelled run leaves nothing in the catalog.
A GGUF base is dequantised by transformers; its quantizer is cleared so Trainer accepts it and
save_pretrained can write it (docs/architecture.md, "Training").
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import sys
import tempfile
import time
import threading
import warnings
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlite_utils import Database

from playground.backends.free_cores import FreeCores
from playground.devices import cpu_cores
from playground.errors import ModelError, PlaygroundError
from playground.models.catalog import Catalog, spec_from_hf_folder
from playground.models.spec import slug
from playground.models.spec import ModelSpec
from playground.training.card import write_card
from playground.export import PreferenceFilters
from playground.training.data import (PreferenceSplit, UnpairedRows, describe, load_preferences,
                                      load_unpaired)
from playground.training.scoring import Accuracy, accuracy, implicit_accuracy, noise_warning, preference_margins

METHODS = ("lora", "full")
OBJECTIVES = ("dpo", "kto")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")


@dataclass(frozen=True)
class DPOHyperparameters:
    """Defaults sound for small models on a CPU: beta 0.1 (DPO paper), LoRA r 16 on every linear layer
    with lr 5e-5 (full fine-tuning: 5e-6), 1 epoch, batch 4, 512 tokens per answer with its prompt."""

    beta: float = 0.1
    learning_rate: float | None = None      # None: 5e-5 for LoRA, 5e-6 for full
    epochs: float = 1.0
    batch_size: int = 4
    max_length: int = 512
    max_steps: int = -1                      # > 0 overrides epochs
    lora_r: int = 16
    lora_alpha: int = 32
    seed: int = 0

    def lr_for(self, method: str) -> float:
        return self.learning_rate if self.learning_rate else (5e-5 if method == "lora" else 5e-6)

# transformers, TRL and PEFT announce API changes with FutureWarnings on every run; they are about
# their callers' code (ours), not anything a user can act on, so they stay out of the console.
# A process-wide filter (warnings.catch_warnings is not thread-safe, and training runs in a thread).
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft|accelerate)(\.|$)")


@dataclass(frozen=True)
class TrainRequest:
    base: str
    name: str
    models_dir: Path
    method: str = "lora"
    filters: PreferenceFilters = field(default_factory=PreferenceFilters)
    hyper: DPOHyperparameters = field(default_factory=DPOHyperparameters)
    held_out_fraction: float = 0.1
    device: str = "cpu"
    objective: str = "dpo"                   # "dpo" (pairs) or "kto" (unpaired rows)


@dataclass(frozen=True)
class TrainProgress:
    """One update: step of max_steps, seconds so far, ETA, TRL's logged metrics (empty between logs)."""

    step: int
    max_steps: int
    elapsed: float
    eta: float | None
    logs: dict[str, float]
    stage: str = "training"
    notice: str | None = None     # said before training: e.g. too few held-out pairs to measure anything


@dataclass(frozen=True)
class TrainResult:
    path: Path
    model_id: str
    pairs: int
    steps: int
    final_metrics: dict[str, float]
    base_accuracy: Accuracy
    tuned_accuracy: Accuracy
    implicit: Accuracy
    wall_seconds: float
    notice: str | None = None     # the noise warning, kept with the result it qualifies


class TrainCancelled(PlaygroundError):
    """The user cancelled; nothing was written to the models folder."""


ProgressFn = Callable[[TrainProgress], None]


def check_request(request: TrainRequest, catalog: Catalog) -> tuple[ModelSpec, Path]:
    """The base spec and the final folder, or a PlaygroundError saying what to change (before any work)."""
    if request.method not in METHODS:
        raise PlaygroundError(f"unknown method {request.method!r}: choose {' or '.join(METHODS)}")
    if request.objective not in OBJECTIVES:
        raise PlaygroundError(f"unknown training objective {request.objective!r}: choose {' or '.join(OBJECTIVES)}")
    if request.objective == "kto" and request.hyper.batch_size < 2:
        raise PlaygroundError(f"KTO needs a batch size of at least 2 (it estimates its KL term from the other rows "
                              f"of the batch), got {request.hyper.batch_size}: pass --batch-size 2 or more")
    if not NAME_RE.match(request.name or ""):
        raise PlaygroundError(f"model name {request.name!r} is not a folder name: use letters, digits, '.', '_' "
                              "or '-' (up to 80), starting with a letter or digit")
    spec = catalog.get(request.base)
    if spec.source == "remote" or spec.format not in ("gguf", "hf"):
        raise ModelError(f"{spec.id} cannot be trained here: it runs on a remote server, and training needs "
                         "weights on disk that transformers loads (a GGUF file or an HF folder); pick a local model")
    if spec.path is None or not Path(spec.path).exists():
        raise ModelError(f"{spec.id} is not on disk{' (download it first: ' + spec.hub_ref + ')' if spec.hub_ref else ''}; "
                         "training needs its weights")
    target = Path(request.models_dir) / request.name
    if target.exists():
        raise PlaygroundError(f"{target} already exists: choose another --name or remove that folder")
    try:
        Path(request.models_dir).mkdir(parents=True, exist_ok=True)
        probe = Path(request.models_dir) / f".write-test-{os.getpid()}-{threading.get_ident()}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise PlaygroundError(f"cannot write the tuned model into {request.models_dir}: {exc.strerror or exc}; "
                              "make the models folder writable or pass --models-dir") from None
    return spec, target


BACKGROUND_NICE = 10   # training yields the CPU to the web server and the generations beside it


def as_background_work() -> None:
    """Lower the calling thread's CPU priority to BACKGROUND_NICE, and so that of the threads torch
    starts from it (a new thread inherits it): training runs for minutes at full CPU, and a vote or
    a generation beside it should not wait for it. Linux only (elsewhere a no-op); never raises
    the priority (that needs privileges), never fails the run."""
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()   # on Linux a thread's priority is its own
    try:
        os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), BACKGROUND_NICE))
    except OSError:
        pass


def train_dpo(request: TrainRequest, catalog: Catalog, db: Database, *, cancel: threading.Event | None = None,
              progress: ProgressFn | None = None) -> TrainResult:
    """Train, score held-out pairs before and after, write the folder with its card; see the module doc.
    Runs the request's objective (DPO by default, or KTO): the name is kept for its callers."""
    started = time.monotonic()
    cancel = cancel or threading.Event()
    report = progress or (lambda p: None)
    spec, target = check_request(request, catalog)
    kto = request.objective == "kto"
    split = load_preferences(db, request.filters, held_out_fraction=request.held_out_fraction,
                             seed=request.hyper.seed, require_pairs=not kto)
    unpaired = load_unpaired(db, request.filters, split.held_out, seed=request.hyper.seed) if kto else None
    notice = noise_warning(len(split.held_out), split.size)
    report(TrainProgress(0, 0, time.monotonic() - started, None, {}, stage="loading the base model", notice=notice))
    tokenizer, model = load_trainable(spec, request.device)
    report(TrainProgress(0, 0, time.monotonic() - started, None, {}, stage="scoring held-out pairs (base)"))
    base_margins = preference_margins(model, tokenizer, split.held_out, request.hyper.max_length)
    _raise_if_cancelled(cancel)
    with tempfile.TemporaryDirectory(prefix="playground-dpo-") as scratch:
        trainer = _make_trainer(request, model, tokenizer, unpaired.rows if unpaired else split.train, cancel,
                                report, started, Path(scratch))
        trainer.train()
    _raise_if_cancelled(cancel)
    tuned = trainer.model.merge_and_unload() if request.method == "lora" else trainer.model
    report(TrainProgress(trainer.state.global_step, trainer.state.max_steps, time.monotonic() - started, 0.0, {},
                         stage="scoring held-out pairs (tuned)"))
    tuned_margins = preference_margins(tuned, tokenizer, split.held_out, request.hyper.max_length)
    _raise_if_cancelled(cancel)
    final = _final_metrics(trainer.state.log_history)
    trained_on = len(unpaired.rows) if unpaired else split.size
    result = TrainResult(target, "", trained_on, trainer.state.global_step, final, accuracy(base_margins),
                         accuracy(tuned_margins), implicit_accuracy(base_margins, tuned_margins),
                         time.monotonic() - started, notice)
    _save_atomically(tuned, tokenizer, target, _card_facts(request, spec, split, result, unpaired), cancel)
    listed = catalog.add(spec_from_hf_folder(slug(request.name), f"{request.name} (local)", "local", target))
    return replace(result, model_id=listed.id)


def load_trainable(spec: ModelSpec, device: str) -> tuple[Any, Any]:
    """Tokenizer and float32 model; a GGUF base is dequantised and its quantizer cleared."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(spec.path)
    folder, extra = (path.parent, {"gguf_file": path.name}) if spec.format == "gguf" else (path, {})
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=False, **extra)
        model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=False, dtype=torch.float32, **extra)
    except Exception as exc:  # transformers raises many kinds for unsupported files
        raise ModelError(f"cannot load {path} with transformers for training ({type(exc).__name__}: "
                         f"{str(exc)[:300]}); pick a model whose architecture transformers supports") from exc
    if spec.format == "gguf":
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer, model.to(device)


def _make_trainer(request: TrainRequest, model: Any, tokenizer: Any, rows: list[dict[str, Any]],
                  cancel: threading.Event, report: ProgressFn, started: float, scratch: Path) -> Any:
    """TRL's DPOTrainer on pairs or KTOTrainer on unpaired rows (same config fields, same constructor)."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer

    Config, Trainer = (KTOConfig, KTOTrainer) if request.objective == "kto" else (DPOConfig, DPOTrainer)

    hp = request.hyper
    free = FreeCores(cpu_cores())

    class Watch(TrainerCallback):
        """Stops at the next step when `cancel` is set; reports each step and TRL's logs.
        The ETA is the mean step time since training began (loading and scoring left out) × steps left."""

        began = time.monotonic()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.began = time.monotonic()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            follow_free_cores(free)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if cancel.is_set():
                control.should_training_stop = True
            self._report(state, {})

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kw: Any) -> None:
            self._report(state, {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))})

        def _report(self, state: Any, logs: dict[str, float]) -> None:
            elapsed = time.monotonic() - started
            per = ((time.monotonic() - self.began) / state.global_step) if state.global_step else None
            eta = per * (state.max_steps - state.global_step) if per else None
            report(TrainProgress(state.global_step, state.max_steps, elapsed, eta, logs))

    config = Config(
        output_dir=str(scratch), beta=hp.beta,
        learning_rate=hp.lr_for(request.method), num_train_epochs=hp.epochs, max_steps=hp.max_steps,
        per_device_train_batch_size=hp.batch_size, max_length=hp.max_length, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=request.device == "cpu", seed=hp.seed,
        disable_tqdm=True, dataloader_num_workers=0)
    peft_config = None
    if request.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=hp.lora_r, lora_alpha=hp.lora_alpha, lora_dropout=0.0,
                                 target_modules="all-linear", task_type="CAUSAL_LM")
    # Full fine-tuning needs a frozen reference; TRL would reload it from the model's folder, which
    # fails for a GGUF (no config.json there), so it gets a copy of the loaded base.
    ref_model = None if peft_config else copy.deepcopy(model).eval().requires_grad_(False)
    trainer = Trainer(model=model, ref_model=ref_model, args=config, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=peft_config, callbacks=[Watch()])
    trainer.remove_callback(PrinterCallback)   # progress goes through `report`, not print()
    return trainer


def follow_free_cores(free: FreeCores) -> None:
    """Each step on as many torch threads as other processes leave free (backends/free_cores.py):
    torch's threads, like llama.cpp's, wait for each other after every operation."""
    import torch

    n = free.usable()
    if n != torch.get_num_threads():
        torch.set_num_threads(n)


def _raise_if_cancelled(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise TrainCancelled("training cancelled: nothing was written to the models folder")


def _final_metrics(history: list[dict[str, Any]]) -> dict[str, float]:
    last: dict[str, float] = {}
    for entry in history:
        for key, value in entry.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                last[key] = float(value)
    return last


def _card_facts(request: TrainRequest, spec: ModelSpec, split: PreferenceSplit, result: TrainResult,
                unpaired: UnpairedRows | None = None) -> dict[str, Any]:
    from playground.models.identity import model_identity

    identity = model_identity(spec)
    hp = asdict(request.hyper) | {"learning_rate": request.hyper.lr_for(request.method), "method": request.method,
                                  "held_out_fraction": request.held_out_fraction, "device": request.device,
                                  "objective": request.objective}
    data: dict[str, Any] = {"pairs": split.size, "train": len(split.train), "held_out": len(split.held_out),
                            "sha256": split.sha256, "filters": request.filters.to_dict(),
                            "filters_text": describe(request.filters), "export_counts": split.export_counts}
    if unpaired is not None:
        data |= {"kto_rows": len(unpaired.rows), "kto_desirable": unpaired.desirable, "kto_sha256": unpaired.sha256,
                 "kto_export_counts": unpaired.export_counts}
    how = "LoRA, merged" if request.method == "lora" else "full fine-tuning"
    return {
        "name": request.name, "method": f"{request.objective.upper()} ({how})",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "base_model": {"id": spec.id, "display_name": spec.display_name, "path": str(spec.path),
                       "sha256": identity.get("sha256")},
        "data": data,
        "hyperparameters": hp, "final_metrics": result.final_metrics, "steps": result.steps,
        "wall_seconds": result.wall_seconds,
        "evaluation": {"base": result.base_accuracy.to_dict(), "tuned": result.tuned_accuracy.to_dict(),
                       "implicit_reward": result.implicit.to_dict(), "base_label": result.base_accuracy.label(),
                       "tuned_label": result.tuned_accuracy.label(), "implicit_label": result.implicit.label()},
    }


def _save_atomically(model: Any, tokenizer: Any, target: Path, facts: dict[str, Any], cancel: threading.Event) -> None:
    """Write into `.<name>.partial-<pid>` beside `target`, rename at the end; remove it on any failure."""
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, facts)
        _raise_if_cancelled(cancel)
        os.rename(tmp, target)
    except OSError as exc:
        raise PlaygroundError(f"cannot write the tuned model to {target}: {exc.strerror or exc}; "
                              "check the models folder is writable and has space") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
