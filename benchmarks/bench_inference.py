"""Eval forward: the plain path against semsyn's inference path (fp32 and bf16), beside the hardware.

For the SPADE and CC generators of `spade-coco` and `ccfpse-coco` (official widths, COCO-Stuff's 184 label
channels, batch 1) and their discriminators, in one process with the same weights and inputs:

* `plain`: eval forward under `torch.no_grad` inside `semsyn.inference.reference_path()` (today's code);
* `fast`: eval forward under `torch.inference_mode` (cached spectral norm, SPADE's fused modulation, its
  label-map convs from the binary map's codes), fp32;
* `bf16`: the fast path on a bfloat16 copy of the model (generators only; SPADE blocks channels-last);
* `train`: train-mode forward + backward of an fp32 copy (reported with the bytes autograd saves for
  backward and, on CUDA, the peak memory; no target).

Every variant runs in each round, in turn, so load drift hits all alike; each run is kept only when other
processes used less than `--max-other` cores during it (from /proc/stat's busy jiffies minus this process's
own, read around the run); a job shorter than MIN_RUN_SECONDS is called several times per run and its time
reported per call. Figures are medians of kept runs; a variant with fewer than 3 kept runs falls back
to all its runs and is flagged `noisy`. FLOPs come from `torch.utils.flop_counter`; achieved FLOP/s is set
against a plain stack of 3x3 convs (128 channels at the image size) of the same FLOPs, timed in the same
rounds (the faster of NCHW and channels-last). The generators are calibrated first (batch-norm statistics
from train-mode forwards, conv_img scaled so the image spans [-1, 1]) so that PSNR of bf16 against fp32 is
taken on an image, not on the near-zero output of a fresh initialisation. Each generator also runs once on a
float64 copy of its weights (plain path): how far the fp32 images, plain and fast, are from it is printed,
and the fp32 equality target reads it (FP32_EQUAL below).

Usage: python benchmarks/bench_inference.py [--quick] [--size 256] [--rounds 5] [--json PATH] [--compile]
    [--device cuda]
Exit status 1 when a target below is not met.
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import semsyn
from semsyn.inference import bf16_supported, reference_path

from _common import Timer, write_json

SPEEDUP_SPADE, NO_SLOWER, BF16_SPEEDUP, PSNR_DB = 1.25, 0.95, 1.8, 40.0
# fp32: the fast path within FP32_EQUAL of the plain path, or, where the plain path is itself farther than that
# from the exact image, no more than FP32_EQUAL farther from it than the plain path is (the float64 run of the
# same weights standing in for exact). The first implies the second; see docs/performance.md, "fp32 equality".
FP32_EQUAL = 1e-5
# A timed run repeats a job shorter than this until it lasts about as long (a 0.02 s discriminator call, timed
# once, is at the mercy of every scheduler hiccup); times are reported per call.
MIN_RUN_SECONDS = 0.5
LABEL_CHANNELS = 184


def _semantics(size: int, seed: int = 0, batch: int = 1, device: str = "cpu") -> torch.Tensor:
    # Blocky regions, like a real label map (a per-pixel random map would be all edges).
    blocks = torch.randint(0, LABEL_CHANNELS - 1, (batch, 1, 8, 8), generator=torch.Generator().manual_seed(seed))
    label = nn.functional.interpolate(blocks.float(), size=(size, size), mode="nearest").long()
    return torch.zeros(batch, LABEL_CHANNELS, size, size).scatter_(1, label, 1.0).to(device)


@torch.no_grad()
def _calibrate(gen: nn.Module, sem: torch.Tensor, z: torch.Tensor | None) -> None:
    """Batch-norm statistics from train-mode forwards on other maps, then conv_img scaled to a pre-tanh std of 0.8."""
    norms = [m for m in gen.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    gen.train()
    for seed in range(1, 3):  # statistics over 8 other label maps, as a trained model's are over a dataset
        batch = _semantics(sem.shape[-1], seed, batch=4, device=sem.device)
        zs = None if z is None else torch.randn(4, z.shape[1], generator=torch.Generator().manual_seed(seed))
        gen(batch, None if zs is None else zs.to(sem.device))
    gen.eval()
    for m in norms:
        m.momentum = 0.1
    captured: list[torch.Tensor] = []
    handle = gen.conv_img.register_forward_hook(lambda _m, _a, out: captured.append(out))
    gen(sem, z)
    handle.remove()
    scale = 0.8 / captured[0].std().clamp_min(1e-12)
    gen.conv_img.weight.mul_(scale)
    gen.conv_img.bias.mul_(scale)


@torch.no_grad()
def _float64_image(case: dict[str, Any]) -> torch.Tensor:
    """The plain path's output on a float64 copy of the generator, in float32: the fp32 paths' yardstick."""
    model = copy.deepcopy(case["model"]).double()
    with reference_path():
        out = model(*(a.double() if a is not None else None for a in case["args"]))
    return out.float()


def _flops(fn: Callable[[], Any]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        fn()
    return counter.get_total_flops()


def _conv_stack(flops: int, size: int) -> tuple[nn.Module, int]:
    """A stack of 3x3 convs, 128 channels at size x size, with about `flops` FLOPs; and its exact FLOPs."""
    per = 2 * 128 * 128 * 9 * size * size
    layers = max(1, round(flops / per))
    stack = nn.Sequential(*[nn.Conv2d(128, 128, 3, padding=1) for _ in range(layers)]).eval()
    return stack, layers * per


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.float() - b.float()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)  # images span [-1, 1]: peak-to-peak 2


def _cases(size: int, device: str) -> dict[str, dict[str, Any]]:
    """name -> {model, args, kind} for the two generators and their discriminators."""
    sem = _semantics(size, device=device)
    cases: dict[str, dict[str, Any]] = {}
    for family, spec in (("spade", "spade-coco"), ("cc", "ccfpse-coco")):
        torch.manual_seed(0)
        model = semsyn.create_model(spec, with_discriminator=True, image_size=[size, size], device=device)
        gen, disc = model.generator, model.discriminator.eval()
        z = torch.randn(1, gen.z_dim, generator=torch.Generator().manual_seed(0)).to(device) if gen.use_vae else None
        _calibrate(gen, sem, z)
        with torch.no_grad():
            image = gen(sem, z)
        cases[f"{family} G"] = {"model": gen, "args": (sem, z), "kind": "generator"}
        cases[f"{spec.split('-')[0]} D ({model.spec.data['discriminator']['name']})"] = {
            "model": disc,
            "args": (image, sem),
            "kind": "discriminator",
        }
    return cases


def _variants(case: dict[str, Any], bf16: bool) -> dict[str, Callable[[], Any]]:
    model, args = case["model"], case["args"]

    def plain() -> Any:
        with torch.no_grad(), reference_path():
            return model(*args)

    def fast() -> Any:
        with torch.inference_mode():
            return model(*args)

    out = {"plain": plain, "fast": fast}
    if bf16 and case["kind"] == "generator":
        low = copy.deepcopy(model).to(torch.bfloat16)
        low_args = tuple(a.to(torch.bfloat16) if a is not None else None for a in args)

        def bf16_fast() -> Any:
            with torch.inference_mode():
                return low(*low_args)

        out["bf16"] = bf16_fast
    return out


def _train_step(case: dict[str, Any]) -> tuple[Callable[[], Any], nn.Module]:
    """Train-mode forward + backward of a copy of the case's network (its own batch-norm statistics and
    spectral-norm vectors move, not the eval copy's); returns the job and the copy."""
    model = copy.deepcopy(case["model"]).train()
    args = case["args"]

    def step() -> Any:
        model.zero_grad(set_to_none=True)
        out = model(*args)
        loss = out.square().mean() if case["kind"] == "generator" else sum(t.mean() for t in out.logits)
        loss.backward()

    return step, model


def _saved_bytes(model: nn.Module, step: Callable[[], Any]) -> int:
    """Bytes of the storages autograd saves for backward in one step (each once; parameters left out)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(b for p, b in saved.items() if p not in params)


def _peak_bytes(device: str, step: Callable[[], Any]) -> int | None:
    """Peak CUDA memory allocated during one step (None on other devices)."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device)


def _synced(device: str, fn: Callable[[], Any]) -> Callable[[], Any]:
    """fn, then a wait for the device's queued work (so that a CUDA timing covers the work, not its launch)."""
    if torch.device(device).type != "cuda":
        return fn

    def run() -> Any:
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def _repeats(fn: Callable[[], Any]) -> int:
    """How many calls of fn (warmed up) make a run of about MIN_RUN_SECONDS; 1 when one call is that long."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    return 1 if once >= MIN_RUN_SECONDS else min(100, math.ceil(MIN_RUN_SECONDS / max(once, 1e-4)))


def _repeated(fn: Callable[[], Any], times: int) -> Callable[[], Any]:
    if times == 1:
        return fn

    def run() -> Any:
        for _ in range(times):
            out = fn()
        return out

    return run


def measure(size: int, rounds: int, max_other: float, try_compile: bool, device: str = "cpu") -> dict[str, Any]:
    """Every case and variant at size x size; returns the figures (also printed as a table)."""
    cases = _cases(size, device)
    bf16 = bf16_supported(device)
    timer = Timer(max_other)
    jobs: dict[str, Callable[[], Any]] = {}
    results: dict[str, Any] = {}
    for name, case in cases.items():
        with reference_path():
            flops = _flops(lambda c=case: c["model"](*c["args"]))
        variants = _variants(case, bf16)
        outs = {v: fn() for v, fn in variants.items()}  # warm-up: oneDNN builds its kernels once per shape
        first = outs["plain"].image if hasattr(outs["plain"], "image") else outs["plain"]
        row: dict[str, Any] = {"flops": flops, "params": sum(p.numel() for p in case["model"].parameters())}
        if case["kind"] == "generator":
            row["max_abs_fast_vs_plain"] = (outs["fast"] - first).abs().max().item()
            exact = _float64_image(case)
            row["max_abs_plain_vs_float64"] = (first - exact).abs().max().item()
            row["max_abs_fast_vs_float64"] = (outs["fast"] - exact).abs().max().item()
            if "bf16" in outs:
                row["psnr_bf16_db"] = _psnr(outs["bf16"], outs["fast"])
        train, train_model = _train_step(case)
        train()  # warm-up
        row["train_saved_bytes"] = _saved_bytes(train_model, train)
        row["train_peak_bytes"] = _peak_bytes(device, train)
        variants["train"] = train
        results[name] = row
        jobs.update({f"{name}|{v}": _synced(device, fn) for v, fn in variants.items()})
        if case["kind"] == "generator":
            for layout in (torch.contiguous_format, torch.channels_last):
                stack, stack_flops = _conv_stack(flops, size)
                stack = stack.to(device, memory_format=layout)
                x = torch.randn(1, 128, size, size, device=device).contiguous(memory_format=layout)

                def run_stack(s: nn.Module = stack, x: torch.Tensor = x) -> Any:
                    with torch.inference_mode():
                        return s(x)

                run_stack()
                key = "channels_last" if layout == torch.channels_last else "nchw"
                jobs[f"{name}|stack-{key}"] = _synced(device, run_stack)
                row[f"stack_flops_{key}"] = stack_flops
    if try_compile:
        gen = cases["spade G"]
        compiled = torch.compile(gen["model"])
        start = time.perf_counter()
        with torch.inference_mode():
            compiled(*gen["args"])
        results["spade G"]["compile_seconds"] = time.perf_counter() - start

        def run_compiled() -> Any:
            with torch.inference_mode():
                return compiled(*gen["args"])

        jobs["spade G|compiled"] = _synced(device, run_compiled)
    # Train steps are long enough as they are (and the slowest jobs to run once more).
    repeats = {key: 1 if key.endswith("|train") else _repeats(fn) for key, fn in jobs.items()}
    jobs = {key: _repeated(fn, repeats[key]) for key, fn in jobs.items()}
    for _ in range(rounds):
        for key, fn in jobs.items():
            timer.run(key, fn)
    for key in jobs:
        name, variant = key.split("|")
        seconds, noisy = timer.median(key)
        results[name][f"{variant}_s"] = seconds / repeats[key]
        results[name][f"{variant}_noisy"] = noisy
        results[name][f"{variant}_runs"] = [wall / repeats[key] for wall, _ in timer.runs[key]]
        results[name][f"{variant}_calls_per_run"] = repeats[key]
    for row in results.values():
        for variant in ("plain", "fast", "bf16", "compiled"):
            if f"{variant}_s" in row:
                row[f"{variant}_gflops"] = row["flops"] / row[f"{variant}_s"] / 1e9
        stacks = [
            row[f"stack_flops_{k}"] / row[f"stack-{k}_s"] for k in ("nchw", "channels_last") if f"stack-{k}_s" in row
        ]
        if stacks:
            row["stack_gflops"] = max(stacks) / 1e9
    return {"size": size, "rounds": rounds, "device": device, "load_other_cores": timer.load(), "results": results}


def report(figures: dict[str, Any]) -> list[str]:
    """Print the table; return the targets not met."""
    size, results = figures["size"], figures["results"]
    print(f"\n== eval forward, batch 1, {size}x{size}, {torch.get_num_threads()} threads, torch {torch.__version__} ==")
    print(f"other processes used {figures['load_other_cores']:.2f} cores on average during the runs")
    head = f"{'network':30s}{'GFLOP':>8s}{'plain s':>9s}{'fast s':>9s}{'bf16 s':>9s}"
    print(head + f"{'fast/plain':>11s}{'bf16/fast':>10s}{'% stack':>8s}{'PSNR dB':>8s}  max|fast-plain|")
    failed: list[str] = []
    for name, row in results.items():
        speed = row["plain_s"] / row["fast_s"]
        bf16 = row["fast_s"] / row["bf16_s"] if "bf16_s" in row else None
        share = 100 * row["fast_gflops"] / row["stack_gflops"] if "stack_gflops" in row else None
        noisy = " (noisy)" if any(v for k, v in row.items() if k.endswith("_noisy") and k != "train_noisy") else ""
        print(
            f"{name:30s}{row['flops'] / 1e9:8.1f}{row['plain_s']:9.3f}{row['fast_s']:9.3f}"
            + (f"{row['bf16_s']:9.3f}" if "bf16_s" in row else f"{'-':>9s}")
            + f"{speed:10.2f}x"
            + (f"{bf16:9.2f}x" if bf16 else f"{'-':>10s}")
            + (f"{share:7.0f}%" if share else f"{'-':>8s}")
            + (f"{row['psnr_bf16_db']:8.1f}" if "psnr_bf16_db" in row else f"{'-':>8s}")
            + (f"  {row['max_abs_fast_vs_plain']:.1e}" if "max_abs_fast_vs_plain" in row else "")
            + noisy
        )
        by_round = ", ".join(f"{p / f:.2f}" for p, f in zip(row["plain_runs"], row["fast_runs"], strict=True))
        print(f"{'':30s}fast/plain by round: {by_round}")
        if "compiled_s" in row:
            print(
                f"{'':30s}torch.compile: {row['compiled_s']:.3f} s ({row['plain_s'] / row['compiled_s']:.2f}x "
                f"plain), first call {row['compile_seconds']:.0f} s"
            )
        if "stack_gflops" in row:
            print(
                f"{'':30s}conv stack of the same FLOPs: {row['stack_gflops']:.0f} GFLOP/s; fast path "
                f"{row['fast_gflops']:.0f}, plain {row['plain_gflops']:.0f}"
            )
        if name.startswith("spade G") and speed < SPEEDUP_SPADE:
            failed.append(f"{name}: fast {speed:.2f}x plain < {SPEEDUP_SPADE}x")
        if speed < NO_SLOWER:
            failed.append(f"{name}: fast {speed:.2f}x plain < {NO_SLOWER}x (no slower)")
        if bf16 is not None and bf16 < BF16_SPEEDUP:
            failed.append(f"{name}: bf16 {bf16:.2f}x fast fp32 < {BF16_SPEEDUP}x (bf16 speed)")
        if row.get("psnr_bf16_db", math.inf) < PSNR_DB:
            failed.append(f"{name}: bf16 PSNR {row['psnr_bf16_db']:.1f} dB < {PSNR_DB} dB")
        if "max_abs_fast_vs_plain" in row:
            to_plain, plain_err, fast_err = (
                row[f"max_abs_{k}"] for k in ("fast_vs_plain", "plain_vs_float64", "fast_vs_float64")
            )
            print(f"{'':30s}fp32 from a float64 run of the same weights: plain {plain_err:.1e}, fast {fast_err:.1e}")
            if to_plain > FP32_EQUAL and fast_err > plain_err + FP32_EQUAL:
                failed.append(
                    f"{name}: fp32 fast path differs from plain by {to_plain:.1e} > {FP32_EQUAL:.0e}, and is "
                    f"{fast_err:.1e} from float64 against plain's {plain_err:.1e} (more than {FP32_EQUAL:.0e} worse)"
                )
    print(f"\n== train forward + backward (train mode, fp32), batch 1, {size}x{size} ==")
    print(f"{'network':30s}{'params M':>9s}{'train s':>9s}{'saved MiB':>11s}{'peak MiB':>10s}")
    for name, row in results.items():
        peak = row["train_peak_bytes"]
        print(
            f"{name:30s}{row['params'] / 1e6:9.1f}{row['train_s']:9.3f}{row['train_saved_bytes'] / 2**20:11.1f}"
            + (f"{peak / 2**20:10.1f}" if peak is not None else f"{'-':>10s}")
            + (" (noisy)" if row.get("train_noisy") else "")
        )
    print("saved: storages autograd keeps for backward, each once, parameters left out; peak: CUDA only")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64x64 and at most 5 rounds (make bench)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-other", type=float, default=0.2, help="discard runs where others used more cores")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="default benchmarks/results/inference-<size>.json")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the SPADE generator")
    parser.add_argument("--skip-targets", nargs="*", default=[], help="targets reported but not enforced, by text")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    size, rounds = (64, max(3, min(args.rounds, 5))) if args.quick else (args.size, args.rounds)
    figures = measure(size, rounds, args.max_other, args.compile, args.device)
    failed = report(figures)
    figures["targets_not_met"] = failed
    write_json(figures, f"inference-{size}", args.json)
    for line in failed:
        print(f"target NOT met: {line}")
    # --quick (make bench) promises the SPADE speed-up, bf16's PSNR and fp32 equality. "No slower" for the
    # networks whose eval path only skips work is within this shared machine's noise at 64 px, and bf16's
    # 1.8x is a 256 px target (at 64 px fixed costs dominate): both reported, not enforced (performance.md).
    skipped = [*args.skip_targets, *(("(no slower)", "(bf16 speed)") if args.quick else ())]
    enforced = [f for f in failed if not any(s in f for s in skipped)]
    raise SystemExit(1 if enforced else 0)


if __name__ == "__main__":
    main()
