"""Make the pictures of docs/style.md: every style operation on a GroupDNet (and morphing on a SPADE-VAE).

    python docs/make_style_pictures.py                       # trains both models briefly, then draws
    python docs/make_style_pictures.py --groupdnet RUN/final --spade-vae RUN/final --out docs/images/style

Without --groupdnet / --spade-vae the models are trained first with semsyn-train (`groupdnet-synthetic` and
docs/specs/spade-vae-synthetic.yaml, --steps generator updates of batch 2 each, plus an L1 reconstruction
term this script registers as a plugin loss) into --work. The script also
measures how local a class edit is (the figures docs/style.md quotes) and writes them to locality.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import semsyn
from semsyn.data.synthetic import SyntheticScenes
from semsyn.images import image_grid, save_image

HERE = Path(__file__).resolve().parent


@semsyn.LOSSES.register("docs-l1")
class ReconstructionL1(nn.Module):
    """Mean absolute error between the fake and the real image (a plugin loss of this script).

    With the encoder's style the generator sees the real image's code, so a reconstruction term makes a
    handful of CPU steps enough for class colours and textures; the specs' GAN recipe needs thousands.
    """

    role = "perceptual"

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        return (fake - real).abs().mean()


def _train(spec: str, out: Path, steps: int) -> Path:
    from semsyn.cli.train import main

    if not (out / "final").is_dir():
        sets = [
            f"train.steps={steps}",
            "train.batch_size=2",
            "train.lr_g=0.003",  # a few steps must move the gain-0.02 init to visible colours
            "train.lr_d=0.001",
            f"train.lr_decay_start_step={steps}",
            "train.sample_every=0",
            "train.log_every=5",
            "losses.l1={name: docs-l1, weight: 10.0}",
        ]
        code = main([spec, "--out", str(out), *(a for s in sets for a in ("--set", s))])
        if code != 0:
            raise SystemExit(f"training {spec} failed (exit {code})")
    return out / "final"


def _colour(label: torch.Tensor, model: semsyn.SynthesisModel) -> torch.Tensor:
    """(N, H, W) integer labels -> (N, 3, H, W) in [-1, 1] with the schema's palette."""
    palette = torch.tensor(model.labels.colors, dtype=torch.float32) / 127.5 - 1
    return palette[label].permute(0, 3, 1, 2)


def _row(*images: torch.Tensor) -> torch.Tensor:
    return torch.cat([im[:1] for im in images], dim=0)


def _save(rows: list[torch.Tensor], path: Path, scale: int = 2) -> None:
    columns = rows[0].shape[0]
    grid = image_grid(torch.cat(rows, dim=0), columns=columns)
    grid = grid if grid.dim() == 4 else grid[None]
    grid = F.interpolate(grid.float(), scale_factor=scale, mode="nearest")
    save_image(grid, path)


def _changes(images: list[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """|image - base| (max over RGB) as grey images, normalised to the largest change of the row (white)."""
    delta = torch.cat([(im[:1] - base[:1]).abs().amax(dim=1, keepdim=True) for im in images])
    return (delta / delta.max().clamp_min(1e-12) * 2 - 1).expand(-1, 3, -1, -1)


def _locality(model, label, instance, style, cls: int, distances=(4, 8, 16)) -> dict:
    """Change of the image when class `cls`'s code is redrawn: inside the class, and beyond d pixels of it."""
    base = model.synthesize(label, instance, style=style)
    changed = model.synthesize(label, instance, style=style.resample_class(cls, seed=123))
    delta = (base - changed).abs().amax(dim=1)  # (N, H, W), max over RGB
    mask = (label == cls).float()[:, None]
    out = {"class": model.labels.class_names[cls], "inside_mean": float(delta[mask[:, 0] > 0].mean())}
    for d in distances:
        near = F.max_pool2d(mask, 2 * d + 1, stride=1, padding=d)[:, 0] > 0  # within d px (chessboard distance)
        far = delta[~near]
        out[f"beyond_{d}px_mean"] = float(far.mean()) if far.numel() else None
        out[f"beyond_{d}px_max"] = float(far.max()) if far.numel() else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groupdnet", help="a trained groupdnet-synthetic model folder (default: train one)")
    parser.add_argument("--spade-vae", help="a trained spade-vae-synthetic model folder (default: train one)")
    parser.add_argument("--steps", type=int, default=30, help="training steps when training here")
    parser.add_argument("--work", default="runs/style-docs", help="where models are trained")
    parser.add_argument("--out", default=str(HERE / "images" / "style"), help="where the pictures go")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work)
    gdn_dir = Path(args.groupdnet) if args.groupdnet else _train("groupdnet-synthetic", work / "groupdnet", args.steps)
    vae_dir = (
        Path(args.spade_vae)
        if args.spade_vae
        else _train(str(HERE / "specs" / "spade-vae-synthetic.yaml"), work / "spade-vae", args.steps)
    )
    gdn = semsyn.create_model(f"local-dir:{gdn_dir}", pretrained=True)
    vae = semsyn.create_model(f"local-dir:{vae_dir}", pretrained=True)

    data = SyntheticScenes(split="val", length=8)
    items = [data[i] for i in range(4)]
    image = torch.stack([it["image"] for it in items])
    label = torch.stack([it["label"] for it in items])[:, 0]
    instance = torch.stack([it["instance"] for it in items])[:, 0]
    one = (label[:1], instance[:1])

    # 1. encode a style and render another layout with it; prior draws beside it
    a = gdn.encode_style(image[1:2], label[1:2], instance[1:2])
    b = gdn.encode_style(image[2:3], label[2:3], instance[2:3])
    priors = [gdn.synthesize(*one, style=gdn.sample_style(seed=s)) for s in (1, 2)]
    _save(
        [
            _row(
                _colour(label[:1], gdn),
                image[1:2],
                gdn.synthesize(*one, style=a),
                image[2:3],
                gdn.synthesize(*one, style=b),
                *priors,
            )
        ],
        out / "encode.png",
    )
    # 2. morphing: GroupDNet and SPADE-VAE, style a -> style b on one layout
    ts = [0.0, 0.25, 0.5, 0.75, 1.0]
    va = vae.encode_style(image[1:2], label[1:2], instance[1:2])
    vb = vae.encode_style(image[2:3], label[2:3], instance[2:3])
    _save(
        [
            _row(*(gdn.synthesize(*one, style=a.interpolate(b, t)) for t in ts)),
            _row(*(vae.synthesize(*one, style=va.interpolate(vb, t)) for t in ts)),
        ],
        out / "morph.png",
    )
    # 3. appearance mixture: style a with one class's code from style b
    classes = [c for c in ("sky", "mountain", "grass", "water") if (label[0] == gdn.labels.class_names.index(c)).any()]
    base = gdn.synthesize(*one, style=a)
    mixed = [gdn.synthesize(*one, style=a.replace_class(c, b)) for c in classes]
    blank = torch.ones_like(base[:1])
    _save(
        [
            _row(_colour(label[:1], gdn), base, *mixed, gdn.synthesize(*one, style=b)),
            _row(blank, blank, *_changes(mixed, base).split(1), blank),
        ],
        out / "mixture.png",
    )
    # 4. semantic manipulation: one class's code redrawn from the prior, four seeds
    target = classes[0]
    redrawn = [gdn.synthesize(*one, style=a.resample_class(target, seed=s)) for s in (1, 2, 3, 4)]
    _save(
        [_row(_colour(label[:1], gdn), base, *redrawn), _row(blank, blank, *_changes(redrawn, base).split(1))],
        out / "manipulation.png",
    )
    # 5. locality: how much a class edit leaks into regions far from the class
    report = [_locality(gdn, *one, a, gdn.labels.class_names.index(c)) for c in classes]
    (out / "locality.json").write_text(json.dumps({"classes": classes, "locality": report}, indent=1) + "\n")
    print(json.dumps(report, indent=1))  # noqa: T201  (a script's output)
    print(f"classes mixed: {classes}; pictures in {out}")  # noqa: T201


if __name__ == "__main__":
    main()
