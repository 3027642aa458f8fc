"""benchmarks/_common.py: which runs a benchmark keeps, and what its median is."""

import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common  # noqa: E402


def test_runs_are_kept_only_when_other_processes_stayed_quiet():
    timer = _common.Timer(max_other=0.2)
    timer.runs["job"] = [(1.0, 0.0), (5.0, 1.5), (2.0, 0.1), (3.0, 0.2)]
    assert timer.kept("job") == [1.0, 2.0, 3.0]
    assert timer.median("job") == (2.0, False)  # the 5 s run under load is left out
    assert timer.load() == pytest.approx(1.8 / 4)


def test_too_few_quiet_runs_fall_back_to_all_runs_and_say_so():
    timer = _common.Timer(max_other=0.2)
    timer.runs["job"] = [(1.0, 0.0), (5.0, 1.5), (4.0, 0.9)]
    assert timer.median("job") == (4.0, True)


def test_a_run_returns_its_result_and_measures_the_other_processes(monkeypatch):
    readings = iter([(1000, 10), (1000 + 2 * 100 + 7, 10 + 7)])  # others: 200 jiffies; this process: 7
    monkeypatch.setattr(_common, "busy_jiffies", lambda: next(readings))
    monkeypatch.setattr(_common, "_TICK", 100)
    clock = iter([0.0, 2.0])
    monkeypatch.setattr(_common, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    timer = _common.Timer(max_other=0.2)
    assert timer.run("job", lambda: "out") == "out"
    wall, other = timer.runs["job"][0]
    assert wall == 2.0 and other == pytest.approx(1.0)  # 200 jiffies at 100 Hz over 2 s: one core
    assert timer.median("job") == (2.0, True)


def test_busy_jiffies_reads_this_machine():
    busy, mine = _common.busy_jiffies()
    if not Path("/proc/stat").exists():
        assert (busy, mine) == (0, 0)
    else:
        assert busy >= mine >= 0
