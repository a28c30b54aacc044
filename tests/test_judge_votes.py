"""A judge model's verdicts as votes, kept apart from people's, on a real SQLite file:
the fold (consistent -> its verdict, inconsistent -> a tie or nothing, unparseable -> never), the
trigger that ties a judge's vote to its verdicts, people-only by default in the leaderboard (CLI,
tab), the exports (DPO, KTO, battles, leaderboard) and the team report; judges or both on request,
with the judge's rows counted in the sidecar."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

import storage
from playground.agreement import team_report
from playground.export import PreferenceFilters, export_arena_battles, export_dpo, export_kto, export_leaderboard
from playground.leaderboard import BoardOptions, load_battles
from playground.ui import leaderboard_handlers as lt
from storage.judge_verdicts import fold_judge_votes, judge_identity, pair_verdicts, record_judge_verdict
from tests.test_leaderboard_tab import add_battle

REPO = Path(__file__).resolve().parent.parent
JUDGE = judge_identity("judge-model", "general")
# (person's vote, judge in order AB, judge in order BA): people say alpha > beta; the judge says beta
CASES = [("left", "right", "right"), ("left", "right", "right"), ("left", "right", "right"),
         ("left", "left", "right"), ("left", "unparseable", "right"), ("right", "right", "right")]


def judge_db(path: Path) -> Path:
    """Six alpha-vs-beta battles, each with a person's vote and a judge's verdicts in both orders."""
    with closing(storage.open_database(path)) as db:
        for k, (person, ab, ba) in enumerate(CASES):
            battle = add_battle(db, "alpha", "beta", person, question=f"question {k}")
            for order, verdict in (("AB", ab), ("BA", ba)):
                record_judge_verdict(db, battle_id=battle, judge=JUDGE, judge_model="judge-model", prompt_id="general",
                                     order=order, judge_prompt="prompt", raw_output=f"[[{verdict}]]",
                                     label=None, verdict=verdict)
    return path


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return judge_db(tmp_path / "judged.db")


def judge_votes(db_path: Path) -> list[tuple]:
    with closing(sqlite3.connect(db_path)) as con:
        return con.execute("SELECT battle_id, winner, session_id FROM votes WHERE voter = ? ORDER BY battle_id",
                           [JUDGE]).fetchall()


def test_fold_votes_consistent_verdicts_ties_inconsistent_never_unparseable_and_is_idempotent(db_path):
    with closing(storage.open_database(db_path)) as db:
        assert fold_judge_votes(db, JUDGE) == {"written": 5, "already": 0, "inconsistent_dropped": 0, "unparseable": 1}
        assert fold_judge_votes(db) == {"written": 0, "already": 5, "inconsistent_dropped": 0, "unparseable": 1}
    assert judge_votes(db_path) == [(1, "right", JUDGE), (2, "right", JUDGE), (3, "right", JUDGE), (4, "tie", JUDGE),
                                    (6, "right", JUDGE)]


def test_inconsistent_pairs_can_be_dropped_instead_of_tied(db_path):
    with closing(storage.open_database(db_path)) as db:
        counts = fold_judge_votes(db, JUDGE, inconsistent="drop")
        assert counts["written"] == 4 and counts["inconsistent_dropped"] == 1
        with pytest.raises(storage.StorageError, match="choose tie or drop"):
            fold_judge_votes(db, JUDGE, inconsistent="keep")
    assert 4 not in [b for b, *_ in judge_votes(db_path)]


def test_a_judge_vote_without_matching_verdicts_is_refused_by_the_database(db_path):
    """Any writer: a judge's vote must be what its two stored orders say."""
    with closing(storage.open_database(db_path)) as db:
        for battle, winner, voter in ((1, "left", JUDGE),                 # the judge said right in both orders
                                      (5, "right", JUDGE),                # an order was unparseable
                                      (4, "left", JUDGE),                 # inconsistent: only a tie
                                      (1, "right", judge_identity("other", "general"))):   # never judged it
            with pytest.raises(sqlite3.IntegrityError, match="judge.s vote must be its verdict"):
                storage.record_vote(db, battle_id=battle, winner=winner, session_id=voter, voter=voter)
        assert storage.record_vote(db, battle_id=4, winner="tie", session_id=JUDGE, voter=JUDGE).vote_id


def test_default_leaderboard_is_people_only_and_judges_appear_on_request(db_path):
    with closing(storage.open_database(db_path)) as db:
        before = {v: load_battles(db, voters=v) for v in ("people", "judges", "both")}
        fold_judge_votes(db)
        after = {v: load_battles(db, voters=v) for v in ("people", "judges", "both")}
        assert storage.count_votes(db) == 11
        assert db.execute("SELECT count(*) FROM counted_votes").fetchone()[0] == 6   # the view: people only
    assert len(before["people"]) == len(after["people"]) == 6
    assert list(after["people"].winner) == list(before["people"].winner)
    assert len(before["judges"]) == 0 and len(after["judges"]) == 5 and len(after["both"]) == 11
    judges = _cli(db_path, "leaderboard", "--json", "--rounds", "20", "--voters", "judges")
    both = _cli(db_path, "leaderboard", "--rounds", "20", "--voters", "both")
    assert list(after["people"].winner).count("left") == 5 and set(after["people"].left) == {"alpha"}  # people: alpha
    assert [r["contestant"] for r in json.loads(judges)][0] == "beta"      # the judge: beta won 4 of 5, one tie
    assert sum(r["battles"] for r in json.loads(judges)) == 10
    assert "11 battles" in both and "people's and judge models' votes" in both


def _cli(db_path: Path, *args: str) -> str:
    env = {"PLAYGROUND_DB": str(db_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "app.py", *args], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_judge_fold_writes_the_votes_once(db_path):
    first = json.loads(_cli(db_path, "judge", "fold", "--json"))
    with closing(storage.open_database(db_path)) as db:
        again = fold_judge_votes(db)
    assert (first["written"], again["written"], again["already"]) == (5, 0, 5)


def test_exports_take_people_by_default_and_judges_when_asked(db_path, tmp_path):
    with closing(storage.open_database(db_path)) as db:
        fold_judge_votes(db)
        people = export_dpo(db, tmp_path / "people.jsonl")
        judges = export_dpo(db, tmp_path / "judges.jsonl", PreferenceFilters(voters="judges"))
        both = export_kto(db, tmp_path / "both.jsonl", PreferenceFilters(voters="both"), dedupe=False)
        battles = export_arena_battles(db, tmp_path / "battles.json")
        all_battles = export_arena_battles(db, tmp_path / "all.json", voters="both")
        export_leaderboard(db, tmp_path / "board.md", BoardOptions(rounds=20, voters="judges"))
    assert (people.written, judges.written) == (6, 4)    # the judge's tie gives no pair
    summary = json.loads(people.summary_path.read_text())
    assert summary["voters"] == "people" and summary["rows_from_people"] == 6 and summary["rows_by_judge"] == {}
    assert "people's votes only" in summary["votes_used"]
    summary = json.loads(judges.summary_path.read_text())
    assert summary["rows_from_people"] == 0 and summary["rows_by_judge"] == {JUDGE: 4}
    chosen = [json.loads(line)["chosen"] for line in judges.path.read_text().splitlines()]
    assert len(chosen) == 4 and all(c.startswith("beta") for c in chosen)
    meta = [json.loads(line) for line in judges.meta_path.read_text().splitlines()]
    assert {m["voter"] for m in meta} == {JUDGE}
    summary = json.loads(both.summary_path.read_text())
    assert summary["rows_from_people"] == 12 and summary["rows_by_judge"] == {JUDGE: 8}
    assert battles.written == 6 and all_battles.written == 11
    judged = [r for r in json.loads((tmp_path / "all.json").read_text()) if r["judge"] == JUDGE]
    assert len(judged) == 5
    assert "judge models' votes only" in (tmp_path / "board.md").read_text()


def test_cli_exports_say_whose_votes(db_path, tmp_path):
    with closing(storage.open_database(db_path)) as db:
        fold_judge_votes(db)
    out = _cli(db_path, "export", "dpo", "--out", str(tmp_path / "d.jsonl"), "--voters", "judges")
    assert "wrote 4 DPO pairs" in out and "judge models' votes only" in out
    out = _cli(db_path, "export", "battles", "--out", str(tmp_path / "b.json"))
    assert "wrote 6 battles (people's votes only)" in out


def test_leaderboard_tab_chooses_people_judges_or_both(db_path):
    with closing(storage.open_database(db_path)) as db:
        fold_judge_votes(db)
    people = lt.leaderboard_view(db_path, lt.BoardFilters(rounds=20), heatmaps=False)
    judges = lt.leaderboard_view(db_path, lt.BoardFilters(rounds=20, voters="judges"), heatmaps=False)
    assert "from 6 battles" in people.message and "people's votes only" in people.message
    assert "from 5 battles" in judges.message and "judge models' votes only" in judges.message
    assert list(people.table["Contestant"])[0] == "alpha" and list(judges.table["Contestant"])[0] == "beta"
    bad = lt.leaderboard_view(db_path, lt.BoardFilters(voters="robots"), heatmaps=False)
    assert not bad.valid and "Votes from" in bad.message


def test_team_report_and_judge_report_count_people_only(db_path):
    from playground.judge.report import judge_report

    with closing(storage.open_database(db_path)) as db:
        fold_judge_votes(db)
        team = team_report(db)
        report = judge_report(db, rounds=20)
        pairs = pair_verdicts(db, JUDGE)
    assert JUDGE not in json.dumps(team)
    entry = report["judges"][JUDGE]
    # agreement is with people's votes (the judge's own votes would make it 1.0): they agree on one
    assert entry["n"] == 5 and entry["agreement"]["value"] == pytest.approx(1 / 5)
    assert len(pairs) == 6


def test_cli_leaderboard_of_judges_says_the_judge_gave_no_usable_verdict(tmp_path):
    """Every order unparseable: the judge cast no vote, and the reader is told so with the count,
    not sent to the Arena to vote."""
    path = tmp_path / "unparseable.db"
    with closing(storage.open_database(path)) as db:
        for k in range(3):
            battle = add_battle(db, "alpha", "beta", "left", question=f"question {k}")
            for order in ("AB", "BA"):
                record_judge_verdict(db, battle_id=battle, judge=JUDGE, judge_model="judge-model", prompt_id="general",
                                     order=order, judge_prompt="prompt", raw_output="I cannot decide.",
                                     label=None, verdict="unparseable")
        fold_judge_votes(db)
    env = {"PLAYGROUND_DB": str(path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "app.py", "leaderboard", "--voters", "judges", "--rounds", "20"], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "the judge produced no usable verdicts (6 of 6 judged orders were unparseable" in out.stderr
    assert "vote in the Arena" not in out.stderr
    people = subprocess.run([sys.executable, "app.py", "leaderboard", "--rounds", "20"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120)
    assert people.returncode == 0, people.stderr  # people's votes still rank as before
