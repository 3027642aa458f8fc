"""What `import semsyn` costs beyond `import torch`, measured in fresh interpreters in the same run.

Prints the median wall time of: `import torch`, `import semsyn`, and `import semsyn` + the first registry
lookup (which loads the plugins, i.e. the built-in zoo). Target: `import semsyn` within 0.3 s of torch
(measured in one process after `import torch`), and neither timm nor torchvision imported (exit 1 when
either is missed).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from _common import write_json

TARGET_MARGINAL_S = 0.3
CASES = {
    "import torch": "import torch",
    "import semsyn": "import semsyn",
    "import semsyn + plugins": "import semsyn; semsyn.list_components()",
}


def measure(code: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


MARGINAL = (
    "import time; import torch; t0 = time.perf_counter(); import semsyn; t1 = time.perf_counter(); "
    "semsyn.list_components(); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
)


def marginal(repeats: int) -> tuple[float, float]:
    """In one process after `import torch`: seconds for `import semsyn`, then for loading the plugins."""
    runs = [
        tuple(
            map(
                float,
                subprocess.run(
                    [sys.executable, "-c", MARGINAL], capture_output=True, text=True, check=True
                ).stdout.split(),
            )
        )
        for _ in range(repeats)
    ]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main(repeats: int = 5) -> None:
    measure("import torch", 1)  # warm the file cache
    results = {name: measure(code, repeats) for name, code in CASES.items()}
    base = results["import torch"]
    for name, seconds in results.items():
        print(
            f"{name:<26} {seconds * 1000:7.0f} ms   {seconds / base:5.2f}x torch   (+{(seconds - base) * 1000:.0f} ms)"
        )
    own, plugins = marginal(repeats)
    print(
        f"after torch is imported: import semsyn {own * 1000:.0f} ms, first lookup (zoo + datasets) "
        f"{plugins * 1000:.0f} ms"
    )
    leaked = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, semsyn; semsyn.list_components(); "
            "print([m for m in ('timm', 'torchvision') if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"heavy modules imported by semsyn: {leaked}")
    met = own <= TARGET_MARGINAL_S and leaked == "[]"
    verdict = "met" if met else "NOT met"
    print(f"target (import semsyn <= {TARGET_MARGINAL_S} s after torch, no timm / torchvision) {verdict}")
    figures = {"median_s": results, "semsyn_after_torch_s": own, "plugins_s": plugins, "heavy_modules": leaked}
    write_json({**figures, "target_met": met}, "import")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
