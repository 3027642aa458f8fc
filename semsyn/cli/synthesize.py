"""semsyn-synthesize: label maps in, images out, one file or a whole folder.

    semsyn-synthesize MODEL INPUT... [--out DIR] [--batch-size B] [--device D] [--dtype float32|bfloat16|float16]
                      [--seed S] [--num K] [--grid] [--instance DIR_OR_GLOB] [--style IMAGE [--style-label PNG]]
                      [--size HxW] [--revision REV]

MODEL is anything `semsyn.create_model` takes (a name, hf-hub:ORG/NAME[@REV], local-dir:PATH, a spec YAML);
weights are loaded (pretrained). Each INPUT is a label PNG, a folder of them or a glob ("maps/*.png"). A label
PNG holds class ids (mode L, P or I; 255 = unknown) or the model's palette colours (RGB, exact colours).
Outputs go to DIR as NAME.png (NAME_s0.png, NAME_s1.png, ... with --num > 1); with one INPUT file and
`--out FILE.png` the image is written to that file. See docs/synthesize.md.
"""

from __future__ import annotations

import argparse
import glob
import inspect
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from semsyn.cli.common import run, setup_logging
from semsyn.errors import LabelError, SemsynError
from semsyn.images import read_label_map

__all__ = ["main", "expand_inputs", "match_instances", "plan_jobs", "make_batches", "randomness", "latents"]

logger = logging.getLogger("semsyn.synthesize")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MAP_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")
DEFAULT_FILE = "synthesized.png"
DEFAULT_DIR = "synthesized"


@dataclass(frozen=True)
class Job:
    """One label map to synthesize: its file, its instance map, its size (H, W) and its output name."""

    label: Path
    instance: Path | None
    size: tuple[int, int]
    name: str


# -- finding the inputs -----------------------------------------------------------------------------


def expand_inputs(patterns: Sequence[str], what: str = "label map") -> list[Path]:
    """Files named by paths, folders (their map files, sorted) and globs, in order, each once.

    Raises:
        LabelError: for a pattern that matches nothing, or a folder with no map files.
    """
    found: list[Path] = []
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in MAP_SUFFIXES and p.is_file())
            if not files:
                raise LabelError(f"{what} folder {path} holds no {'/'.join(MAP_SUFFIXES)} files")
        elif path.is_file():
            files = [path]
        else:
            files = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
            if not files:
                raise LabelError(f"{what} {pattern} matches no file (give a PNG, a folder of them or a glob)")
        found.extend(files)
    unique: dict[Path, Path] = {}
    for file in found:
        unique.setdefault(file.resolve(), file)
    return list(unique.values())


def _map_size(path: Path, what: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, UnidentifiedImageError) as exc:
        raise LabelError(f"{what} {path} cannot be read as an image ({exc}); replace or remove the file") from None


def match_instances(labels: Sequence[Path], instances: Sequence[Path]) -> dict[Path, Path]:
    """Each label map's instance map, by file stem (Cityscapes' `_labelIds` pairs with `_instanceIds`).

    One label map and one instance map pair up whatever their names.

    Raises:
        LabelError: naming a label map that has no instance map.
    """
    if len(labels) == 1 and len(instances) == 1:
        return {labels[0]: instances[0]}
    by_stem = {p.stem: p for p in instances}
    matched = {}
    for label in labels:
        candidates = (label.stem, label.stem.replace("_labelIds", "_instanceIds"))
        hit = next((by_stem[c] for c in candidates if c in by_stem), None)
        if hit is None:
            raise LabelError(
                f"label map {label} has no instance map among the {len(instances)} --instance files (looked for "
                f"{candidates[0]}.png); instance maps pair with label maps by file name"
            )
        matched[label] = hit
    return matched


def plan_jobs(labels: Sequence[Path], instances: dict[Path, Path] | None) -> list[Job]:
    """Jobs in input order; two inputs with the same file stem would write the same output: LabelError."""
    seen: dict[str, Path] = {}
    jobs = []
    for label in labels:
        if label.stem in seen:
            raise LabelError(
                f"label maps {seen[label.stem]} and {label} would both be written as {label.stem}.png; "
                "synthesize them in separate runs (with separate --out folders)"
            )
        seen[label.stem] = label
        size = _map_size(label, "label map")
        instance = instances[label] if instances is not None else None
        if instance is not None and _map_size(instance, "instance map") != size:
            raise LabelError(
                f"instance map {instance} is {'x'.join(map(str, _map_size(instance, 'instance map')))} but its "
                f"label map {label} is {size[0]}x{size[1]} (HxW); a pair must have the same size"
            )
        jobs.append(Job(label, instance, size, label.stem))
    return jobs


def make_batches(jobs: Sequence[Job], batch_size: int) -> list[list[Job]]:
    """Same-size jobs batched together in input order; a size of its own gets a batch of its own."""
    by_size: dict[tuple[int, int], list[Job]] = {}
    for job in jobs:
        by_size.setdefault(job.size, []).append(job)
    return [group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)]


# -- randomness -------------------------------------------------------------------------------------


def randomness(model: Any) -> Literal["latent", "none", "opaque"]:
    """How the generator draws: from a latent z we can draw per sample, not at all, or in a way we cannot split.

    Generators with `use_vae` True and an int `z_dim` (SPADE, CC-FPSE) take z (N, z_dim); drawing each sample's
    z from its own seed keeps a map's images independent of what it is batched with. `use_vae` False, or a
    forward with no `generator=` keyword, draws nothing. Anything else is synthesized one sample per call.
    """
    gen = model.generator
    use_vae = getattr(gen, "use_vae", None)
    if use_vae is True and isinstance(getattr(gen, "z_dim", None), int):
        return "latent"
    if use_vae is False or "generator" not in inspect.signature(gen.forward).parameters:
        return "none"
    return "opaque"


def device_dtype(model: Any) -> tuple[torch.device, torch.dtype]:
    """Where the generator's weights live and their dtype."""
    p = next(model.generator.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)


def latents(model: Any, seeds: Sequence[int]) -> torch.Tensor:
    """z (N, z_dim): sample i drawn on the CPU from seed i alone (the same draw `synthesize(seed=)` makes on CPU)."""
    device, dtype = device_dtype(model)
    z_dim = model.generator.z_dim
    rows = [torch.randn(1, z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.cat(rows).to(device=device, dtype=dtype)


# -- the run ----------------------------------------------------------------------------------------


def parse_size(text: str | None) -> tuple[int, int] | None:
    """`--size HxW` -> (H, W)."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise SemsynError(f"--size {text!r} is not HEIGHTxWIDTH in pixels, e.g. --size 256x512")
    return int(match[1]), int(match[2])


def pick_device(name: str | None) -> torch.device | None:
    """`--device` as a torch.device, refusing devices this machine does not have (one line, not a traceback)."""
    if name is None:
        return None
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise SemsynError(f"--device {name!r} is not a device ({exc}); use cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SemsynError(f"--device {name}: this machine has no CUDA device torch can use; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SemsynError(f"--device {name}: MPS is not available here; use --device cpu")
    return device


@dataclass
class Settings:
    """What every batch needs besides its jobs."""

    out: Path
    single_file: bool
    num: int
    seed: int
    grid: bool
    size: tuple[int, int] | None
    style: Any = None  # a style encoded once (with --style-label), else None
    style_image: Path | None = None


def output_path(settings: Settings, job: Job, k: int) -> Path:
    """Where sample k of a job goes: the --out file, or DIR/NAME.png, or DIR/NAME_s{k}.png with --num > 1."""
    if settings.single_file:
        return settings.out
    return settings.out / (f"{job.name}.png" if settings.num == 1 else f"{job.name}_s{k}.png")


def _load(jobs: Sequence[Job], schema: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    labels = [torch.from_numpy(read_label_map(job.label, schema)) for job in jobs]
    instances = None
    if all(job.instance is not None for job in jobs):
        instances = torch.stack([torch.from_numpy(read_label_map(job.instance, what="instance map")) for job in jobs])
    return torch.stack(labels), instances


def _write(
    model: Any, settings: Settings, jobs: Sequence[Job], label: torch.Tensor, images: torch.Tensor, k: int
) -> None:
    from semsyn.images import label_colors, save_image

    for i, job in enumerate(jobs):
        image = images[i].float().cpu()
        if settings.grid:
            colours = label_colors(label[i], model.labels)
            if colours.shape[-2:] != image.shape[-2:]:
                colours = torch.nn.functional.interpolate(colours, size=image.shape[-2:], mode="nearest")
            image = torch.cat([colours[0], image], dim=-1)
        save_image(image, output_path(settings, job, k))


def synthesize_batch(model: Any, jobs: Sequence[Job], settings: Settings, mode: str, progress: Any) -> None:
    """Every sample of a batch of same-size jobs, written as it is made."""
    label, instance = _load(jobs, model.labels)
    if settings.style_image is None and mode != "opaque":
        for k in range(settings.num):
            z = latents(model, [settings.seed + k] * len(jobs)) if mode == "latent" else None
            images = model.synthesize(label, instance, z=z, seed=settings.seed + k, size=settings.size)
            _write(model, settings, jobs, label, images, k)
            progress.update(len(jobs))
        return
    # One map per call: a style image is encoded with each map, and opaque draws cannot be split per sample.
    for i, job in enumerate(jobs):
        one, one_instance = label[i : i + 1], instance[i : i + 1] if instance is not None else None
        style = settings.style
        if settings.style_image is not None and style is None:
            style = model.encode_style(read_rgb_for(settings.style_image, job.size), one, one_instance)
        for k in range(settings.num):
            image = model.synthesize(one, one_instance, style=style, seed=settings.seed + k, size=settings.size)
            _write(model, settings, [job], one, image, k)
            progress.update(1)


def read_rgb_for(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """The style image as (1, 3, H, W) in [-1, 1] at the size of the label map it is encoded with."""
    from semsyn.images import read_rgb

    return read_rgb(path, size, what="style image")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semsyn-synthesize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="name, hf-hub:ORG/NAME[@REV], local-dir:PATH or spec YAML")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="label PNG files, folders or globs")
    parser.add_argument("--out", help=f"output folder (default {DEFAULT_DIR}/), or a .png file for one input")
    parser.add_argument("--batch-size", type=int, default=8, help="label maps per forward pass (default 8)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cpu)")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="cast the model (default float32)")
    parser.add_argument("--seed", type=int, default=0, help="sample k of every map uses seed + k (default 0)")
    parser.add_argument("--num", type=int, default=1, help="samples per label map (default 1)")
    parser.add_argument("--grid", action="store_true", help="write the label colours beside each image")
    parser.add_argument("--instance", nargs="+", metavar="DIR_OR_GLOB", help="instance maps, paired by file name")
    parser.add_argument("--style", metavar="IMAGE", help="an image whose style the model's encoder copies")
    parser.add_argument("--style-label", metavar="PNG", help="the style image's label map (default: each input's)")
    parser.add_argument("--size", metavar="HxW", help="output size, for generators that render at any size")
    parser.add_argument("--revision", help="Hub branch, tag or commit")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    if args.batch_size < 1 or args.num < 1:
        raise SemsynError(f"--batch-size ({args.batch_size}) and --num ({args.num}) must be at least 1")
    if args.style_label and not args.style:
        raise SemsynError("--style-label names the label map of a --style image; give --style IMAGE too")
    size = parse_size(args.size)
    device = pick_device(args.device)
    labels = expand_inputs(args.inputs)
    instances = match_instances(labels, expand_inputs(args.instance, "instance map")) if args.instance else None
    jobs = plan_jobs(labels, instances)
    out = Path(args.out) if args.out else None
    single_file = len(jobs) == 1 and args.num == 1 and (out is None or out.suffix.lower() == ".png")
    if out is not None and out.suffix.lower() == ".png" and not single_file:
        raise SemsynError(
            f"--out {out} is a file name but there are {len(jobs)} label maps x {args.num} samples; give a folder"
        )
    out = out or Path(DEFAULT_FILE if single_file else DEFAULT_DIR)

    import semsyn

    model = semsyn.create_model(args.model, pretrained=True, revision=args.revision, device=device)
    model.to(dtype=DTYPES[args.dtype])
    for job in jobs:  # fail before the first image, not after an hour: read and check every map first
        read_label_map(job.label, model.labels)
    settings = Settings(out, single_file, args.num, args.seed, args.grid, size)
    if args.style:
        settings.style_image = Path(args.style)
        if args.style_label:
            style_label = torch.from_numpy(read_label_map(args.style_label, model.labels))[None]
            image = read_rgb_for(settings.style_image, tuple(style_label.shape[-2:]))
            settings.style = model.encode_style(image, style_label)
    mode = randomness(model)
    if mode == "none" and args.num > 1 and not args.style:
        logger.warning("this model draws no latent: its %d samples per map will be the same image", args.num)
    if not single_file:
        out.mkdir(parents=True, exist_ok=True)
    _run_batches(model, make_batches(jobs, args.batch_size), settings, mode)
    logger.info("wrote %d images to %s", len(jobs) * args.num, out)
    return 0


def _run_batches(model: Any, batches: list[list[Job]], settings: Settings, mode: str) -> None:
    from tqdm import tqdm

    total = sum(len(b) for b in batches) * settings.num
    with tqdm(total=total, unit="img", desc="synthesize", disable=None, leave=False) as progress:
        for batch in batches:
            try:
                synthesize_batch(model, batch, settings, mode, progress)
            except SemsynError as exc:
                if any(str(job.label) in str(exc) for job in batch):
                    raise
                names = ", ".join(str(job.label) for job in batch[:3]) + (" ..." if len(batch) > 3 else "")
                raise type(exc)(f"synthesizing {names}: {exc}") from None
            except (RuntimeError, NotImplementedError) as exc:
                if "not implemented for" not in str(exc):
                    raise
                device, dtype = device_dtype(model)
                raise SemsynError(
                    f"synthesizing {batch[0].label}: {dtype} is not supported on {device} here ({exc}); "
                    "use --dtype float32 (or bfloat16 on CPU)"
                ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-synthesize")


if __name__ == "__main__":
    raise SystemExit(main())
