"""Render one synthetic label map with a trained PosGen at 1x, 2x and 4x, and measure the 4x render's memory.

    semsyn-train posgen-synthetic --out runs/posgen-synthetic --set train.steps=700
    python docs/posgen_scales.py local-dir:runs/posgen-synthetic/final --out docs/posgen_scales.png
    python docs/posgen_scales.py --memory          # peak memory of posgen-coco renders of a 256x256 map

The picture shows the colourised label map, then the 1x, 2x and 4x renders, all displayed at the 4x size
(nearest upscaling, so every rendered pixel is visible as a block). The layout figure recovers labels from
each render by the nearest per-class mean colour of the 1x render (the mean RGB of the 1x render over each
class's pixels) and compares them with the input map nearest-upsampled to the render's size.

Peak memory is the resident-set high-water mark (`resource.getrusage(...).ru_maxrss`) of a fresh Python
process per configuration: one baseline read after the model is built and the label map made, one after
the render; each configuration runs under glibc's default malloc and with a fixed mmap threshold (see
`memory_table`). torch allocates outside Python's allocator, so tracemalloc cannot see it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

import torch
import torch.nn.functional as F

# (scale, tile_pixels) of each memory measurement; tile 0 renders every pixel in one pass.
MEMORY_CASES = ((1, 16384), (4, 16384), (4, 4096), (4, 65536), (2, 0))
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)}  # glibc: blocks >= 128 KiB always mmapped, freed at once


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_one(scale: int, tile_pixels: int) -> dict[str, float]:
    """In this (fresh) process: build posgen-coco, render a 256x256 map at `scale`, return the memory figures."""
    import semsyn

    torch.set_num_threads(1)
    model = semsyn.create_model("posgen-coco", generator={"tile_pixels": tile_pixels})
    label = torch.randint(0, 182, (1, 256, 256), generator=torch.Generator().manual_seed(0))
    before = _maxrss_mib()
    out = model.synthesize(label, size=(256 * scale, 256 * scale))
    after = _maxrss_mib()
    return {"scale": scale, "tile_pixels": tile_pixels, "output": list(out.shape), "before": before, "peak": after}


def _measure_in_subprocess(scale: int, tile: int, env: dict[str, str]) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--measure-one", str(scale), str(tile)]
    run = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env})
    return json.loads(run.stdout.splitlines()[-1])


def memory_table() -> str:
    """A markdown table of every MEMORY_CASES measurement, each in its own subprocess, under two mallocs.

    glibc's default malloc raises its mmap threshold as large blocks are freed, then serves later blocks
    from a heap it does not give back, so the default column also counts heap fragmentation; a fixed
    threshold (MALLOC_MMAP_THRESHOLD_) returns every large tensor to the system when it is freed, so that
    column is close to the tensors really alive at the peak.
    """
    rows = [
        "| render of a 256x256 map | tile_pixels | peak RSS, default malloc (MiB) | over the built model | "
        "peak RSS, fixed mmap threshold (MiB) | over the built model |",
        "|---|---|---|---|---|---|",
    ]
    for scale, tile in MEMORY_CASES:
        default = _measure_in_subprocess(scale, tile, {})
        fixed = _measure_in_subprocess(scale, tile, FIXED_MMAP)
        h, w = default["output"][2:]
        rows.append(
            f"| {scale}x ({h}x{w}) | {tile or 'all at once'} | {default['peak']:.0f} | "
            f"{default['peak'] - default['before']:.0f} | {fixed['peak']:.0f} | {fixed['peak'] - fixed['before']:.0f} |"
        )
    return "\n".join(rows)


def layout_agreement(render: torch.Tensor, label: torch.Tensor, prototypes: torch.Tensor) -> float:
    """Share of pixels whose nearest prototype colour's class is the nearest-upsampled input label."""
    size = render.shape[-2:]
    upsampled = F.interpolate(label[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()
    present = prototypes[:, 0].isfinite().nonzero()[:, 0]
    dist = torch.cdist(render.permute(0, 2, 3, 1).flatten(1, 2), prototypes[present][None])
    recovered = present[dist.argmin(-1)].view(label.shape[0], *size)
    return (recovered == upsampled).float().mean().item()


def class_means(render: torch.Tensor, label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, 3) mean colour of each class in a render at the label map's size; NaN for absent classes."""
    pixels, classes = render.permute(0, 2, 3, 1).reshape(-1, 3), label.reshape(-1)
    sums = torch.zeros(num_classes, 3).index_add_(0, classes, pixels)
    counts = torch.bincount(classes, minlength=num_classes)[:, None].float()
    return sums / counts  # 0 / 0 = NaN marks absent classes


def picture(source: str, out: str, index: int, seed: int) -> dict[str, float]:
    """Write the 1x/2x/4x picture of one validation map; returns the layout agreement at each scale."""
    import semsyn
    from semsyn.data.synthetic import SyntheticScenes
    from semsyn.images import image_grid, save_image

    model = semsyn.create_model(source, pretrained=True)
    h, w = model.spec.image_size
    item = SyntheticScenes(image_size=(h, w), split="val", length=index + 1)[index]
    label, instance = item["label"], item["instance"]
    renders = {k: model.synthesize(label, instance, seed=seed, size=(h * k, w * k)) for k in (1, 2, 4)}
    prototypes = class_means(renders[1], label, model.labels.num_classes)
    agreement = {f"{k}x": layout_agreement(r, label, prototypes) for k, r in renders.items()}
    colours = torch.tensor(model.labels.colors, dtype=torch.float32) / 127.5 - 1
    tiles = [colours[label[0]].permute(2, 0, 1)[None]] + list(renders.values())
    shown = torch.cat([F.interpolate(t, size=(4 * h, 4 * w), mode="nearest") for t in tiles])
    save_image(image_grid(shown, columns=4, pad=4), out)
    return agreement


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="a trained posgen-synthetic (local-dir:RUN/final, hf-hub:...)")
    parser.add_argument("--out", default="docs/posgen_scales.png")
    parser.add_argument("--index", type=int, default=0, help="which validation map of the synthetic dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", action="store_true", help="measure the peak memory of posgen-coco renders")
    parser.add_argument("--measure-one", nargs=2, type=int, metavar=("SCALE", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_one:
        print(json.dumps(measure_one(*args.measure_one)))
        return 0
    if args.model:
        agreement = picture(args.model, args.out, args.index, args.seed)
        print(f"wrote {args.out}; layout agreement (per-class mean colours of the 1x render): {agreement}")
    if args.memory:
        print(memory_table())
    if not (args.model or args.memory):
        parser.error("give a MODEL to render, --memory, or both")
    return 0


if __name__ == "__main__":
    sys.exit(main())
