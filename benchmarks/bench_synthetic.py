"""Samples per second of the `synthetic` dataset on one core, at 64x64 and 256x256.

Run: ``.venv/bin/python benchmarks/bench_synthetic.py [--seconds 2]``. The target is at least 500
samples/s at 64x64 on one core, so the demo and the benchmarks never wait on data (exit 1 when missed).
"""

from __future__ import annotations

import argparse
import os
import time

# One core means one BLAS thread too; set before numpy loads its BLAS.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

from semsyn.data.synthetic import SyntheticScenes  # noqa: E402

from _common import write_json  # noqa: E402

TARGET_64 = 500.0


def samples_per_second(size: tuple[int, int], seconds: float) -> float:
    """Items produced per second (including the numpy -> torch conversion), after one warm-up item."""
    ds = SyntheticScenes(image_size=size, length=10**9)
    ds[0]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        ds[count + 1]
        count += 1
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent per size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rates = {}
    for size in ((64, 64), (256, 256)):
        rates[f"{size[0]}x{size[1]}"] = rate = samples_per_second(size, args.seconds)
        print(f"synthetic {size[0]}x{size[1]}: {rate:8.1f} samples/s (1 core)")
    met = rates["64x64"] >= TARGET_64
    print(f"target (>= {TARGET_64:.0f} samples/s at 64x64) {'met' if met else 'NOT met'}")
    write_json({"samples_per_second": rates, "target_met": met}, "synthetic")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
