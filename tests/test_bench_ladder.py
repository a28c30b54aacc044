"""The GSM8K ladder's deadline: `--stop-at HH:MM` is the next occurrence of that time (past midnight
when need be), `--stop-after MINUTES` a span from the start; the lab itself is not run here."""
from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

LADDER = Path(__file__).resolve().parent.parent / "bench" / "ladder.py"


@pytest.fixture(scope="module")
def ladder():
    spec = importlib.util.spec_from_file_location("bench_ladder", LADDER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ladder"] = module             # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("bench_ladder", None)


def test_stop_at_after_midnight_is_tomorrow(ladder) -> None:
    now = datetime(2026, 12, 7, 23, 5)
    assert ladder.deadline(now, (0, 40)) == datetime(2026, 12, 8, 0, 40)
    assert ladder.deadline(now, (23, 30)) == datetime(2026, 12, 7, 23, 30)
    assert ladder.deadline(now, (23, 5)) == datetime(2026, 12, 8, 23, 5)   # now itself has passed


def test_stop_after_minutes_and_the_earlier_of_both(ladder) -> None:
    now = datetime(2026, 12, 7, 23, 5)
    assert ladder.deadline(now, stop_after_min=90) == datetime(2026, 12, 8, 0, 35)
    assert ladder.deadline(now, (0, 40), 90) == datetime(2026, 12, 8, 0, 35)
    assert ladder.deadline(now, (23, 10), 90) == datetime(2026, 12, 7, 23, 10)
    assert ladder.deadline(now) is None


@pytest.mark.parametrize("text", ["24:00", "7", "ab:cd", "12:60"])
def test_bad_clock_time_is_a_clear_usage_error(ladder, text, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        ladder.main(["--stop-at", text, "--plan"])
    assert stop.value.code == 2
    assert "--stop-at" in capsys.readouterr().err


def test_a_stop_time_earlier_on_the_clock_still_runs_cells(ladder, tmp_path, monkeypatch) -> None:
    """One minute before now on the clock is almost a day away: the first cell starts (a string
    comparison of HH:MM stopped here at once)."""
    calls = []
    monkeypatch.setattr(ladder.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 2)
    earlier = (datetime.now() - timedelta(minutes=1)).strftime("%H:%M")
    code = ladder.main(["--db", str(tmp_path / "l.db"), "--out", str(tmp_path), "--stop-at", earlier])
    assert code == 2 and len(calls) == 1             # exit 2 from the (stand-in) lab stops the ladder


def test_stop_after_zero_starts_nothing(ladder, tmp_path, monkeypatch, capsys) -> None:
    calls = []
    monkeypatch.setattr(ladder.subprocess, "call", lambda cmd, **kw: calls.append(cmd) or 0)
    assert ladder.main(["--db", str(tmp_path / "l.db"), "--out", str(tmp_path), "--stop-after", "0"]) == 0
    assert calls == [] and "deadline" in capsys.readouterr().out
