"""semsyn-synthesize: label map PNG in, image PNG out.

    semsyn-synthesize SOURCE LABEL.png [--instance INST.png] [--out OUT.png] [--seed N] [--style IMAGE]

SOURCE is anything `semsyn.create_model` takes (a name, hf-hub:ORG/NAME[@REV], local-dir:PATH); weights are
loaded (pretrained). The label PNG holds class ids as pixel values (255 = unknown).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from semsyn.cli.common import run, setup_logging
from semsyn.errors import LabelError

logger = logging.getLogger("semsyn.synthesize")


def read_label_png(path: str | Path) -> torch.Tensor:
    """An integer map (1, H, W) from a single-channel PNG (mode L, P, I or I;16)."""
    from PIL import Image

    try:
        img = Image.open(path)
    except (OSError, FileNotFoundError) as exc:
        raise LabelError(f"cannot read label map {path}: {exc}") from None
    if img.mode not in ("L", "P", "I", "I;16"):
        raise LabelError(f"{path} is a {img.mode} image; a label map is single-channel (mode L, P or I) with class ids")
    return torch.from_numpy(np.asarray(img, dtype=np.int64))[None]


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="semsyn-synthesize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source")
    parser.add_argument("label")
    parser.add_argument("--instance")
    parser.add_argument("--out", default="synthesized.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--style", help="an image whose style the encoder copies")
    parser.add_argument("--revision")
    args = parser.parse_args(argv)
    setup_logging()
    import semsyn
    from semsyn.images import save_image

    model = semsyn.create_model(args.source, pretrained=True, revision=args.revision)
    label = read_label_png(args.label)
    instance = read_label_png(args.instance) if args.instance else None
    style = None
    if args.style:
        from PIL import Image

        rgb = np.asarray(Image.open(args.style).convert("RGB").resize(label.shape[::-1][:2]), dtype=np.float32)
        style = torch.from_numpy(rgb).permute(2, 0, 1)[None] / 127.5 - 1
    image = model.synthesize(label, instance, style=style, seed=args.seed)
    save_image(image, args.out)
    logger.info("wrote %s", args.out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-synthesize")


if __name__ == "__main__":
    raise SystemExit(main())
