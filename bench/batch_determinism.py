"""Does batching sequences in one llama.cpp context change greedy answers? (raw low-level API)

The reference is a solo run the way the app's slots decode: its own context, the prompt minus its
last token in chunks of 64 at fixed positions, the last token alone, then one token per step.
Each batched scenario runs the same prompts as sequences of one context (n_seq_max = width) and
compares every sequence's greedy tokens with its solo run:

- together: every prompt prefilled (same chunks), then one decode per step carrying one token
  of each sequence;
- staggered: sequence i joins after 7*i steps (its prefill chunks in their own decode calls
  between the others' steps) and leaves after its own number of tokens;
- mixed: as staggered, but a joining sequence's prefill chunk rides in the same decode call as
  the other sequences' tokens.

`python bench/batch_determinism.py` prints one line per (width, scenario) and the verdict.
"""
from __future__ import annotations

import argparse
import ctypes
import time

import numpy as np

from common import bundled_gguf  # noqa: F401  (puts the repo on sys.path)

CHUNK = 64
QUESTIONS = (
    "What is the capital of France?",
    "Name three primary colours and say why they are called primary.",
    "A baker makes 40 rolls and sells 17. How many rolls are left? Think step by step.",
    "Write a short poem about the sea.",
    "Explain what a prime number is, with two examples, in a few sentences.",
    "List the planets of the solar system in order from the sun.",
    "Translate 'good morning' into Spanish, French and German.",
    "Why is the sky blue?",
)


def chat(question: str, shots: int = 0) -> str:
    turns = "".join(f"<|im_start|>user\nWhat is {i} + {i}?<|im_end|>\n<|im_start|>assistant\n{2 * i}<|im_end|>\n"
                    for i in range(1, shots + 1))
    return (f"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"{turns}<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n")


class Runner:
    def __init__(self, threads: int = 1, model: str | None = None) -> None:
        from llama_cpp import Llama

        self.llm = Llama(model_path=model or str(bundled_gguf()), n_ctx=2048, n_threads=threads,
                         n_threads_batch=threads, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        self.eog = lambda t: bool(__import__("llama_cpp").llama_vocab_is_eog(self.llm._model.vocab, t))

    def context(self, width: int):
        import llama_cpp
        from llama_cpp._internals import LlamaBatch, LlamaContext

        params = llama_cpp.llama_context_params()
        ctypes.pointer(params)[0] = self.llm.context_params   # a copy: same flash-attention, types, threads
        params.n_seq_max = width
        params.n_ctx = 2048 * width
        params.kv_unified = False
        ctx = LlamaContext(model=self.llm._model, params=params, verbose=False)
        batch = LlamaBatch(n_tokens=max(512, CHUNK + width), embd=0, n_seq_max=1, verbose=False)
        return ctx, batch

    def tokens(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=True)

    def argmax(self, ctx, i: int, seen: list | None = None) -> int:
        """The greedy token of logits row i; `seen` collects a copy of the row (for the logit check)."""
        row = np.ctypeslib.as_array(ctx.get_logits_ith(i), shape=(self.n_vocab,))
        if seen is not None:
            seen.append(row.copy())
        return int(row.argmax())

    @staticmethod
    def fill(batch, items: list[tuple[int, int, int, bool]]) -> None:
        """items: (token, pos, seq, wants_logits)."""
        b = batch.batch
        b.n_tokens = len(items)
        for i, (tok, pos, seq, lg) in enumerate(items):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, lg
            b.seq_id[i][0] = seq

    def prefill_items(self, toks: list[int], seq: int) -> list[list[tuple[int, int, int, bool]]]:
        body = toks[:-1]
        return [[(t, p, seq, False) for p, t in enumerate(body[s: s + CHUNK], start=s)]
                for s in range(0, len(body), CHUNK)]

    def solo(self, toks: list[int], n_new: int, logits: list | None = None) -> list[int]:
        ctx, batch = self.llm._ctx, self.llm._batch
        ctx.kv_cache_clear()
        for items in self.prefill_items(toks, 0):
            self.fill(batch, items)
            ctx.decode(batch)
        out, tok, pos = [], toks[-1], len(toks) - 1
        while len(out) < n_new:
            self.fill(batch, [(tok, pos, 0, True)])
            ctx.decode(batch)
            tok = self.argmax(ctx, 0, logits)
            if self.eog(tok):
                break
            out.append(tok)
            pos += 1
        return out

    def batched(self, ctx, batch, prompts: list[list[int]], n_new: list[int], joins: list[int],
                mixed: bool, logits: list[list] | None = None) -> list[list[int]]:
        ctx.kv_cache_clear()
        width = len(prompts)
        state = [None] * width          # (next token, pos) once decoding
        pending = [self.prefill_items(p, s) for s, p in enumerate(prompts)]
        outs: list[list[int]] = [[] for _ in range(width)]
        done = [False] * width
        step = 0
        while not all(done):
            items: list[tuple[int, int, int, bool]] = []
            extra: list[list[tuple[int, int, int, bool]]] = []
            for s in range(width):
                if done[s] or step < joins[s]:
                    continue
                if state[s] is None:
                    if pending[s]:
                        chunk = pending[s].pop(0)
                        (items.extend(chunk) if mixed else extra.append(chunk))
                        continue
                    state[s] = (prompts[s][-1], len(prompts[s]) - 1)
            for chunk in extra:
                self.fill(batch, chunk)
                ctx.decode(batch)
            rows = []
            for s in range(width):
                if state[s] is not None and not done[s]:
                    rows.append((s, len(items)))
                    items.append((state[s][0], state[s][1], s, True))
            if items:
                self.fill(batch, items)
                ctx.decode(batch)
            for s, row in rows:
                tok = self.argmax(ctx, row, None if logits is None else logits[s])
                if self.eog(tok) or len(outs[s]) + 1 > n_new[s]:
                    done[s] = True
                    ctx.kv_cache_seq_rm(s, -1, -1)      # leaves: its cells are freed for the others
                    continue
                outs[s].append(tok)
                state[s] = (tok, state[s][1] + 1)
                if len(outs[s]) >= n_new[s]:
                    done[s] = True
                    ctx.kv_cache_seq_rm(s, -1, -1)
            step += 1
        return outs


def default_models() -> list[tuple[str, str]]:
    """The bundled SmolLM2 as shipped (Q4_1) and the app's default model, its F16 copy (built into
    the app's cache if missing): the two weight types use different llama.cpp kernels."""
    from playground.config import default_cache_dir
    from playground.models.f16 import ensure_f16, f16_build_for

    source = bundled_gguf()
    return [("bundled Q4_1", str(source)), ("default F16", str(ensure_f16(f16_build_for(source, default_cache_dir()))))]


def main(widths: tuple[int, ...] = (2, 3, 4, 6), n_new: int = 64, model: str | None = None,
         threads: int = 1) -> dict:
    """Every (width, scenario) on each model file; the target: every batched sequence equals its solo run."""
    models = [(model, model)] if model else default_models()
    figures: dict = {"n_new": n_new}
    for name, path in models:
        print(f"== {name}: {path}", flush=True)
        one = check_model(path, widths, n_new, threads)
        figures.update({f"{name}: {key}": value for key, value in one.items()})
    figures["all_identical"] = all(v for k, v in figures.items() if k.endswith("all_identical"))
    print(f"target: greedy answers identical to solo runs for every width and scenario, on every model file: "
          f"{'met' if figures['all_identical'] else 'NOT met'}")
    return figures


def check_model(model: str, widths: tuple[int, ...], n_new: int, threads: int) -> dict:
    r = Runner(threads, model)
    prompts = [r.tokens(chat(q, shots=(i % 3) * 4)) for i, q in enumerate(QUESTIONS)]
    t0 = time.perf_counter()
    solo_logits: list[list] = [[] for _ in prompts]
    solo = [r.solo(p, n_new, solo_logits[i]) for i, p in enumerate(prompts)]
    solo_s = time.perf_counter() - t0
    figures: dict = {"n_new": n_new, "prompt_tokens": [len(p) for p in prompts], "solo_s": round(solo_s, 2)}
    all_same = all_exact = True
    for width in widths:
        ctx, batch = r.context(width)
        for scenario in ("together", "staggered", "mixed"):
            idx = [(width + j) % len(prompts) for j in range(width)]   # a different mix for each width
            lens = [n_new] * width if scenario == "together" else [n_new - 9 * (j % 4) for j in range(width)]
            joins = [0] * width if scenario == "together" else [7 * j for j in range(width)]
            t0 = time.perf_counter()
            seen: list[list] = [[] for _ in range(width)]
            outs = r.batched(ctx, batch, [prompts[i] for i in idx], lens, joins, mixed=(scenario == "mixed"),
                             logits=seen)
            took = time.perf_counter() - t0
            same = [outs[j] == solo[i][: lens[j]] for j, i in enumerate(idx)]
            all_same &= all(same)
            first_diff = [next((k for k, (a, b) in enumerate(zip(outs[j], solo[i], strict=False)) if a != b), None)
                          for j, i in enumerate(idx)]
            # Seeded sampling needs more than the same argmax: the same logits, bit for bit.
            drift = max((float(np.abs(a - b).max()) for j, i in enumerate(idx)
                         for a, b in zip(seen[j], solo_logits[i], strict=False)), default=0.0)
            all_exact &= drift == 0.0
            print(f"width {width} {scenario:9s}: identical to solo {sum(same)}/{width}  "
                  f"(first differing token per sequence: {first_diff}; max |logit - solo logit| {drift:.2g})  "
                  f"{took:.2f} s", flush=True)
            figures[f"w{width}_{scenario}_identical"] = f"{sum(same)}/{width}"
            figures[f"w{width}_{scenario}_max_logit_drift"] = drift
        batch.close()
        ctx.close()
    figures["all_identical"] = all_same
    figures["all_logits_exact"] = all_exact
    print("logits:", "bit for bit the solo run's in every scenario" if all_exact else "some scenario CHANGED logits")
    print("verdict:", "every batched sequence equals its solo run" if all_same else "batching CHANGED answers")
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-new", type=int, default=64)
    parser.add_argument("--widths", default="2,3,4,6")
    parser.add_argument("--model", default=None, help="a GGUF file with a ChatML template (default: the bundled "
                        "SmolLM2); other weight types use other llama.cpp kernels: check each")
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args()
    main(tuple(int(w) for w in a.widths.split(",")), a.n_new, a.model, a.threads)
