"""Judges against people: agreement, kappa, confusion and swap consistency read from the database.

People's side is `counted_votes` (one judgement per pair, forgotten rows left out); the judge's
side is `judge_pair_verdicts` under the chosen policy for inconsistent pairs. A category is the
prompting preset's family of the battle's left answer ("other" when unknown).
"""
from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from storage.judge_verdicts import pair_verdicts

from playground.judge.agreement import CATEGORIES, bootstrap, confusion
from playground.prompting.presets import PresetLibrary


def _family(preset: str | None, presets: PresetLibrary | None) -> str:
    if presets is not None and preset in presets.prompting:
        return presets.prompting[preset].family
    return "other"


def swap_consistency(db: Database) -> dict[str, dict[str, Any]]:
    """Per judge: pairs judged in both orders, how many agree, and the rate."""
    out: dict[str, dict[str, Any]] = {}
    for judge, pairs, consistent, unparseable in db.execute(
            "SELECT judge, count(*), sum(consistent), sum(ab_verdict = 'unparseable') + sum(ba_verdict = "
            "'unparseable') FROM judge_pair_verdicts GROUP BY judge ORDER BY judge"):
        out[judge] = {"pairs": pairs, "consistent": consistent or 0,
                      "rate": (consistent or 0) / pairs if pairs else None, "unparseable_orders": unparseable or 0}
    for judge, orders, unparseable in db.execute(
            "SELECT judge, count(*), sum(verdict = 'unparseable') FROM judge_verdicts GROUP BY judge"):
        out.setdefault(judge, {"pairs": 0, "consistent": 0, "rate": None})
        out[judge].update(orders=orders, unparseable_orders=unparseable or 0)
    return out


def judge_report(db: Database, presets: PresetLibrary | None = None, inconsistent: str = "tie",
                 rounds: int = 1000, seed: int = 0) -> dict[str, Any]:
    """One entry per judge: n battles judged by both, agreement and kappa with 95 % intervals,
    the confusion table (rows: people, columns: judge), the same per category, swap consistency."""
    people = {b: (w, p) for b, w, p in db.execute(
        "SELECT v.battle_id, v.winner, g.preset FROM counted_votes v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations g ON g.id = b.left_generation_id")}
    swaps = swap_consistency(db)
    judges: dict[str, dict[str, Any]] = {}
    for judge in sorted(swaps):
        pairs = [r for r in pair_verdicts(db, judge, inconsistent) if r["battle_id"] in people]
        pairs = [r for r in pairs if r["counted"] in CATEGORIES]
        human = [people[r["battle_id"]][0] for r in pairs]
        model = [r["counted"] for r in pairs]
        entry: dict[str, Any] = {"swap": swaps[judge], **_stats(human, model, rounds, seed)}
        by_family: dict[str, tuple[list[str], list[str]]] = {}
        for r, h, m in zip(pairs, human, model, strict=True):
            fam = _family(people[r["battle_id"]][1], presets)
            by_family.setdefault(fam, ([], []))
            by_family[fam][0].append(h)
            by_family[fam][1].append(m)
        entry["categories"] = {f: _stats(h, m, rounds, seed) for f, (h, m) in sorted(by_family.items())}
        judges[judge] = entry
    return {"inconsistent_counts_as": inconsistent, "categories": list(CATEGORIES), "judges": judges}


def _stats(human: list[str], model: list[str], rounds: int, seed: int) -> dict[str, Any]:
    rate, kappa = bootstrap(human, model, rounds=rounds, seed=seed)
    return {"n": len(human), "agreement": rate.to_dict(), "kappa": kappa.to_dict(),
            "confusion": confusion(human, model)}


def format_report(report: dict[str, Any]) -> str:
    """The report as plain text for the terminal."""
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    def ci(d: dict) -> str:
        return f"{num(d['value'])} [{num(d['low'])}, {num(d['high'])}]"

    lines = [f"inconsistent pairs count as: {report['inconsistent_counts_as']}"]
    if not report["judges"]:
        lines.append("no judge verdicts yet: run python app.py judge --judge MODEL")
    for judge, e in report["judges"].items():
        s = e["swap"]
        lines += [f"\n{judge}",
                  f"  swap consistency: {s.get('consistent', 0)}/{s.get('pairs', 0)} pairs = {num(s.get('rate'))}; "
                  f"unparseable orders: {s.get('unparseable_orders', 0)}/{s.get('orders', 0)}",
                  f"  battles judged by people and judge: {e['n']}",
                  f"  agreement {ci(e['agreement'])}   Cohen's kappa {ci(e['kappa'])}   (95 % bootstrap)",
                  "  confusion (rows people, columns judge): " + " ".join(f"{c:>8}" for c in report["categories"])]
        for cat, row in zip(report["categories"], e["confusion"], strict=True):
            lines.append(f"  {cat:>38}: " + " ".join(f"{v:>8}" for v in row))
        for fam, c in e["categories"].items():
            lines.append(f"  {fam}: n={c['n']} agreement {ci(c['agreement'])} kappa {ci(c['kappa'])}")
    return "\n".join(lines)
