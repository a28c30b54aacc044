"""Parse a JSONL battles file in worker processes while the importing process writes.

Why: parsing and validating a row in Python (orjson, the row fingerprint, the judging rules) costs
about as much CPU as SQLite's writing it; on 2 cores the two can overlap. The file is cut at line
ends into chunks of about CHUNK_BYTES; each chunk goes to a worker with the number of its first
line, so bad lines are still reported by their number in the file. Results come back in file
order (a bounded window of chunks in flight, so memory does not grow with the file), and the
importing process, the only one that touches the database, writes them. Writing needs less CPU
than parsing, so while the oldest chunk in flight is not back, the importing process parses the
next chunk itself rather than wait (a few chunks ahead at most). Workers only parse: a
worker that fails raises here, in the import's transaction, which then rolls back.

Workers are forked when this process runs a single thread (the `import` command, the benchmark):
fork starts in milliseconds and does not re-run the main script. A forked child inherits the open
SQLite connection but never uses it (it only parses, and leaves with os._exit). With other
threads running (a server), a fork could copy a lock another thread holds, so workers are
spawned instead; spawn re-imports the main module, which therefore needs the usual
`if __name__ == "__main__":` guard (app.py has it).
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Generic, TypeVar

CHUNK_BYTES = 2 << 20  # about 7,000 Arena rows: small enough to start writing early, large enough to pickle cheaply
PARALLEL_FROM_BYTES = 16 << 20  # smaller files (< ~60k rows) parse here: a spawned worker takes ~0.5 s to start
IN_FLIGHT_PER_WORKER = 3
LOCAL_AHEAD = 6  # chunks this process may parse ahead while it waits for a worker's

T = TypeVar("T")


def default_workers(size: int) -> int:
    """Worker processes for a file of `size` bytes: one per core but the writer's, from PARALLEL_FROM_BYTES.

    Why not more: a second worker on 2 cores competes with the writer for its core (measured under
    load, 300k battles, alternating runs: 9.5 s and 14.9 s with one worker, 9.7 s and 24.6 s with two).
    """
    cores = os.cpu_count() or 1
    return cores - 1 if cores > 1 and size >= PARALLEL_FROM_BYTES else 0


def start_method() -> str:
    """'fork' when this process has no other thread and the platform forks, else 'spawn'."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return "spawn"


def line_chunks(data: bytes, chunk_bytes: int | None = None) -> Iterator[tuple[bytes, int]]:
    """(chunk, number of its first line): whole lines, cut at `\\n`, about chunk_bytes (default CHUNK_BYTES) each."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    start, first_line = 0, 1
    while start < len(data):
        end = data.find(b"\n", start + chunk_bytes)
        if end < 0:
            end = len(data)
        chunk = data[start:end]
        yield chunk, first_line
        first_line += chunk.count(b"\n") + 1
        start = end + 1


def parsed_chunks(data: bytes, parse: Callable[[bytes, int], T], workers: int | None = None) -> Iterator[T]:
    """`parse(chunk, first_line)` for every chunk of `data`, in file order.

    `parse` must be a module-level function (workers import it by name). workers=None chooses
    with `default_workers`; 0 parses in this process.
    """
    if workers is None:
        workers = default_workers(len(data))
    if workers <= 0:
        for chunk, first_line in line_chunks(data):
            yield parse(chunk, first_line)
        return
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(start_method()),
                               initializer=die_with_parent, initargs=(os.getpid(),))
    try:
        # File order: each entry is a worker's Future or a result parsed here. While the oldest chunk is not
        # back, this process parses the next one itself instead of waiting (the writer idles about half the
        # load otherwise); at most LOCAL_AHEAD such results wait, so memory stays bounded.
        pending: deque[Future[T] | _Parsed[T]] = deque()
        chunks = line_chunks(data)
        in_flight = local = 0
        exhausted = False
        for chunk, first_line in chunks:
            pending.append(pool.submit(parse, chunk, first_line))
            in_flight += 1
            if in_flight >= workers * IN_FLIGHT_PER_WORKER:
                break
        while pending:
            head = pending[0]
            if isinstance(head, Future) and not exhausted and local < LOCAL_AHEAD and not head.done():
                for chunk, first_line in chunks:
                    pending.append(_Parsed(parse(chunk, first_line)))
                    local += 1
                    break
                else:
                    exhausted = True  # nothing left to parse here: wait for the workers
                continue
            pending.popleft()
            if isinstance(head, _Parsed):
                local -= 1
                yield head.result
                continue
            done = head.result()  # a worker's exception is raised here
            for chunk, first_line in chunks:
                pending.append(pool.submit(parse, chunk, first_line))
                break
            else:
                exhausted = True
            yield done
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def die_with_parent(parent_pid: int) -> None:
    """In a worker: be killed when the importing process dies, even by kill -9 (which runs no cleanup).

    Why: an orphaned worker kept parsing, holding hundreds of MB, for as long as it had chunks.
    On Linux the kernel sends SIGKILL at the parent's death (PR_SET_PDEATHSIG); the parent may
    already have died before this runs, hence the check of the parent's pid after setting it.
    Elsewhere a thread polls the parent's pid once a second.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
                if os.getppid() != parent_pid:
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="watch-parent").start()


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


class _Parsed(Generic[T]):
    """A chunk parsed in this process, waiting for its turn in file order."""

    __slots__ = ("result",)

    def __init__(self, result: T) -> None:
        self.result = result
