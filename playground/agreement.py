"""How well annotators judge: per-annotator statistics and inter-annotator agreement.

Pure functions over votes given as (battle_id, voter, winner) triples (the statistics are
playground/stats.py's); `team_report` reads them
from a database (`counted_votes`: nothing excluded or forgotten). The categories are the four
verdicts (left, right, tie, both_bad), so "agree" means the same verdict.

- Per annotator: votes, tie rate, both-bad rate, left-side rate (left / (left + right): 0.5 is no
  position bias), and agreement with the majority of the OTHER annotators on battles they share
  (battles where the others split evenly are left out of that rate).
- Agreement on overlapping battles (judged by two or more annotators): Cohen's kappa when exactly
  two annotators overlap, else Fleiss' kappa in its form for a varying number of raters per item
  (P_i = (sum_j n_ij^2 - n_i) / (n_i (n_i - 1)), chance from the pooled verdict shares). Cohen's
  kappa is also given for every pair of annotators that share battles.
- Intervals: percentile bootstrap over battles (resampling whole battles keeps each battle's
  votes together), 1000 resamples, seeded, so a report is reproducible.
"""
from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlite_utils import Database

from playground.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE, fleiss_kappa, kappa_codes, percentile_bootstrap
from playground.verdicts import WINNERS

Vote = tuple[int, str, str]     # (battle_id, voter, winner)


# ---------------------------------------------------------------- from votes


def by_battle(votes: Iterable[Vote]) -> dict[int, dict[str, str]]:
    """{battle_id: {voter: winner}}; a voter's first vote on a battle wins (storage stores one)."""
    battles: dict[int, dict[str, str]] = defaultdict(dict)
    for battle_id, voter, winner in votes:
        battles[int(battle_id)].setdefault(str(voter), str(winner))
    return dict(battles)


def overlapping(battles: dict[int, dict[str, str]]) -> dict[int, dict[str, str]]:
    """The battles judged by two or more annotators."""
    return {b: judged for b, judged in battles.items() if len(judged) >= 2}


@dataclass(frozen=True)
class Kappa:
    """One agreement figure with its bootstrap interval."""

    method: str              # "cohen" or "fleiss"
    kappa: float
    low: float
    high: float
    n_battles: int
    annotators: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def team_kappa(votes: Iterable[Vote], *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Kappa | None:
    """Agreement on the overlapping battles: Cohen for two annotators, Fleiss for more; None if none overlap."""
    shared = overlapping(by_battle(votes))
    if not shared:
        return None
    annotators = tuple(sorted({v for judged in shared.values() for v in judged}))
    if len(annotators) == 2:
        return pair_kappa(shared, *annotators, seed=seed, resamples=resamples)
    index = {w: i for i, w in enumerate(WINNERS)}
    counts = np.zeros((len(shared), len(WINNERS)))
    for row, judged in enumerate(shared.values()):
        for winner in judged.values():
            counts[row, index[winner]] += 1
    low, high = percentile_bootstrap(lambda idx: fleiss_kappa(counts[idx]), len(counts), seed=seed, resamples=resamples)
    return Kappa("fleiss", fleiss_kappa(counts), low, high, len(counts), annotators)


def pair_kappa(battles: dict[int, dict[str, str]], first: str, second: str, *, seed: int = 0,
               resamples: int = BOOTSTRAP_RESAMPLES) -> Kappa | None:
    """Cohen's kappa of two annotators on the battles both judged; None when they share none."""
    both = [(j[first], j[second]) for j in battles.values() if first in j and second in j]
    if not both:
        return None
    index = {w: i for i, w in enumerate(WINNERS)}
    a = np.array([index[x] for x, _ in both], dtype=np.int64)
    b = np.array([index[y] for _, y in both], dtype=np.int64)
    k = len(WINNERS)
    low, high = percentile_bootstrap(lambda idx: kappa_codes(a[idx], b[idx], k), len(both), seed=seed,
                                     resamples=resamples)
    return Kappa("cohen", kappa_codes(a, b, k), low, high, len(both), (first, second))


@dataclass(frozen=True)
class AnnotatorStats:
    """One annotator's habits and how often they side with the others."""

    voter: str
    votes: int
    tie_rate: float
    both_bad_rate: float
    left_rate: float                 # left / (left + right); NaN with no decisive vote
    shared_battles: int              # battles someone else judged too
    majority_battles: int            # of those, where the others had a single majority verdict
    agreement_with_majority: float   # share of majority_battles where this annotator gave it

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def annotator_stats(votes: Iterable[Vote]) -> list[AnnotatorStats]:
    """Per-annotator statistics, most votes first."""
    battles = by_battle(votes)
    verdicts: dict[str, Counter[str]] = defaultdict(Counter)
    shared: Counter[str] = Counter()
    majority: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for judged in battles.values():
        for voter, winner in judged.items():
            verdicts[voter][winner] += 1
            others = Counter(w for v, w in judged.items() if v != voter)
            if not others:
                continue
            shared[voter] += 1
            (top, n_top), *rest = others.most_common()
            if rest and rest[0][1] == n_top:
                continue                     # the others split evenly: no majority to agree with
            majority[voter] += 1
            agreed[voter] += winner == top
    stats = []
    for voter, c in verdicts.items():
        total, decisive = sum(c.values()), c["left"] + c["right"]
        stats.append(AnnotatorStats(
            voter=voter, votes=total, tie_rate=c["tie"] / total, both_bad_rate=c["both_bad"] / total,
            left_rate=c["left"] / decisive if decisive else math.nan, shared_battles=shared[voter],
            majority_battles=majority[voter],
            agreement_with_majority=agreed[voter] / majority[voter] if majority[voter] else math.nan))
    return sorted(stats, key=lambda s: (-s.votes, s.voter))


# ---------------------------------------------------------------- from the database


def counted_votes(db: Database) -> list[Vote]:
    """Every counted vote as (battle_id, voter, winner), in vote order."""
    return [(int(b), str(v), str(w)) for b, v, w in
            db.execute("SELECT battle_id, voter, winner FROM counted_votes ORDER BY id")]


def team_report(db: Database, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """Per-annotator statistics and agreement, as a JSON-ready dict (the CLI, the admin view, exports)."""
    votes = counted_votes(db)
    battles = by_battle(votes)
    shared = overlapping(battles)
    annotators = sorted({v for judged in shared.values() for v in judged})
    pairs = [pair_kappa(shared, a, b, seed=seed, resamples=resamples) for a, b in itertools.combinations(annotators, 2)]
    overall = team_kappa(votes, seed=seed, resamples=resamples)
    return {
        "votes": len(votes), "battles": len(battles), "overlapping_battles": len(shared),
        "annotators": [s.to_dict() for s in annotator_stats(votes)],
        "agreement": overall.to_dict() if overall else None,
        "pairwise_cohen": [p.to_dict() for p in pairs if p is not None],
        "method": {"categories": list(WINNERS), "interval": f"{CONFIDENCE:.0%} percentile bootstrap over battles, "
                   f"{resamples} resamples, seed {seed}",
                   "left_rate": "left / (left + right) votes; 0.5 = no position bias",
                   "agreement_with_majority": "share of shared battles (others not split evenly) where the "
                                              "annotator gave the other annotators' majority verdict"},
    }


def report_markdown(report: dict[str, Any]) -> str:
    """The report as a short Markdown block (the admin view in My votes and `team report`)."""
    def pct(x: float | None) -> str:
        return "–" if x is None else f"{x:.0%}"

    lines = [f"**Team quality:** {report['votes']} counted votes on {report['battles']} battles; "
             f"{report['overlapping_battles']} judged by two or more annotators."]
    agreement = report["agreement"]
    if agreement and agreement["kappa"] is not None:
        interval = ("" if agreement["low"] is None else f" (95% CI {agreement['low']:.2f} to {agreement['high']:.2f})")
        name = "Cohen's" if agreement["method"] == "cohen" else "Fleiss'"
        lines.append(f"Agreement ({name} kappa, {agreement['n_battles']} battles, {len(agreement['annotators'])} annotators): "
                     f"**{agreement['kappa']:.2f}**{interval}.")
    else:
        lines.append("Agreement: no battle was judged by two annotators yet (assign overlap to measure it).")
    lines += ["", "| annotator | votes | tie | both bad | left side | shared | agrees with majority |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for s in report["annotators"]:
        lines.append(f"| {s['voter']} | {s['votes']} | {pct(s['tie_rate'])} | {pct(s['both_bad_rate'])} | "
                     f"{pct(s['left_rate'])} | {s['shared_battles']} | {pct(s['agreement_with_majority'])} |")
    return "\n".join(lines)
