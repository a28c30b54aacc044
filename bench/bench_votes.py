"""Votes per second: 8 concurrent writers (one connection each) against 1 sequential writer.

Each vote is what the arena does per judgement: create a battle and record its vote, in one
transaction. Both runs write the same number of votes to a fresh database and must lose none.
Run: python bench/bench_votes.py [--threads 8] [--votes-per-thread 1000]
"""
from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from storage import (  # noqa: E402
    GenerationRecord,
    count_votes,
    create_battle,
    insert_generation,
    open_database,
    record_vote,
    write_transaction,
)

TARGET_VOTES_PER_S = 1_000
WINNERS = ("left", "right", "tie", "both_bad")


def seed_generations(path: Path, n_votes: int) -> list[tuple[int, int]]:
    """Enough finished answers to one question that every vote gets its own unordered pair."""
    n_generations = 2
    while n_generations * (n_generations - 1) // 2 < n_votes:
        n_generations += 1
    db = open_database(path)
    try:
        ids = [
            insert_generation(db, GenerationRecord(
                model_id=f"model-{i % 6}", mode="zero_shot", output=f"answer {i}",
                conversation=[{"role": "user", "content": "the question"}],
            ))
            for i in range(n_generations)
        ]
    finally:
        db.close()
    return list(itertools.combinations(ids, 2))[:n_votes]


def write_votes(path: Path, pairs: list[tuple[int, int]], errors: list[BaseException],
                start: threading.Barrier | None = None) -> None:
    """One writer: its own connection; battle + vote per transaction."""
    db = open_database(path)
    try:
        if start is not None:
            start.wait()
        for n, (left, right) in enumerate(pairs):
            with write_transaction(db):
                battle_id = create_battle(db, left_generation_id=left, right_generation_id=right,
                                          anonymous=True, session_id="bench", source="playground")
                record_vote(db, battle_id=battle_id, winner=WINNERS[n % 4], session_id="bench")
    except BaseException as exc:  # reported by the caller; a lost vote must be visible
        errors.append(exc)
    finally:
        db.close()


def run(path: Path, writers: int, n_votes: int) -> dict[str, float]:
    """Write n_votes with `writers` threads; returns rate and a loss check."""
    pairs = seed_generations(path, n_votes)
    shares = [pairs[i::writers] for i in range(writers)]
    errors: list[BaseException] = []
    start = threading.Barrier(writers + 1)
    threads = [threading.Thread(target=write_votes, args=(path, share, errors, start))
               for share in shares]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    db = open_database(path)
    try:
        stored = count_votes(db)
    finally:
        db.close()
    if errors:
        raise RuntimeError(f"{len(errors)} writer(s) failed; first: {errors[0]!r}")
    return {"votes": n_votes, "stored": stored, "lost": n_votes - stored,
            "seconds": elapsed, "votes_per_s": n_votes / elapsed}


def main(threads: int = 8, votes_per_thread: int = 1_000) -> dict[str, float]:
    """Run both measurements, print them, return the figures (for bench/run.py)."""
    n_votes = threads * votes_per_thread
    with tempfile.TemporaryDirectory(prefix="bench_votes_") as tmp:
        sequential = run(Path(tmp) / "sequential.db", 1, n_votes)
        concurrent = run(Path(tmp) / "concurrent.db", threads, n_votes)
    results = {
        "votes": float(n_votes),
        "threads": float(threads),
        "sequential_votes_per_s": sequential["votes_per_s"],
        "concurrent_votes_per_s": concurrent["votes_per_s"],
        "ratio_concurrent_vs_sequential": concurrent["votes_per_s"] / sequential["votes_per_s"],
        "lost_votes": sequential["lost"] + concurrent["lost"],
        "target_votes_per_s": float(TARGET_VOTES_PER_S),
    }
    print_results(results)
    return results


def print_results(results: dict[str, float]) -> None:
    n, threads = int(results["votes"]), int(results["threads"])
    concurrent = results["concurrent_votes_per_s"]
    verdict = "meets" if concurrent >= TARGET_VOTES_PER_S else "BELOW"
    print(f"bench_votes: {n} votes, battle + vote per transaction")
    print(f"  baseline, 1 sequential writer : {results['sequential_votes_per_s']:8.0f} votes/s")
    print(f"  {threads} concurrent writers        : {concurrent:8.0f} votes/s")
    print(f"  ratio concurrent / sequential : {results['ratio_concurrent_vs_sequential']:8.2f}")
    print(f"  lost votes                    : {int(results['lost_votes']):8d}")
    print(f"  target {TARGET_VOTES_PER_S} votes/s           : {verdict}")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--votes-per-thread", type=int, default=1_000)
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = _parse_args(None)
    figures = main(args.threads, args.votes_per_thread)
    sys.exit(1 if figures["lost_votes"] else 0)
