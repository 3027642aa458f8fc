"""Model comparison on data we own: every `*-synthetic` spec trained for the same budget on `synthetic-hard`.

The CC-FPSE ablation table, measured here: each cell is trained with 3 seeds for the same number of steps
and batch size, then scored on the same unseen val label maps by the same `synthetic-unet` segmenter
(trained once on synthetic-hard, cached): mIoU and the segmenter-feature Fréchet distance, as mean ± the
seed-to-seed standard deviation. mIoU saturates on the easy `synthetic` scenes; on `synthetic-hard` every
class has a twin of the same colour told apart only by texture, so the ranking means something.

The cells are the specs `semsyn.list_models("*-synthetic")` finds (new families join by shipping a
`<family>-synthetic` spec), plus the two crossings of the SPADE and CC-FPSE specs' generators and
discriminators (SPADE G x FPSE D, CC G x PatchGAN D) so the table is the ablation's 2 x 2.

    .venv/bin/python benchmarks/quality.py [--steps 300] [--seeds 3] [--num 128] [--quick] [--out table.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import semsyn
from semsyn.data.synthetic import HARD_CLASS_NAMES, HARD_PALETTE
from semsyn.evaluation.segmenters import build_segmenter
from semsyn.training.trainer import Trainer

HARD_DATA = {
    "labels": {
        "num_classes": len(HARD_CLASS_NAMES),
        "dontcare": False,
        "instance_edges": True,
        "names": list(HARD_CLASS_NAMES),
        "palette": [list(c) for c in HARD_PALETTE],
    },
    "data": {"name": "synthetic-hard"},
}


def cells() -> dict[str, semsyn.Spec]:
    """Cell name -> spec (on synthetic-hard): the `*-synthetic` specs and the SPADE / CC-FPSE crossings."""
    specs = {name: semsyn.load_spec(name) for name in semsyn.list_models("*-synthetic")}
    out = {}
    for name, spec in specs.items():
        g, d = spec.data["generator"]["name"], spec.data["discriminator"]["name"]
        out[f"{g} G + {d} D ({name})"] = spec
    if "spade-synthetic" in specs and "ccfpse-synthetic" in specs:
        spade, cc = specs["spade-synthetic"], specs["ccfpse-synthetic"]
        out["spade G + fpse D (crossed)"] = spade.with_overrides({"discriminator": cc.data["discriminator"]})
        out["cc G + patchgan-multiscale D (crossed)"] = cc.with_overrides(
            {"discriminator": spade.data["discriminator"]}
        )
    return {k: v.with_overrides(HARD_DATA) for k, v in out.items()}


def run_cell(spec: semsyn.Spec, seed: int, steps: int, batch: int, num: int, segmenter: torch.nn.Module) -> dict:
    """Train one cell with one seed; its final model's mIoU and segmenter-FD on `num` val maps."""
    spec = spec.with_overrides(
        [
            f"train.steps={steps}",
            f"train.batch_size={batch}",
            f"train.seed={seed}",
            "train.log_every=1000000",
            "train.sample_every=0",
            "train.checkpoint_every=0",
            "train.lr_decay_start_step=null",
        ]
    )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(spec, run_dir, hooks=[])
        trainer.fit()
        model = trainer.final_model()
    seconds = time.perf_counter() - start
    report = semsyn.evaluate(model, None, metrics=["miou", "segmenter-fd"], segmenter=segmenter, num=num, seed=0)
    return {"miou": report["miou"], "segmenter_fd": report["segmenter_fd"], "train_seconds": seconds}


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} ± {std:.2g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per run (the same for every cell)")
    parser.add_argument("--batch", type=int, default=4, help="batch size of every run")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per cell")
    parser.add_argument("--num", type=int, default=128, help="val label maps scored per run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 steps, 2 seeds, 8 maps, a 40-step segmenter")
    parser.add_argument("--only", help="substring of the cell names to run")
    parser.add_argument("--out", help="write the results as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    seg_params = {}
    if args.quick:
        args.steps, args.seeds, args.num = 3, 2, 8
        seg_params = {"train_steps": 40, "train_images": 64, "width": 4}
    table = {k: v for k, v in cells().items() if not args.only or args.only in k}
    first = next(iter(table.values()))
    start = time.perf_counter()
    segmenter = build_segmenter("synthetic-unet", first, **seg_params)
    real = semsyn.evaluate(
        _RealImages(first), None, metrics=["miou-real"], segmenter=segmenter, num=args.num, seed=0
    ).metrics["miou_real"]
    print(
        f"synthetic-hard: segmenter ready in {time.perf_counter() - start:.0f} s; its mIoU on real val images "
        f"{real:.3f}; {args.steps} steps x batch {args.batch}, {args.seeds} seeds, {args.num} val maps",
        flush=True,
    )
    results = {}
    for name, spec in table.items():
        runs = [run_cell(spec, seed, args.steps, args.batch, args.num, segmenter) for seed in range(args.seeds)]
        results[name] = runs
        print(
            f"  {name}: mIoU {_spread([r['miou'] for r in runs])}  segmenter-FD "
            f"{_spread([r['segmenter_fd'] for r in runs])}  ({statistics.fmean(r['train_seconds'] for r in runs):.0f} "
            "s/run)",
            flush=True,
        )
    width = max(len(k) for k in results)
    print(f"\n| {'cell':<{width}} | mIoU (↑)        | segmenter-FD (↓) | train s/run |")
    print(f"|{'-' * (width + 2)}|-----------------|------------------|-------------|")
    for name, runs in results.items():
        seconds = statistics.fmean(r["train_seconds"] for r in runs)
        miou, fd = _spread([r["miou"] for r in runs]), _spread([r["segmenter_fd"] for r in runs])
        print(f"| {name:<{width}} | {miou:<15} | {fd:<16} | {seconds:>11.0f} |")
    print(f"(real images: mIoU {real:.3f}; total {time.perf_counter() - start:.0f} s)")
    if args.out:
        Path(args.out).write_text(json.dumps({"real_miou": real, "args": vars(args), "results": results}, indent=2))
    return 0


class _RealImages(torch.nn.Module):
    """A stand-in 'model' for the real-image row: evaluate() only needs its spec and parameters."""

    def __init__(self, spec: semsyn.Spec) -> None:
        super().__init__()
        self.spec = spec
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def synthesize(self, label: torch.Tensor, instance: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        return torch.zeros(label.shape[0], 3, *label.shape[-2:])


if __name__ == "__main__":
    sys.exit(main())
