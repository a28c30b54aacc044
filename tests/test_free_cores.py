"""Choosing the threads of a step from the cores other processes leave free: the rule, the /proc
parsing (a fake /proc tree written to disk), and the sampling clock, with made-up readings."""
from __future__ import annotations

from pathlib import Path

import pytest

from playground.backends.cache import CoreShare
from playground.backends.free_cores import (
    SAMPLE_S, STALE_S, CpuTimes, FreeCores, ProcReader, others_busy, parse_proc_stat, parse_running,
    parse_self_stat, threads_for, threads_from_run_queue,
)


@pytest.mark.parametrize("cores, others, threads", [
    (2, 0.0, 2), (2, 0.3, 2), (2, 0.35, 1),
    (2, 0.67, 1),     # one busy loop beside our 2 threads gets 2/3 of a core
    (2, 1.0, 1),      # ... and a whole one beside our single thread
    (2, 1.33, 1), (2, 2.0, 1), (2, 5.0, 1),
    (8, 0.0, 8), (8, 1.0, 7), (8, 2.9, 5), (8, 7.9, 1), (1, 0.0, 1),
])
def test_threads_need_a_mostly_free_core_each(cores: int, others: float, threads: int) -> None:
    assert threads_for(cores, others) == threads


@pytest.mark.parametrize("cores, running, threads", [(2, 0, 2), (2, 1, 1), (2, 2, 1), (2, 9, 1), (8, 3, 5),
                                                     (2, 0.4, 1)])
def test_run_queue_snapshot_counts_every_runnable_neighbour(cores: int, running: float, threads: int) -> None:
    assert threads_from_run_queue(cores, running) == threads


def test_others_busy_subtracts_our_own_cpu_time() -> None:
    before = CpuTimes(t=10.0, busy=100.0, own=40.0)
    after = CpuTimes(t=10.5, busy=101.0, own=40.6)    # 1.0 s busy in 0.5 s: 0.6 ours, 0.4 theirs
    assert others_busy(before, after) == pytest.approx(0.8)
    assert others_busy(after, after) == 0.0


PROC_STAT = """cpu  300 10 60 900 5 0 3 2 0 0
cpu0 100 5 30 450 2 0 1 1 0 0
cpu1 200 5 30 450 3 0 2 1 0 0
intr 1 2 3
ctxt 5
"""


def test_parse_proc_stat_sums_busy_fields_of_allowed_cpus() -> None:
    tick = 0.01
    # user + nice + system + irq + softirq + steal; idle and iowait are free
    assert parse_proc_stat(PROC_STAT, None, tick) == pytest.approx((137 + 238) * tick)
    assert parse_proc_stat(PROC_STAT, {1}, tick) == pytest.approx(238 * tick)
    assert parse_proc_stat("intr 1\n", None, tick) is None


def test_parse_self_stat_and_loadavg() -> None:
    stat = "4242 (python3 (weird) name) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 37 0"
    assert parse_self_stat(stat, 0.01) == pytest.approx(1.75)
    assert parse_running("3.83 1.88 0.76 6/157 10657\n") == 6


def fake_proc(root: Path, *, user1: int, own: int, running: int, own_states: list[str]) -> Path:
    (root / "self" / "task").mkdir(parents=True, exist_ok=True)
    (root / "stat").write_text(f"cpu  0 0 0 0 0 0 0 0 0 0\ncpu0 {user1} 0 0 0 0 0 0 0 0 0\n"
                               f"cpu1 {user1} 0 0 0 0 0 0 0 0 0\n")
    (root / "self" / "stat").write_text(f"1 (x) R 1 1 1 1 1 1 1 1 1 1 {own} 0 0 0")
    (root / "loadavg").write_text(f"1.0 1.0 1.0 {running}/100 5\n")
    for i, state in enumerate(own_states):
        (root / "self" / "task" / str(i)).mkdir(exist_ok=True)
        (root / "self" / "task" / str(i) / "stat").write_text(f"{i} (t) {state} 1 1")
    return root


def test_proc_reader_on_a_fake_tree(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, user1=50, own=30, running=4, own_states=["R", "S", "R"])
    reader = ProcReader(root=root, cpus={0, 1})
    times = reader.times(clock=lambda: 7.0)
    assert times == CpuTimes(7.0, 100 * reader.tick, 30 * reader.tick)
    assert reader.others_running() == 2        # 4 runnable, 2 of them ours
    assert ProcReader(root=tmp_path / "nowhere", cpus={0}).times() is None
    assert ProcReader(root=tmp_path / "nowhere", cpus={0}).others_running() is None


def test_run_queue_of_a_bigger_host_is_scaled_to_our_cores(tmp_path: Path) -> None:
    root = fake_proc(tmp_path, user1=0, own=0, running=9, own_states=["R"])
    assert ProcReader(root=root, cpus={0}).others_running() == pytest.approx(4.0)   # 8 others on 2 cpus, we have 1


class FakeReader:
    """Readings made up by the test: busy/own CPU seconds advance as the test says."""

    def __init__(self) -> None:
        self.t = self.busy = self.own = 0.0
        self.running = 0.0
        self.times_read = 0

    def advance(self, dt: float, others: float, ours: float) -> None:
        self.t += dt
        self.busy += (others + ours) * dt
        self.own += ours * dt

    def times(self, clock=None) -> CpuTimes:
        self.times_read += 1
        return CpuTimes(self.t, self.busy, self.own)

    def others_running(self) -> float:
        return self.running


def test_free_cores_follows_a_neighbour_that_comes_and_goes() -> None:
    r = FakeReader()
    free = FreeCores(2, reader=r, clock=lambda: r.t)
    assert free.usable() == 2                     # first look: the run queue is empty
    r.advance(0.3, others=0.67, ours=1.33)        # a busy loop starts beside our 2 threads
    assert free.usable() == 1
    r.advance(0.3, others=1.0, ours=1.0)          # on 1 thread, it keeps its core
    assert free.usable() == 1
    r.advance(0.3, others=0.0, ours=1.0)          # it ended
    assert free.usable() == 2
    assert free.threads(1) == 1 and free.threads(2) == 2


def test_free_cores_reads_at_most_every_sample_period() -> None:
    r = FakeReader()
    free = FreeCores(2, reader=r, clock=lambda: r.t)
    free.usable()
    r.advance(SAMPLE_S / 3, others=2.0, ours=0.0)
    assert free.usable() == 2 and r.times_read == 1     # too soon: the last decision stands
    r.advance(SAMPLE_S, others=2.0, ours=0.0)
    assert free.usable() == 1 and r.times_read == 2


def test_after_an_idle_spell_the_run_queue_decides() -> None:
    """A long window averages the past; the first step after it (a prefill chunk that would
    collapse on a wrong count) looks at who is runnable now."""
    r = FakeReader()
    free = FreeCores(2, reader=r, clock=lambda: r.t)
    free.usable()
    r.advance(STALE_S * 30, others=0.0, ours=0.0)   # idle and quiet for half a minute ...
    r.running = 1                                   # ... and a busy process has just started
    assert free.usable() == 1
    r.running = 0
    r.advance(SAMPLE_S, others=0.0, ours=2.0)
    assert free.usable() == 2


def test_without_proc_every_core_counts() -> None:
    class Nothing:
        def times(self, clock=None):
            return None

        def others_running(self):
            return None

    assert FreeCores(4, reader=Nothing()).usable() == 4


def test_core_share_runs_its_holders_on_the_free_cores() -> None:
    r = FakeReader()
    share = CoreShare(2, FreeCores(2, reader=r, clock=lambda: r.t))
    assert share.threads(2) == 2
    r.advance(0.5, others=1.0, ours=1.0)
    assert share.threads(2) == 1 and share.threads(1) == 1
    fixed = CoreShare(2)                    # --threads 2: no looking
    assert fixed.threads(2) == 2 and fixed.threads(1) == 1


def test_generations_spread_over_one_thread_contexts_only_when_one_core_is_left() -> None:
    r = FakeReader()
    share = CoreShare(2, FreeCores(2, reader=r, clock=lambda: r.t))
    assert share.spread() == 1                       # quiet: one context on both cores
    r.advance(0.5, others=1.0, ours=1.0)             # two busy loops beside our one thread
    assert share.spread() == 2
    r.advance(0.5, others=0.0, ours=1.0)             # they ended
    assert share.spread() == 1
    assert CoreShare(2).spread() == 1                # --threads 2: fixed, no spreading
    assert CoreShare(1, FreeCores(1, reader=r, clock=lambda: r.t)).spread() == 1


def test_a_torch_step_runs_on_the_threads_the_share_allows() -> None:
    """The transformers backend takes the device's share before each step: torch's thread count
    follows the free cores (process-wide, so it is restored after the test)."""
    import torch

    from playground.backends.transformers_backend import _Interrupt

    r = FakeReader()
    r.running = 1                                   # a busy neighbour right now
    share = CoreShare(2, FreeCores(2, reader=r, clock=lambda: r.t))
    before = torch.get_num_threads()
    step = _Interrupt(None, share)
    try:
        step.take_compute()
        assert torch.get_num_threads() == 1
        step.drop_compute()
        r.running = 0
        r.advance(SAMPLE_S, others=0.0, ours=2.0)   # it has gone
        step.take_compute()
        assert torch.get_num_threads() == 2
        step.drop_compute()
    finally:
        torch.set_num_threads(before)
