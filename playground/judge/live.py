"""A judge model on one battle a person has just voted on (the Arena's "judge this battle too").

Only after the vote: the person must not see the judge's opinion first, so `judge_voted_battle`
refuses a round that is not voted (the tab hides the control until then; this is the server-side
check). The judge runs through the usual runner (`judge_battles` with `battle_ids`), both orders,
so its verdicts and, when both orders are in, its vote (voter `judge:<model>@<prompt>`, apart from
people's) are stored as any batch run stores them; a second click re-uses what is stored.
"""
from __future__ import annotations

from contextlib import closing
from dataclasses import dataclass, replace

from storage import open_database
from storage.judge_verdicts import judge_vote, pair_verdicts

from playground.arena import ArenaError, Round
from playground.context import AppContext
from playground.judge.runner import JudgeRunReport, judge_battles


@dataclass(frozen=True)
class BattleJudgement:
    """What one judge said about one voted battle, next to what the person said."""

    judge: str
    battle_id: int
    person: str                    # the person's winner: left | right | tie | both_bad
    ab: str | None = None          # verdict with the left answer shown as A (None: not judged)
    ba: str | None = None          # verdict with the left answer shown as B
    verdict: str | None = None     # both orders combined: a side, tie, both_bad, inconsistent, unparseable
    vote: str | None = None        # the judge's stored vote (None: none, e.g. an unparseable order)
    problem: str = ""              # why there is no verdict (no reference answer, generation failed)


def judge_voted_battle(ctx: AppContext, rnd: Round | None, model_id: str, prompt_id: str = "general",
                       max_tokens: int | None = None, inconsistent: str = "tie") -> BattleJudgement:
    """Judge the round's voted battle with catalog model `model_id` in both orders; refused
    (ArenaError) unless the person has voted on it."""
    if rnd is None or rnd.status != "voted" or not rnd.vote or not rnd.vote.get("battle_id"):
        raise ArenaError("vote first: a judge's opinion is shown only after yours")
    battle_id = int(rnd.vote["battle_id"])
    report = judge_battles(ctx, ctx.settings.db_path, model_id, prompt_id, max_tokens=max_tokens,
                           inconsistent=inconsistent, battle_ids=[battle_id])
    with closing(open_database(ctx.settings.db_path)) as db:
        pairs = pair_verdicts(db, report.judge, battle_ids=[battle_id])
        vote = judge_vote(db, battle_id, report.judge)
    judgement = BattleJudgement(judge=report.judge, battle_id=battle_id, person=rnd.vote["winner"],
                                vote=vote["winner"] if vote else None, problem=_problem(report))
    if pairs:
        p = pairs[0]
        judgement = replace(judgement, ab=p["ab_verdict"], ba=p["ba_verdict"], verdict=p["verdict"])
    return judgement


def _problem(report: JudgeRunReport) -> str:
    if report.no_reference:
        return "this question has no known answer, which the reference prompt needs: pick the general prompt"
    if report.failed:
        return f"{report.failed} of the two orders failed to generate; press the button again to retry"
    return ""
