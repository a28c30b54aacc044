"""DPO export speed: 100,000 decisive votes to TRL JSONL (target <= 5 s), against the naive way.

The baseline, measured in the same run on a 10,000-vote subset, is what a first version does:
list the vote ids, then one query per vote for its battle and both answers, then the same
row -> pair conversion and the same writes. Reported as a per-vote time ratio.
Run: python bench/bench_export.py [--votes 100000] [--baseline-votes 10000]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import Timing, timed  # noqa: E402,F401  (bench/ is on sys.path when run)

import numpy as np  # noqa: E402

from playground.export import _DPO_COLUMNS, dpo_metadata, dpo_pair, export_arena_battles, export_dpo  # noqa: E402

TARGET_S = 5.0
MODELS = [f"model-{k}" for k in range(8)]
MODES = ["zero_shot", "few_shot", "zero_shot_cot", "instruction"]
TEXT = " ".join(f"word{k % 97} is followed by token{k % 13}, then a comma." for k in range(400))




def fill_database(path: Path, n_votes: int, seed: int = 0) -> float:
    """n decisive votes, each with two ~100-1000 character answers; one in ten conversations is multi-turn."""
    from storage import open_database

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    db = open_database(path)
    lengths = rng.integers(100, 1000, (n_votes, 2)).tolist()
    offsets = rng.integers(0, len(TEXT) - 1000, (n_votes, 2)).tolist()
    pairs = rng.choice(len(MODELS), (n_votes, 2), replace=True).tolist()
    modes = rng.integers(0, len(MODES), (n_votes, 2)).tolist()
    winners = rng.choice(["left", "right"], n_votes).tolist()
    created = "2024-01-01T00:00:00+00:00"

    def conversation(k: int, side: int) -> str:
        turn = [{"role": "user", "content": f"Question {k}: explain item {k % 1000} in detail."}]
        if k % 10 == 0:
            turn = [{"role": "user", "content": f"Earlier question {k}"},
                    {"role": "assistant", "content": f"earlier answer {k} from side {side}"}] + turn
        return json.dumps(turn)

    def output(k: int, side: int) -> str:
        return f"[{k}] " + TEXT[offsets[k][side]: offsets[k][side] + lengths[k][side]]

    conn = db.conn
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO generations (id, created_at, tstamp, model_id, mode, conversation, output, source) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'local')",
        ((2 * k + 1 + side, created, 1.7e9 + k, MODELS[pairs[k][side]], MODES[modes[k][side]],
          conversation(k, side), output(k, side)) for k in range(n_votes) for side in (0, 1)),
    )
    conn.executemany(
        "INSERT INTO battles (id, created_at, tstamp, session_id, left_generation_id, right_generation_id, "
        "left_model, right_model, left_mode, right_mode, anonymous, source) "
        "VALUES (?, ?, ?, 's', ?, ?, ?, ?, ?, ?, ?, 'playground')",
        ((k + 1, created, 1.7e9 + k, 2 * k + 1, 2 * k + 2, MODELS[pairs[k][0]], MODELS[pairs[k][1]],
          MODES[modes[k][0]], MODES[modes[k][1]], k % 4 != 0) for k in range(n_votes)),
    )
    conn.executemany(
        "INSERT INTO votes (battle_id, winner, session_id, created_at, tstamp) VALUES (?, ?, 's', ?, ?)",
        ((k + 1, winners[k], created, 1.7e9 + k + 0.5) for k in range(n_votes)),
    )
    conn.execute("COMMIT")
    db.close()
    return time.perf_counter() - start


def naive_export(db, out: Path, limit: int) -> int:
    """Baseline: one query per vote, same conversion and writes (standard format, no dedupe)."""
    ids = [row[0] for row in db.execute(
        "SELECT id FROM votes WHERE winner IN ('left', 'right') ORDER BY tstamp, id LIMIT ?", [limit])]
    written = 0
    with open(out, "w", encoding="utf-8") as pairs, open(str(out) + ".meta.jsonl", "w", encoding="utf-8") as meta:
        for vote_id in ids:
            values = db.execute(
                "SELECT v.id, v.battle_id, v.winner, v.tstamp, v.session_id, b.left_model, b.right_model, "
                "b.left_mode, b.right_mode, b.anonymous, b.left_generation_id, b.right_generation_id, "
                "gl.conversation, gr.conversation, gl.output, gr.output, gl.finish_reason, gr.finish_reason "
                "FROM votes v JOIN battles b ON b.id = v.battle_id "
                "JOIN generations gl ON gl.id = b.left_generation_id "
                "JOIN generations gr ON gr.id = b.right_generation_id WHERE v.id = ?", [vote_id]).fetchone()
            row = dict(zip(_DPO_COLUMNS, values, strict=True))
            pair = dpo_pair(row, "standard")
            if pair is not None:
                pairs.write(json.dumps(pair, ensure_ascii=False) + "\n")
                meta.write(json.dumps(dpo_metadata(row), ensure_ascii=False) + "\n")
                written += 1
    return written


def main(n_votes: int = 100_000, baseline_votes: int = 10_000) -> dict[str, float]:
    from storage import open_database

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        fill_s = fill_database(folder / "bench.db", n_votes)
        db = open_database(folder / "bench.db")
        standard = timed(lambda: export_dpo(db, folder / "standard.jsonl"))
        conversational = timed(lambda: export_dpo(db, folder / "chat.jsonl", format="conversational"), repeat=1)
        battles = timed(lambda: export_arena_battles(db, folder / "battles.json"), repeat=1)
        naive = timed(lambda: naive_export(db, folder / "naive.jsonl", baseline_votes), repeat=1)
        size_mb = (folder / "standard.jsonl").stat().st_size / 1e6
        db.close()
    # the standard format leaves out the multi-turn pairs (one in ten) whose sides answered differently
    assert standard.result.written + standard.result.left_out.get("multi_turn", 0) == n_votes and naive.result > 0
    per_vote, naive_per_vote = standard.wall / n_votes, naive.wall / naive.result
    results = {
        "votes": n_votes, "db_fill_s": fill_s,
        "dpo_standard_s": standard.wall, "dpo_standard_cpu_s": standard.cpu,
        "dpo_conversational_s": conversational.wall, "arena_battles_s": battles.wall,
        "naive_subset_votes": naive.result, "naive_subset_s": naive.wall,
        "per_vote_us": per_vote * 1e6, "naive_per_vote_us": naive_per_vote * 1e6,
        "ratio_naive_vs_streaming_per_vote": naive_per_vote / per_vote,
        "dpo_file_mb": size_mb,
    }
    print(f"{n_votes:,} decisive votes (database filled in {fill_s:.1f} s, not timed); wall (CPU) time")
    print(f"DPO standard: {standard.wall:.2f} s ({standard.cpu:.2f} s CPU, median of 3, {size_mb:.0f} MB + sidecar), "
          f"target <= {TARGET_S} s: {'OK' if standard.wall <= TARGET_S else 'OVER TARGET'}")
    print(f"DPO conversational: {conversational.wall:.2f} s; Arena battles JSON: {battles.wall:.2f} s")
    print(f"naive one-query-per-vote baseline on {naive.result:,} votes: {naive.wall:.2f} s; per vote "
          f"{naive_per_vote * 1e6:.1f} us vs {per_vote * 1e6:.1f} us -> streaming is "
          f"{results['ratio_naive_vs_streaming_per_vote']:.1f}x faster per vote")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=100_000)
    parser.add_argument("--baseline-votes", type=int, default=10_000)
    options = parser.parse_args()
    main(options.votes, options.baseline_votes)
