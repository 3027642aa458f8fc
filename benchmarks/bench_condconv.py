"""CC-FPSE's conditional depthwise convolution: the lean implementation against the official `unfold` formula.

For the cc generator at its official width (ngf 64, COCO-Stuff's 184 label channels, batch 1), at 128x128 and
256x256, measured in the same run with the same weights:

* generator forward + backward time, and the bytes autograd keeps for backward (`saved_tensors_hooks`,
  storages counted once), in total and for the conditional convolutions alone;
* the conditional convolutions at the generator's real shapes, timed alone (forward + backward).

"kept beyond inputs" is what a conditional convolution adds for backward on top of its two inputs (x and the
predicted weights, which both implementations must keep): the official formula's 9x unfolded copy of x.

Usage: python benchmarks/bench_condconv.py [--sizes 128 256] [--repeats 2] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from semsyn_models.ccfpse import CondConvGenerator, CondDepthwiseConv, cond_depthwise_conv3x3

TARGET_MEMORY, TARGET_TIME = 0.2, 1.0
IMPLS = ("lean", "unfold")


class SavedBytes:
    """Bytes of the storages autograd saves, counted once; also those saved inside conditional convolutions."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.total: dict[int, int] = {}
        self.condconv: dict[int, int] = {}
        self.condconv_inputs: set[int] = set()
        self._inside = False
        self._handles = []
        for m in model.modules():
            if isinstance(m, CondDepthwiseConv):
                self._handles.append(m.register_forward_pre_hook(self._enter))
                self._handles.append(m.register_forward_hook(self._leave))

    def _enter(self, module: torch.nn.Module, args: tuple) -> None:
        self._inside = True
        self.condconv_inputs.update(a.untyped_storage().data_ptr() for a in args)

    def _leave(self, module: torch.nn.Module, args: tuple, out: torch.Tensor) -> None:
        self._inside = False

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        self.total[storage.data_ptr()] = storage.nbytes()
        if self._inside:
            self.condconv[storage.data_ptr()] = storage.nbytes()
        return t

    def figures(self) -> dict[str, int]:
        beyond = sum(b for p, b in self.condconv.items() if p not in self.condconv_inputs)
        return {"total": sum(self.total.values()), "condconv": sum(self.condconv.values()), "beyond": beyond}

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _set_impl(model: torch.nn.Module, impl: str) -> None:
    for m in model.modules():
        if isinstance(m, CondDepthwiseConv):
            m.impl = impl


class Clock:
    """Wall-clock and process CPU seconds of a block (CPU time is less disturbed by other processes)."""

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _generator_step(model: CondConvGenerator, sem: torch.Tensor, z: torch.Tensor) -> tuple[Clock, dict[str, int]]:
    model.zero_grad(set_to_none=True)
    meter = SavedBytes(model)
    with Clock() as clock:
        with torch.autograd.graph.saved_tensors_hooks(meter.pack, lambda t: t):
            out = model(sem, z)
        out.square().mean().backward()
    meter.close()
    return clock, meter.figures()


def _condconv_shapes(model: CondConvGenerator, sem: torch.Tensor, z: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, args: shapes.append(tuple(args[0].shape)))
        for m in model.modules()
        if isinstance(m, CondDepthwiseConv)
    ]
    with torch.no_grad():
        model(sem, z)
    for h in handles:
        h.remove()
    return shapes


def _time_ops(shapes: list[tuple[int, ...]], impl: str) -> tuple[float, float]:
    wall = cpu = 0.0
    for n, c, h, w in shapes:
        x = torch.randn(n, c, h, w, requires_grad=True)
        weights = torch.randn(n, 9 * c, h, w, requires_grad=True)
        grad = torch.randn(n, c, h, w)
        with Clock() as clock:
            cond_depthwise_conv3x3(x, weights, impl).backward(grad)
        wall, cpu = wall + clock.wall, cpu + clock.cpu
    return wall, cpu


def _best(measure: Callable[[str], tuple[float, float]], repeats: int) -> dict[str, tuple[float, float]]:
    """(wall, cpu) minima over repeats, the implementations alternating so that machine load hits both alike."""
    best = dict.fromkeys(IMPLS, (float("inf"), float("inf")))
    for _ in range(repeats):
        for impl in IMPLS:
            wall, cpu = measure(impl)
            best[impl] = (min(best[impl][0], wall), min(best[impl][1], cpu))
    return best


def _mib(b: float) -> str:
    return f"{b / 2**20:9.1f} MiB"


def run(size: int, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = CondConvGenerator(184, (size, size), ngf=64, use_vae=True)
    label = torch.randint(0, 183, (1, 1, size, size))
    sem = torch.zeros(1, 184, size, size).scatter_(1, label, 1.0)
    z = torch.randn(1, 256)
    print(f"\n== cc generator, COCO-Stuff (184 label channels), ngf 64, batch 1, {size}x{size} ==")
    saved: dict[str, dict[str, int]] = {}

    def generator_time(impl: str) -> tuple[float, float]:
        _set_impl(model, impl)
        clock, saved[impl] = _generator_step(model, sem, z)
        return clock.wall, clock.cpu

    generator_time("lean")  # warm-up: oneDNN builds its kernels for every conv shape once
    times = _best(generator_time, repeats)
    shapes = _condconv_shapes(model, sem, z)
    _time_ops(shapes, "lean")  # warm-up
    op_times = _best(lambda impl: _time_ops(shapes, impl), repeats)
    lean, ref = saved["lean"], saved["unfold"]
    seconds = lambda v: f"{v:9.3f} s  "  # noqa: E731
    rows = [
        ("generator fwd+bwd wall time", times["lean"][0], times["unfold"][0], seconds),
        ("generator fwd+bwd CPU time", times["lean"][1], times["unfold"][1], seconds),
        ("cond. convs alone, fwd+bwd wall", op_times["lean"][0], op_times["unfold"][0], seconds),
        ("cond. convs alone, fwd+bwd CPU", op_times["lean"][1], op_times["unfold"][1], seconds),
        ("generator saved for backward", lean["total"], ref["total"], _mib),
        ("cond. convs saved for backward", lean["condconv"], ref["condconv"], _mib),
        ("cond. convs kept beyond inputs", lean["beyond"], ref["beyond"], _mib),
    ]
    print(f"{'':34s} {'lean':>13s} {'unfold':>13s}  lean/unfold")
    for name, a, b, fmt in rows:
        print(f"{name:34s} {fmt(a)} {fmt(b)}  {a / b if b else 0.0:8.3f}x")
    print(f"({len(shapes)} conditional convolutions; largest input {max(shapes, key=lambda s: s[1] * s[2] * s[3])})")
    return {
        "time": times["lean"][0] / times["unfold"][0],
        "op_time": op_times["lean"][0] / op_times["unfold"][0],
        "beyond": lean["beyond"] / ref["beyond"],
        "condconv": lean["condconv"] / ref["condconv"],
        "total": lean["total"] / ref["total"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads; 1 is steadier on a shared machine, where every parallel op of the lean "
        "implementation (9 forward, 26 backward) can stall on a busy core",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    ok = True
    for size in args.sizes:
        r = run(size, args.repeats)
        met = r["beyond"] <= TARGET_MEMORY and r["time"] <= TARGET_TIME
        ok &= met
        print(
            f"target (memory kept beyond inputs <= {TARGET_MEMORY}x, generator time <= {TARGET_TIME}x): "
            f"{'met' if met else 'NOT met'}; all saved memory of the cond. convs {r['condconv']:.3f}x, "
            f"of the generator {r['total']:.3f}x"
        )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
