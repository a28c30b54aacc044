"""leaderboard: SQL loading from a real database, rows, warnings, formats, figures, the CLI command."""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

import storage
from playground.commands import leaderboard_cmd
from playground.leaderboard import (
    battle_count_figure,
    build_leaderboard,
    load_battles,
    predicted_win_rate_figure,
    ratings_figure,
    rows_as_dicts,
    to_csv,
    to_json,
    to_markdown,
    win_rate_figure,
)
from playground.ranking import Battles, RankingError

STRENGTH = {"big": 1150.0, "mid": 1000.0, "small": 850.0}
T0 = 1_700_000_000.0


def add_battle(db, left, right, winner, *, tstamp, left_mode="", right_mode="", anonymous=True,
               left_output="an answer", right_output="another answer"):
    """One battle through the storage API (vote time forced to `tstamp` for filters)."""
    conversation = [{"role": "user", "content": "What is 2 + 2?"}]
    ids = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=conversation, output=o,
                                                                  mode=mode, session_id="s1"))
           for m, o, mode in ((left, left_output, left_mode), (right, right_output, right_mode))]
    battle = storage.create_battle(db, left_generation_id=ids[0], right_generation_id=ids[1], anonymous=anonymous,
                                   session_id="s1")
    storage.record_vote(db, battle_id=battle, winner=winner, session_id="s1", tstamp=tstamp)
    db.conn.commit()
    return battle


@pytest.fixture(scope="module")
def filled_db(tmp_path_factory) -> Path:
    """240 simulated battles among three models of known strength, two modes, some not anonymous."""
    path = tmp_path_factory.mktemp("lb") / "playground.db"
    db = storage.open_database(path)
    rng = np.random.default_rng(4)
    names = list(STRENGTH)
    for k in range(240):
        left, right = rng.choice(names, 2, replace=False)
        p = 1 / (1 + 10 ** ((STRENGTH[right] - STRENGTH[left]) / 400))
        u = rng.random()
        winner = "tie" if u < 0.08 else "both_bad" if u < 0.12 else ("left" if rng.random() < p else "right")
        add_battle(db, str(left), str(right), winner, tstamp=T0 + k, left_mode=["zero_shot", ""][k % 2],
                   right_mode="few_shot", anonymous=k % 3 != 0, left_output="x" * (10 + k % 7))
    db.close()
    return path


def open_db(path):
    return storage.open_database(path)


def test_load_battles_reads_every_voted_battle_in_time_order(filled_db):
    db = open_db(filled_db)
    # a battle without a vote must not appear
    g = [storage.insert_generation(db, storage.GenerationRecord(model_id=m, conversation=[{"role": "user", "content": "q"}],
                                                                output="o")) for m in ("big", "small")]
    storage.create_battle(db, left_generation_id=g[0], right_generation_id=g[1], anonymous=True, session_id="s")
    battles = load_battles(db)
    assert len(battles) == 240 and battles.names == ("big", "mid", "small")
    assert np.all(np.diff(battles.tstamp) >= 0)
    winners = [r[0] for r in db.execute("SELECT winner FROM votes ORDER BY tstamp, id")]
    assert list(battles.winner) == winners
    lengths = [r[0] for r in db.execute(
        "SELECT length(g.output) FROM votes v JOIN battles b ON b.id = v.battle_id "
        "JOIN generations g ON g.id = b.left_generation_id ORDER BY v.tstamp, v.id")]
    assert battles.left_len.tolist() == lengths
    assert load_battles(db, with_lengths=False).left_len is None
    db.close()


def test_load_battles_groupings_and_filters(filled_db):
    db = open_db(filled_db)
    assert load_battles(db, by="mode").names == ("(no mode)", "few_shot", "zero_shot")
    by_both = load_battles(db, by="model+mode")
    assert "big + few_shot" in by_both.names and "big" in by_both.names  # empty mode -> just the model
    assert not any(name.endswith(" + ") for name in by_both.names)
    anonymous = load_battles(db, anonymous_only=True)
    assert len(anonymous) == sum(1 for k in range(240) if k % 3 != 0)
    window = load_battles(db, since=T0 + 10, until=T0 + 20)
    assert len(window) == 10 and window.tstamp.min() == T0 + 10 and window.tstamp.max() == T0 + 19
    assert len(load_battles(db, since=T0 + 1000)) == 0
    with pytest.raises(RankingError, match="grouping"):
        load_battles(db, by="size")
    db.close()


def test_leaderboard_from_database(filled_db):
    db = open_db(filled_db)
    board = build_leaderboard(load_battles(db), rounds=300, seed=1)
    db.close()
    assert [r.contestant for r in board.rows] == ["big", "mid", "small"]
    assert [r.rank for r in board.rows] == [1, 2, 3]
    for row in board.rows:
        assert row.ci_low <= row.rating <= row.ci_high
        assert row.battles == row.wins + row.losses + row.ties
        assert row.win_rate == pytest.approx((row.wins + row.ties / 2) / row.battles)
    assert sum(r.battles for r in board.rows) == 2 * 240
    assert board.rows[0].elo > board.rows[2].elo
    assert board.names == ("big", "mid", "small")
    assert board.battle_counts.sum() == 2 * 240 and board.win_rate.shape == (3, 3)
    assert board.predicted[0, 2] > 0.5 and math.isnan(board.predicted[0, 0])
    assert np.mean([r.rating for r in board.rows]) == pytest.approx(1000.0)


def test_leaderboard_warnings_name_prior_groups_and_position_bias():
    rows = [("A", "B", "left", float(k)) for k in range(30)] + [("B", "A", "left", 40.0 + k) for k in range(25)]
    rows += [("C", "A", "right", 100.0 + k) for k in range(5)]  # C never wins
    rows += [("X", "Y", "left", 200.0), ("Y", "X", "tie", 201.0)]  # a separate group
    board = build_leaderboard(Battles.from_rows(rows), rounds=100)
    text = "\n".join(board.warnings)
    assert "No finite rating exists for C (never won in 5 battles)" in text and "virtual tied battle" in text
    assert "never played in the resample" in text  # X-Y vanish from some resamples: regularised and counted
    assert "could not be fitted" not in text
    assert "2 groups that never met" in text and "A, B, C | X, Y" in text
    assert "Position bias" in text
    assert all(math.isfinite(r.rating) for r in board.rows)
    assert next(r for r in board.rows if r.contestant == "C").rating < min(
        r.rating for r in board.rows if r.contestant in "AB")


def test_excluded_both_bad_only_contestant_is_listed_unrated():
    rows = [("A", "B", "left", 1.0), ("B", "A", "left", 2.0), ("A", "Z", "both_bad", 3.0)]
    board = build_leaderboard(Battles.from_rows(rows), rounds=50, both_bad="exclude")
    z = board.rows[-1]
    assert z.contestant == "Z" and z.rank is None and math.isnan(z.rating)
    assert any("Z has no counted battle" in w for w in board.warnings)
    assert json.loads(to_json(board))["rows"][-1]["rating"] is None  # valid JSON, no NaN


def test_no_battles_raises():
    with pytest.raises(RankingError, match="no battles to rank"):
        build_leaderboard(Battles.from_rows([]))


def test_output_formats(filled_db):
    db = open_db(filled_db)
    board = build_leaderboard(load_battles(db), rounds=100, length_control=True)
    db.close()
    parsed = list(csv.DictReader(io.StringIO(to_csv(board))))
    assert [r["contestant"] for r in parsed] == ["big", "mid", "small"]
    assert {"rank", "rating", "ci_low", "ci_high", "elo", "rating_lc", "rank_lc"} <= set(parsed[0])
    doc = json.loads(to_json(board))
    assert doc["rows"][0]["contestant"] == "big" and doc["battles"] == 240
    assert doc["settings"]["rounds"] == 100 and "length_control" in doc
    md = to_markdown(board)
    assert md.splitlines()[0].startswith("| Rank | Contestant | Rating")
    assert "| 1 | big |" in md


def test_figures_are_agg_figures(filled_db, tmp_path):
    db = open_db(filled_db)
    board = build_leaderboard(load_battles(db), rounds=50, length_control=True)
    db.close()
    for build in (ratings_figure, win_rate_figure, battle_count_figure, predicted_win_rate_figure):
        fig = build(board)
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{build.__name__}.png")
        assert (tmp_path / f"{build.__name__}.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- CLI


class Settings:
    def __init__(self, db_path):
        self.db_path = db_path


def cli_args(**overrides):
    args = dict(by="model", rounds=200, seed=0, include_named=True, since=None, until=None, both_bad="tie",
                length_control=False, json=True, tie_model="half", category=None)
    args.update(overrides)
    return argparse.Namespace(**args)


def test_cli_json_rows(filled_db, capsys):
    assert leaderboard_cmd.run(cli_args(), Settings(filled_db)) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["contestant"] for r in rows] == ["big", "mid", "small"]
    for row in rows:
        assert {"rank", "contestant", "rating", "ci_low", "ci_high", "battles", "win_rate"} <= set(row)
    db = open_db(filled_db)
    assert rows == rows_as_dicts(build_leaderboard(load_battles(db), rounds=200))
    db.close()


def test_cli_table_and_filters(filled_db, capsys):
    assert leaderboard_cmd.run(cli_args(json=False, by="mode", length_control=True, rounds=50), Settings(filled_db)) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["RANK", "CONTESTANT", "RATING"] and "few_shot" in out
    assert leaderboard_cmd.run(cli_args(since="2023-11-14T22:13:40", until=str(T0 + 30)), Settings(filled_db)) == 0
    assert sum(r["battles"] for r in json.loads(capsys.readouterr().out)) == 2 * 10


def test_cli_without_battles_exits_1_with_a_message(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    storage.open_database(empty).close()
    assert leaderboard_cmd.run(cli_args(), Settings(empty)) == 1
    assert "no battles to rank: vote in the Arena or import battles" in capsys.readouterr().err
    assert leaderboard_cmd.run(cli_args(), Settings(tmp_path / "missing.db")) == 1
    assert "no database at" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_cli_default_install_ranks_modes_of_the_one_model(tmp_path, capsys):
    """Only the bundled model, Arena battles between its modes: exit 0 with a model + mode table."""
    path = tmp_path / "one.db"
    db = storage.open_database(path)
    add_battle(db, "smol", "smol", "left", tstamp=T0, left_mode="instruction", right_mode="zero_shot")
    add_battle(db, "smol", "smol", "right", tstamp=T0 + 1, left_mode="zero_shot", right_mode="instruction")
    db.close()
    args = cli_args(by="auto", include_named=False, json=False, rounds=20)
    assert leaderboard_cmd.run(args, Settings(path)) == 0
    out = capsys.readouterr().out
    assert "Grouped by model + mode" in out and "smol + instruction" in out and "smol + zero_shot" in out
    assert "anonymous (blind) battles only" in out


def test_cli_ranks_anonymous_battles_unless_named_are_included(filled_db, capsys):
    assert leaderboard_cmd.run(cli_args(include_named=False), Settings(filled_db)) == 0
    anonymous = sum(r["battles"] for r in json.loads(capsys.readouterr().out)) // 2
    assert anonymous == sum(k % 3 != 0 for k in range(240))
    path = filled_db.parent / "named-only.db"
    db = storage.open_database(path)
    add_battle(db, "a", "b", "left", tstamp=T0, anonymous=False)
    db.close()
    assert leaderboard_cmd.run(cli_args(include_named=False), Settings(path)) == 1
    assert "--include-named" in capsys.readouterr().err
    assert leaderboard_cmd.run(cli_args(include_named=True, rounds=10), Settings(path)) == 0


def test_cli_davidson_prints_the_tie_parameter(filled_db, capsys):
    assert leaderboard_cmd.run(cli_args(json=False, tie_model="davidson", rounds=50), Settings(filled_db)) == 0
    assert "ties modelled (Davidson): nu = " in capsys.readouterr().out


def test_self_battles_are_left_out_with_a_warning():
    """Two modes of one model grouped by model: a contestant against itself says nothing."""
    from playground.leaderboard import build_leaderboard
    from playground.ranking import Battles, RankingError

    battles = Battles.from_rows([("a", "a", "left", 1.0), ("a", "b", "left", 2.0), ("b", "a", "tie", 3.0)])
    board = build_leaderboard(battles, rounds=50)
    assert board.n_battles == 2
    assert any("compared a contestant with itself" in w for w in board.warnings)
    with pytest.raises(RankingError, match="group by mode or model\\+mode"):
        build_leaderboard(Battles.from_rows([("a", "a", "left", 1.0)]), rounds=10)
