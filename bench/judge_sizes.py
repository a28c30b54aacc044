"""Judges of three sizes on the same Arena battles: swap consistency, position bias, and agreement
with the known answer.

Stage `battles`: GSM8K test items (the last N of the split, so none of the ladder's first items)
are asked in the Arena through its real handlers (`arena_new_round`, `arena_send`, `arena_vote`
of playground/ui/arena_tab.py; pool Qwen2.5-Coder-0.5B-Instruct vs SmolLM2-135M-Instruct, models
only, zero-shot, the Arena's default sampling). Each battle's vote stands in for a person and
is read off the gold answer (lm-evaluation-harness flexible-extract on each answer): the side
that is right when only one is, `tie` when both are, `both_bad` when neither is.

Stage `judge --model M`: `playground.judge.runner.judge_battles` with the general (MT-Bench)
prompt, both orders, greedy; resumable (stored orders are skipped), so it can be stopped at any
time and the report counts what is stored.

Stage `report`: per judge, from the stored raw outputs re-parsed by the app's parser: orders
judged, unparseable orders, swap consistency (pairs whose two orders give the same side, over
pairs judged in both orders), position bias (share of decisive order verdicts that chose the
answer shown first, 0.5 = none), and agreement with the known answer on battles where exactly
one side is right; each with its 95 % Wilson interval and n.

    nice -n 5 python bench/judge_sizes.py battles --db /tmp/js.db --n 30
    nice -n 5 python bench/judge_sizes.py judge --db /tmp/js.db --model qwen2.5-coder-1.5b-instruct
    python bench/judge_sizes.py report --db /tmp/js.db
"""
from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from contextlib import closing
from pathlib import Path

from common import REPO, machine_info  # noqa: F401  (puts the repo on sys.path)

from playground.arena import Round, latest_answer
from playground.config import Settings
from playground.context import AppContext
from playground.judge.prompts import label_to_side, parse_verdict
from playground.lab.gsm8k import flexible_extract, harness_match
from playground.stats import wilson_interval
from playground.ui import arena_tab as at
from storage import open_database

CONTESTANTS = ("qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct")
GSM8K = REPO / "presets" / "tasks" / "gsm8k-test.jsonl"


def gold_items(n: int) -> list[tuple[str, str]]:
    """The last n GSM8K test items: (question, gold number)."""
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [(r["question"], r["answer"].split("####")[-1].strip()) for r in rows[-n:]]


def right(answer: str, gold: str) -> bool:
    return harness_match(flexible_extract(answer), gold)


def make_battles(ctx: AppContext, n: int, max_tokens: int, seed: int) -> None:
    """Ask each question in a fresh Arena round; vote from the gold answer."""
    rng = random.Random(seed)
    choice = at.PoolChoice(models=CONTESTANTS, max_new_tokens=max_tokens)
    for i, (question, gold) in enumerate(gold_items(n)):
        fresh, _ = at.arena_new_round(ctx, at.new_arena_state(), choice, rng=rng)
        state = fresh
        for state, _view in at.arena_send(ctx, fresh, question, choice, rng=rng):   # noqa: B007 (the last update)
            pass
        rnd = Round.from_dict(state["round"])
        answers = {s: latest_answer(rnd.side(s)) or "" for s in ("left", "right")}
        ok = {s: right(a, gold) for s, a in answers.items()}
        winner = ("tie" if all(ok.values()) else "both_bad" if not any(ok.values())
                  else "left" if ok["left"] else "right")
        state, view = at.arena_vote(ctx, state, winner, note=f"gold {gold}")
        who = {s: rnd.side(s).contestant.model_id.split("-")[0] for s in ("left", "right")}
        print(f"battle {i + 1}/{n}: left {who['left']} {'right' if ok['left'] else 'wrong'}, right {who['right']} "
              f"{'right' if ok['right'] else 'wrong'} -> {winner} [load {machine_info()['load average']}]",
              flush=True)


def _rate(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "low": low, "high": high}


def judge_stats(db, judge: str, lenient: bool) -> dict:
    """One judge's figures, its stored raw outputs re-parsed (strict, or with the lenient variant)."""
    gold = {b: w for b, w in db.execute("SELECT battle_id, winner FROM counted_votes")}
    bigger = {b: "left" if m == CONTESTANTS[0] else "right" for b, m in db.execute(
        "SELECT b.id, g.model_id FROM battles b JOIN generations g ON g.id = b.left_generation_id")}
    orders: dict[int, dict[str, str]] = {}
    labels: list[str] = []
    finish = Counter()
    for battle, order, raw, reason in db.execute(
            "SELECT battle_id, judge_order, raw_output, finish_reason FROM judge_verdicts WHERE judge = ?", [judge]):
        label = parse_verdict(raw, True, variants=lenient)
        labels.append(label)
        finish[reason] += 1
        orders.setdefault(battle, {})[order] = label_to_side(label, order)
    pairs = {b: o for b, o in orders.items() if len(o) == 2}
    consistent = sum(o["AB"] == o["BA"] and o["AB"] != "unparseable" for o in pairs.values())
    decisive = [x for x in labels if x in ("A", "B")]
    onesided = [b for b in pairs if gold.get(b) in ("left", "right")]
    agree = sum(pairs[b]["AB"] == pairs[b]["BA"] == gold[b] for b in onesided)
    decided = [b for b, o in pairs.items() if o["AB"] == o["BA"] and o["AB"] in ("left", "right")]
    return {"orders": len(labels), "unparseable": _rate(labels.count("unparseable"), len(labels)),
            "swap_consistency": _rate(consistent, len(pairs)),
            "first_position_share": _rate(decisive.count("A"), len(decisive)),
            "labels": dict(Counter(labels)), "_labels": labels, "cut_by_token_limit": finish.get("length", 0),
            "picks_the_right_answer": _rate(agree, len(onesided)),
            "prefers_the_0.5b": _rate(sum(pairs[b]["AB"] == bigger[b] for b in decided), len(decided))}


def report(db_path: Path) -> dict:
    with closing(open_database(db_path)) as db:
        judges = [r[0] for r in db.execute("SELECT DISTINCT judge FROM judge_verdicts ORDER BY judge")]
        gold = Counter(r[0] for r in db.execute("SELECT winner FROM counted_votes"))
        out = {"battles_by_known_answer": dict(gold), "judges": {}}
        for judge in judges:
            strict, lenient = judge_stats(db, judge, False), judge_stats(db, judge, True)
            changed = sum(a != b for a, b in zip(strict.pop("_labels"), lenient.pop("_labels"), strict=True))
            out["judges"][judge] = {"strict": strict, "with_variants": lenient, "orders_the_variants_change": changed}
    return out


def markdown(out: dict) -> str:
    """The report as the table in docs/benchmarks.md: one row per judge (the app's parser)."""
    def cell(r: dict) -> str:
        if not r["n"]:
            return "– (n 0)"
        return f"{r['k']}/{r['n']} = {100 * r['rate']:.0f} % [{100 * r['low']:.0f}, {100 * r['high']:.0f}]"

    rows = ["| judge | orders | unparseable | swap consistency (pairs) | answer shown first chosen (decisive orders) "
            "| picks the right answer (battles with one right side) | consistent winner is the 0.5B "
            "| orders the [Assistant A] variants would change |", "|---" * 8 + "|"]
    for judge, entry in out["judges"].items():
        f = entry["strict"]
        rows.append(f"| {judge.split(':', 1)[1].split('@')[0]} | {f['orders']} | {cell(f['unparseable'])} | "
                    f"{cell(f['swap_consistency'])} | {cell(f['first_position_share'])} | "
                    f"{cell(f['picks_the_right_answer'])} | {cell(f['prefers_the_0.5b'])} | "
                    f"{entry['orders_the_variants_change']} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=("battles", "judge", "report"))
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--n", type=int, default=30, help="battles (stage battles)")
    parser.add_argument("--answer-tokens", type=int, default=160)
    parser.add_argument("--model", help="the judge's catalog id (stage judge)")
    parser.add_argument("--judge-tokens", type=int, default=160)
    parser.add_argument("--limit", type=int, default=None, help="judge at most this many battles (oldest first)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.stage == "report":
        out = report(args.db)
        print(json.dumps(out, indent=1))
        print(markdown(out))
        return 0
    settings = Settings(db_path=args.db, **({"threads": args.threads} if args.threads else {}))
    ctx = AppContext.create(settings)
    if args.stage == "battles":
        make_battles(ctx, args.n, args.answer_tokens, args.seed)
        return 0
    from playground.judge.runner import judge_battles

    def progress(i: int, total: int, text: str) -> None:
        print(f"{args.model} {i}/{total} {text} [load {machine_info()['load average']}]", flush=True)

    result = judge_battles(ctx, args.db, args.model, "general", max_tokens=args.judge_tokens, progress=progress,
                          limit=args.limit)
    print(json.dumps(result.to_dict(), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
