"""Shared by the benchmarks: timed runs that know whether another process used the CPU meanwhile, and JSON.

Each run reads /proc/stat (the machine's busy jiffies) and /proc/self/stat (this process's) around it; the
difference is the CPU other processes used, in cores. A run is kept when that stayed under `max_other`
cores; a figure is the median of the kept runs, or of all runs (flagged noisy) when fewer than 3 were kept.
Off Linux (no /proc) every run counts as quiet.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIN_KEPT = 3
RESULTS = Path(__file__).resolve().parent / "results"
_BUSY = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal (idle and iowait are not busy)
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def busy_jiffies() -> tuple[int, int]:
    """(busy jiffies of the whole machine, jiffies of this process) now; (0, 0) without /proc."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            mine = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0, 0
    return sum(fields[i] for i in _BUSY), int(mine[11]) + int(mine[12])


class Timer:
    """Times named runs and records how many cores other processes used during each."""

    def __init__(self, max_other: float) -> None:
        self.max_other = max_other
        self.runs: dict[str, list[tuple[float, float]]] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        """Run fn once, record (wall seconds, other processes' cores) under name; returns fn's result."""
        busy0, mine0 = busy_jiffies()
        start = time.perf_counter()
        result = fn()
        wall = time.perf_counter() - start
        busy1, mine1 = busy_jiffies()
        other = max(0, (busy1 - busy0) - (mine1 - mine0)) / _TICK / wall
        self.runs.setdefault(name, []).append((wall, other))
        return result

    def kept(self, name: str) -> list[float]:
        """Wall seconds of the runs of name during which others stayed under max_other cores."""
        return [w for w, o in self.runs[name] if o <= self.max_other]

    def median(self, name: str) -> tuple[float, bool]:
        """(median wall seconds of the kept runs, noisy: fewer than 3 were kept, so all runs were used)."""
        kept = self.kept(name)
        noisy = len(kept) < MIN_KEPT
        return statistics.median(kept if not noisy else [w for w, _ in self.runs[name]]), noisy

    def load(self) -> float:
        """Mean cores used by other processes over all runs."""
        every = [o for runs in self.runs.values() for _, o in runs]
        return statistics.mean(every) if every else 0.0


def write_json(figures: dict[str, Any], name: str, path: Path | None = None) -> Path:
    """Write a benchmark's figures to path (default benchmarks/results/<name>.json); returns the path."""
    path = path or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures written to {path}")
    return path
