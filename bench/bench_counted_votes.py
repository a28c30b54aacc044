"""What the judging rules cost: rankings read `counted_votes` (a view that leaves out
excluded and tombstoned votes) instead of `votes`, and every vote insert runs the m008 triggers.

Baselines in the same run: the same query on the plain `votes` table, and the same bulk insert
into a copy of the database whose judging triggers were dropped.
Run: python bench/bench_counted_votes.py [--battles 200000]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import REPO, machine_info  # noqa: F401  (puts the repo on sys.path)

from bench_ranking import fill_database, synthetic_battles

TRIGGERS = ("votes_one_per_pair", "votes_finished_answers", "battles_same_input", "battles_finished_answers",
            "battles_one_per_pair")


def cpu(fn) -> tuple[float, object]:
    start = time.process_time()
    result = fn()
    return time.process_time() - start, result


def main(n_battles: int = 200_000) -> dict[str, float]:
    from playground.leaderboard import load_battles
    from storage import open_database

    battles, _ = synthetic_battles(n_battles, 20)
    with tempfile.TemporaryDirectory() as folder:
        with_rules, without = Path(folder) / "rules.db", Path(folder) / "plain.db"
        fill_rules = fill_database(with_rules, battles)
        db = open_database(without)
        for name in TRIGGERS:
            db.execute(f"DROP TRIGGER {name}")
        db.close()
        fill_plain = fill_database(without, battles)
        db = open_database(with_rules)
        query = "SELECT count(*), sum(v.tstamp) FROM {} v JOIN battles b ON b.id = v.battle_id"
        view_cpu, _ = cpu(lambda: db.execute(query.format("counted_votes")).fetchone())
        table_cpu, _ = cpu(lambda: db.execute(query.format("votes")).fetchone())
        load_cpu, loaded = cpu(lambda: load_battles(db, with_lengths=False))
        db.close()
    assert len(loaded) == n_battles
    results = {
        "battles": n_battles,
        "fill_with_triggers_s": fill_rules, "fill_without_triggers_s": fill_plain,
        "ratio_fill_with_vs_without_triggers": fill_rules / fill_plain,
        "scan_counted_votes_cpu_s": view_cpu, "scan_votes_cpu_s": table_cpu,
        "ratio_view_vs_table_scan": view_cpu / table_cpu if table_cpu else float("nan"),
        "load_battles_cpu_s": load_cpu,
    }
    for key, value in results.items():
        print(f"  {key:40s}: {value:.3f}" if isinstance(value, float) else f"  {key:40s}: {value}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=200_000)
    main(parser.parse_args().battles)
