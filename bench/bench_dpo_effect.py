"""From votes to a tuned model: does DPO on the bundled model's own answers move a checkable property?

The property: the answer's first word is "The" (`has_property`). Why this one: it is checked
exactly from the first few tokens (cheap to measure on many samples), it is a single early
decision a 135M model can learn from a few hundred pairs on a CPU, and on open prompts (stories,
poems, "why do people like ...") the bundled model's own sampled answers start with "The" often
enough, and not always, that most prompts yield both a chosen and a rejected answer. A first try
with plain "Tell me about X / Describe X" prompts gave few pairs: the first word there is mostly
fixed by the prompt ("Exercise is ...", "A volcano is ..."), so nearly all or none of a prompt's
answers have the property (docs/benchmarks.md).

Steps, all through the real parts:
1. Prompts: subjects x templates; the SUBJECTS are split into train and held-out, so held-out
   prompts are about things the training never saw.
2. The default model (`smollm2-135m-instruct-f16`, dequantised by transformers exactly as training
   loads it) samples `samples` answers per prompt (temperature 0.8, top-p 0.95, `answer_tokens`
   tokens). Answers with the property are chosen, the others rejected (`build_pairs`), and each pair
   is stored as a real blind vote in a real SQLite file (storage: generations, battle, vote; sides
   shuffled). Answers are cut at `answer_tokens`, so the filters include cut answers (stated).
3. `train_dpo` (the app's training: export with filters -> TRL DPOTrainer, LoRA merged) on the
   train DB; the folder goes to a temp models dir (nothing in git, nothing in the user's models).
4. Held-out prompts: base and tuned each sample `eval_samples` answers per prompt with the same
   settings and the same seeds; the property's rate before and after with Wilson 95% intervals,
   the difference with Newcombe's 95% interval and a 95% bootstrap interval over prompts (answers to
   one prompt are not independent). Held-out preference accuracy (playground/training/scoring.py)
   on pairs built the same way from the held-out prompts, before and after.
5. CPU time per optimizer step (time.process_time, all threads of this process) for LoRA (from the
   main run) and for full fine-tuning (`timing_steps` steps on the same data).

Run: python bench/bench_dpo_effect.py [--quick] [--workdir DIR]  (DIR keeps the vote databases, reused on a
re-run; its models/ subfolder is replaced)
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from common import machine_info

MODEL = "smollm2-135m-instruct-f16"
WORD = "The"
PROPERTY = f'the answer\'s first word is "{WORD}"'
_PROPERTY_RE = re.compile(rf"\s*[\"'*]*{WORD}(?=[\s,.:;!?'\"-])")

SUBJECTS = (
    "the moon", "the ocean", "rainforests", "bicycles", "the internet", "coffee", "the Roman Empire", "chess",
    "volcanoes", "honey bees", "the human heart", "electric cars", "the Great Wall of China", "libraries",
    "winter", "the Sahara desert", "jazz music", "the printing press", "penguins", "tea", "mountains",
    "the solar system", "recycling", "airplanes", "the Amazon river", "democracy", "vaccines", "trains",
    "the Eiffel Tower", "photography", "gardening", "the Olympic Games", "dinosaurs", "clouds", "bread",
    "the piano", "football", "museums", "rain", "the violin", "castles", "the Arctic", "lighthouses",
    "sharks", "the telephone", "earthquakes", "coral reefs", "the stock market", "wolves", "glaciers",
    "the Renaissance", "satellites", "chocolate", "bridges", "forests", "the camera", "hurricanes",
    "the pyramids of Egypt", "elephants", "the violin bow", "deserts", "the microscope", "rivers", "owls",
    "the wheel", "snow", "the compass", "whales", "islands", "the alphabet",
)
TEMPLATES = ("Tell me about {s}.", "Write a short story about {s}.", "Why do people like {s}?",
             "What would the world be like without {s}?", "Explain {s} to a child.",
             "What is interesting about {s}?", "Give me a fun fact about {s}.", "Describe {s}.",
             "Write a poem about {s}.", "What do you think about {s}?")


def has_property(text: str) -> bool:
    """True when the first word of `text` is exactly "The" (quotes/asterisks before it allowed)."""
    return bool(_PROPERTY_RE.match(text))


def build_pairs(answers: Sequence[str], per_prompt: int) -> list[tuple[int, int]]:
    """(chosen, rejected) indices into `answers`: an answer with the property against one without,
    distinct combinations, at most `per_prompt`, each answer used as evenly as possible; [] when
    the prompt's answers all have the property or all lack it."""
    good = [i for i, a in enumerate(answers) if has_property(a)]
    bad = [i for i, a in enumerate(answers) if not has_property(a)]
    combos = [(good[(j + k) % len(good)], bad[j % len(bad)])
              for k in range(len(good)) for j in range(len(bad))] if good and bad else []
    seen: list[tuple[int, int]] = []
    for pair in combos:
        if pair not in seen:
            seen.append(pair)
    return seen[:per_prompt]


def prompts_split(n_train_subjects: int, n_held_subjects: int, per_subject: int, seed: int = 0
                  ) -> tuple[list[str], list[str]]:
    """Train and held-out prompts from disjoint subjects, `per_subject` templates each."""
    rng = random.Random(seed)
    subjects = list(SUBJECTS)
    rng.shuffle(subjects)
    if n_train_subjects + n_held_subjects > len(subjects):
        raise ValueError(f"only {len(subjects)} subjects")

    def prompts(group: list[str]) -> list[str]:
        out = []
        for k, s in enumerate(group):
            for j in range(per_subject):
                out.append(TEMPLATES[(k + j) % len(TEMPLATES)].format(s=s))
        return out

    return prompts(subjects[:n_train_subjects]), prompts(subjects[n_train_subjects:n_train_subjects + n_held_subjects])


@dataclass(frozen=True)
class Sample:
    text: str
    finish_reason: str
    n_tokens: int


def sample_answers(model: Any, tokenizer: Any, prompt: str, n: int, max_new_tokens: int, seed: int,
                   temperature: float = 0.8, top_p: float = 0.95) -> list[Sample]:
    """`n` sampled answers to one user turn (chat template), reproducible from `seed`."""
    import torch

    ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**ids, do_sample=True, temperature=temperature, top_p=top_p, top_k=0,
                             max_new_tokens=max_new_tokens, num_return_sequences=n,
                             pad_token_id=tokenizer.pad_token_id)
    samples = []
    eos = tokenizer.eos_token_id
    for seq in out[:, ids["input_ids"].shape[1]:].tolist():
        stopped = eos in seq
        seq = seq[:seq.index(eos)] if stopped else seq
        samples.append(Sample(tokenizer.decode(seq, skip_special_tokens=True).strip(),
                              "stop" if stopped else "length", len(seq)))
    return samples


def store_pairs(db: Any, prompt: str, samples: Sequence[Sample], pairs: Sequence[tuple[int, int]],
                sampling: dict, rng: random.Random) -> int:
    """Each answer as a generation, each pair as a blind battle with its vote (sides shuffled)."""
    from storage import GenerationRecord, create_battle, insert_generation, record_vote, write_transaction

    conversation = [{"role": "user", "content": prompt}]
    ids: dict[int, int] = {}
    for i in sorted({i for pair in pairs for i in pair}):
        s = samples[i]
        ids[i] = insert_generation(db, GenerationRecord(
            model_id=MODEL, conversation=conversation, output=s.text, session_id="bench-effect",
            backend="transformers", device="cpu", mode="zero_shot", sampling=sampling,
            n_output_tokens=s.n_tokens, finish_reason=s.finish_reason))
    for chosen, rejected in pairs:
        left_chosen = rng.random() < 0.5
        left, right = (chosen, rejected) if left_chosen else (rejected, chosen)
        with write_transaction(db):
            battle = create_battle(db, left_generation_id=ids[left], right_generation_id=ids[right],
                                   anonymous=True, session_id="bench-effect", source="arena")
            record_vote(db, battle_id=battle, winner="left" if left_chosen else "right", session_id="bench-effect")
    return len(pairs)


def make_votes(model: Any, tokenizer: Any, prompts: Sequence[str], db_path: Path, *, samples: int,
               answer_tokens: int, per_prompt: int, seed: int) -> dict[str, Any]:
    """Sample, sort into pairs and store; returns counts and the property's rate in these samples."""
    import storage

    sampling = {"temperature": 0.8, "top_p": 0.95, "top_k": 0, "max_new_tokens": answer_tokens}
    rng = random.Random(seed)
    n_pairs = n_with = n_answers = prompts_used = 0
    with closing(storage.open_database(db_path)) as db:
        for k, prompt in enumerate(prompts):
            got = sample_answers(model, tokenizer, prompt, samples, answer_tokens, seed * 100_000 + k)
            pairs = build_pairs([s.text for s in got], per_prompt)
            n_answers += len(got)
            n_with += sum(has_property(s.text) for s in got)
            if pairs:
                prompts_used += 1
                n_pairs += store_pairs(db, prompt, got, pairs, sampling, rng)
    return {"pairs": n_pairs, "answers": n_answers, "with_property": n_with, "prompts": len(prompts),
            "prompts_with_pairs": prompts_used}


def property_counts(model: Any, tokenizer: Any, prompts: Sequence[str], n: int, seed: int) -> list[int]:
    """Per prompt: how many of `n` sampled answers have the property (4 tokens decide the first word)."""
    return [sum(has_property(s.text) for s in sample_answers(model, tokenizer, p, n, 4, seed * 100_000 + k))
            for k, p in enumerate(prompts)]


def bootstrap_difference(before: Sequence[int], after: Sequence[int], n: int, rounds: int = 4000,
                         seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of rate(after) - rate(before), resampling prompts (paired)."""
    rng = random.Random(seed)
    m = len(before)
    diffs = []
    for _ in range(rounds):
        idx = [rng.randrange(m) for _ in range(m)]
        diffs.append((sum(after[i] for i in idx) - sum(before[i] for i in idx)) / (m * n))
    diffs.sort()
    return diffs[int(0.025 * rounds)], diffs[int(0.975 * rounds) - 1]


class StepClock:
    """A `train_dpo` progress hook that notes CPU and wall time at each finished optimizer step."""

    def __init__(self) -> None:
        self.marks: list[tuple[int, float, float]] = []

    def __call__(self, p: Any) -> None:
        if p.stage == "training" and not p.logs and p.step and (not self.marks or self.marks[-1][0] != p.step):
            self.marks.append((p.step, time.process_time(), time.perf_counter()))

    def per_step(self) -> tuple[float, float]:
        """Median CPU and wall seconds per step, the first step (warm-up) left out."""
        cpu = [b[1] - a[1] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        wall = [b[2] - a[2] for a, b in zip(self.marks, self.marks[1:], strict=False)]
        return (statistics.median(cpu), statistics.median(wall)) if cpu else (float("nan"), float("nan"))


def main(train_subjects: int = 40, held_subjects: int = 12, per_subject: int = 2, samples: int = 8,
         per_prompt: int = 4, answer_tokens: int = 12, eval_samples: int = 8, epochs: float = 1.0,
         learning_rate: float = 4e-4, batch_size: int = 4, max_length: int = 128, timing_steps: int = 3,
         seed: int = 0, threads: int = 1, workdir: str | None = None) -> dict:
    """The study (see the module doc). `workdir`: keep the vote databases there and reuse them on a
    re-run (the sampled votes are the slow part); default a temporary folder. `threads`: torch's
    threads for everything here (1 by default: on a shared 2-core machine a second thread mostly
    spins waiting, which inflates CPU time)."""
    import torch

    import storage
    from playground.config import Settings
    from playground.context import AppContext
    from playground.errors import PlaygroundError
    from playground.lab.curves import newcombe_difference
    from playground.stats import wilson_interval
    from playground.training import DPOHyperparameters, TrainRequest, train_dpo
    from playground.export import PreferenceFilters
    from playground.training.data import load_preferences
    from playground.training.dpo import load_trainable
    from playground.training.scoring import accuracy, implicit_accuracy, preference_margins

    torch.set_num_threads(threads)
    t_all = time.perf_counter()
    figures: dict[str, Any] = {"property": PROPERTY, "torch threads": threads, "load average at start": " ".join(f"{x:.1f}" for x in os.getloadavg())}
    train_prompts, held_prompts = prompts_split(train_subjects, held_subjects, per_subject, seed)
    with tempfile.TemporaryDirectory(prefix="bench-dpo-effect-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(root / "models", ignore_errors=True)
        ctx = AppContext.create(Settings(db_path=root / "votes.db", models_dir=root / "models", threads=2))
        base_spec = ctx.ensure_local(ctx.catalog.get(MODEL))
        tokenizer, base = load_trainable(base_spec, "cpu")
        base.eval()

        start, cpu0 = time.perf_counter(), time.process_time()
        done = root / "votes.json"
        if done.exists():
            made, held, wall, cpu = json.loads(done.read_text())
        else:
            print(f"sampling {samples} answers to each of {len(train_prompts)} + {len(held_prompts)} prompts",
                  file=sys.stderr, flush=True)
            for name in ("votes.db", "held.db"):
                for extra in ("", "-wal", "-shm"):
                    (root / (name + extra)).unlink(missing_ok=True)
            made = make_votes(base, tokenizer, train_prompts, root / "votes.db", samples=samples,
                              answer_tokens=answer_tokens, per_prompt=per_prompt, seed=seed)
            held = make_votes(base, tokenizer, held_prompts, root / "held.db", samples=samples,
                              answer_tokens=answer_tokens, per_prompt=per_prompt, seed=seed + 1)
            wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
            done.write_text(json.dumps([made, held, wall, cpu]))
        figures["votes: wall s (sampling + storing)"] = wall
        figures["votes: CPU s"] = cpu
        figures["train prompts / with a pair"] = f"{made['prompts']} / {made['prompts_with_pairs']}"
        figures["held-out prompts / with a pair"] = f"{held['prompts']} / {held['prompts_with_pairs']}"
        figures["base rate in the sampled answers (train prompts)"] = made["with_property"] / made["answers"]
        print(f"votes stored: {made} (train), {held} (held-out), {figures['votes: wall s (sampling + storing)']:.0f} s",
              flush=True)

        filters = PreferenceFilters(include_truncated=True)     # answers are cut at answer_tokens
        with closing(storage.open_database(root / "held.db")) as db:
            try:
                held_pairs = load_preferences(db, filters, held_out_fraction=0.0).train
            except PlaygroundError:     # no held-out prompt gave a pair (possible in --quick)
                held_pairs = []

        hyper = DPOHyperparameters(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
                                   max_length=max_length, seed=seed)
        clock = StepClock()
        start, cpu0 = time.perf_counter(), time.process_time()
        with closing(storage.open_database(root / "votes.db")) as db:
            result = train_dpo(TrainRequest(base=MODEL, name="smol-the-lora", models_dir=root / "models",
                                            filters=filters, hyper=hyper, held_out_fraction=0.0),
                               ctx.catalog, db, progress=clock)
        train_wall, train_cpu = time.perf_counter() - start, time.process_time() - cpu0
        lora_cpu, lora_wall = clock.per_step()
        n_pairs = result.pairs
        figures.update({
            "pairs trained on": n_pairs, "optimizer steps": result.steps, "epochs": epochs, "batch size": batch_size,
            "learning rate (LoRA r16, all linear)": learning_rate, "beta": hyper.beta,
            "train_dpo wall s (load, train, merge, save)": train_wall, "train_dpo CPU s": train_cpu,
            "wall s per pair (train_dpo / pairs / epochs)": train_wall / (n_pairs * epochs),
            "LoRA: CPU s per step": lora_cpu, "LoRA: wall s per step": lora_wall,
            "final rewards/accuracies (TRL, last step)": result.final_metrics.get("rewards/accuracies", float("nan")),
            "final loss (last step)": result.final_metrics.get("loss", float("nan")),
        })
        print(f"trained: {result.steps} steps on {n_pairs} pairs in {train_wall:.0f} s", flush=True)
        print(report(figures, final=False), file=sys.stderr, flush=True)   # progress, not the report

        tuned_tok, tuned = load_trainable(ctx.catalog.get(result.model_id), "cpu")
        tuned.eval()
        start = time.perf_counter()
        before = property_counts(base, tokenizer, held_prompts, eval_samples, seed + 7)
        after = property_counts(tuned, tuned_tok, held_prompts, eval_samples, seed + 7)
        figures["evaluation wall s"] = time.perf_counter() - start
        n_total = len(held_prompts) * eval_samples
        k0, k1 = sum(before), sum(after)
        lo0, hi0 = wilson_interval(k0, n_total)
        lo1, hi1 = wilson_interval(k1, n_total)
        d, dlo, dhi = newcombe_difference(k1, n_total, k0, n_total)
        blo, bhi = bootstrap_difference(before, after, eval_samples, seed=seed)
        figures.update({
            "held-out answers per model": f"{n_total} ({len(held_prompts)} prompts x {eval_samples})",
            "rate before (base)": f"{k0 / n_total:.1%} ({k0}/{n_total}; Wilson 95% {lo0:.1%}-{hi0:.1%})",
            "rate after (tuned)": f"{k1 / n_total:.1%} ({k1}/{n_total}; Wilson 95% {lo1:.1%}-{hi1:.1%})",
            "difference": f"{d:+.1%} (Newcombe 95% {dlo:+.1%} to {dhi:+.1%}; bootstrap over prompts 95% "
                          f"{blo:+.1%} to {bhi:+.1%})",
            "prompts where the rate rose / fell / same": "{} / {} / {}".format(
                sum(a > b for a, b in zip(after, before, strict=True)), sum(a < b for a, b in zip(after, before, strict=True)),
                sum(a == b for a, b in zip(after, before, strict=True))),
            "effect excludes zero (both intervals)": bool(dlo > 0 and blo > 0),
        })

        base_m = preference_margins(base, tokenizer, held_pairs, max_length)
        tuned_m = preference_margins(tuned, tuned_tok, held_pairs, max_length)
        figures["held-out preference accuracy before"] = accuracy(base_m).label()
        figures["held-out preference accuracy after"] = accuracy(tuned_m).label()
        figures["held-out implicit-reward accuracy"] = implicit_accuracy(base_m, tuned_m).label()
        examples = sample_answers(tuned, tuned_tok, held_prompts[0], 3, 24, seed + 11)
        figures["tuned examples (first held-out prompt)"] = " | ".join(repr(s.text) for s in examples)
        del base, tuned
        print(report(figures, final=False), file=sys.stderr, flush=True)   # progress, not the report

        if timing_steps:
            clock_full = StepClock()
            start = time.perf_counter()
            with closing(storage.open_database(root / "votes.db")) as db:
                train_dpo(TrainRequest(base=MODEL, name="smol-the-full", models_dir=root / "models",
                                       method="full", filters=filters, hyper=DPOHyperparameters(
                                           max_steps=timing_steps, batch_size=batch_size, max_length=max_length,
                                           seed=seed), held_out_fraction=0.0),
                          ctx.catalog, db, progress=clock_full)
            full_cpu, full_wall = clock_full.per_step()
            figures["full fine-tuning: CPU s per step"] = full_cpu
            figures["full fine-tuning: wall s per step"] = full_wall
            figures["full / LoRA CPU per step"] = full_cpu / lora_cpu
        ctx.cache.clear()
    figures["total wall s"] = time.perf_counter() - t_all
    figures["load average at end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return figures


def report(f: dict, final: bool = True) -> str:
    """The figures one per line; the final report ends with the target and whether it is met."""
    lines = "\n".join(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}" for k, v in f.items())
    if not final:
        return "-- so far --\n" + lines
    return lines + ("\ntarget: the rate rises with a 95% interval of the difference above zero -> "
                    + ("MET" if f.get("effect excludes zero (both intervals)") else "NOT MET"))


QUICK = dict(train_subjects=8, held_subjects=4, per_subject=2, samples=4, per_prompt=2, answer_tokens=12,
             eval_samples=4, epochs=1.0, timing_steps=3)

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few prompts, one short epoch")
    parser.add_argument("--workdir", help="keep the vote databases here and reuse them on a re-run")
    args = parser.parse_args()
    print(machine_info())
    print(report(main(**(QUICK if args.quick else {}), workdir=args.workdir)))
