"""`semsyn-eval MODEL`: synthesize a split's label maps with fixed seeds and report mIoU, pixel accuracy and FID.

    semsyn-eval local-dir:runs/x/final                      # the model's own data, val split
    semsyn-eval spade-synthetic --data synthetic-hard.yaml --num 256 --metrics miou,miou-real,segmenter-fd
    semsyn-eval hf-hub:org/spade-cityscapes --data spade-cityscapes --segmenter my-drn --fid-stats city.safetensors

Prints a table and writes `--out report.json`. Metrics default to mIoU and the segmenter-feature Fréchet
distance when the data has a default segmenter, plus FID when torch-fidelity and the Inception weights
are installed (see docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from semsyn.cli.common import run, setup_logging

logger = logging.getLogger("semsyn.eval")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="semsyn-eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("model", help="model source: a hub_configs name, hf-hub:org/name, local-dir:PATH, or a spec YAML")
    p.add_argument("--data", help="spec name or YAML whose data section to evaluate on (default: the model's)")
    p.add_argument("--split", default="val", choices=("train", "val"), help="split to evaluate (default val)")
    p.add_argument("--num", type=int, help="images to evaluate (default: the whole split)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    p.add_argument("--metrics", help="comma-separated metric names (default: see above)")
    p.add_argument("--segmenter", help="registered segmenter name (default: the data's, e.g. synthetic-unet)")
    p.add_argument(
        "--segmenter-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a segmenter constructor argument, parsed as YAML (repeatable), e.g. weights=deeplab.pth",
    )
    p.add_argument("--fid-stats", help="real-image Inception statistics file (made when missing or stale)")
    p.add_argument("--inception-weights", help="local FID Inception weights file (default: torch's hub cache)")
    p.add_argument("--seed", type=int, default=0, help="synthesis seed of the first batch")
    p.add_argument("--no-pretrained", action="store_true", help="evaluate freshly initialised weights")
    p.add_argument("--out", help="write the JSON report here")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _segmenter_params(items: Sequence[str]) -> dict[str, object]:
    from semsyn.errors import EvaluationError
    from semsyn.spec import load_yaml

    params: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EvaluationError(f"--segmenter-param {item!r} is not KEY=VALUE (e.g. weights=deeplab.pth)")
        params[key.strip()] = load_yaml(value)
    return params


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    import torch

    import semsyn

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = semsyn.create_model(args.model, pretrained=not args.no_pretrained, device=device)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    report = semsyn.evaluate(
        model,
        args.data,
        metrics=metrics,
        segmenter=args.segmenter,
        segmenter_params=_segmenter_params(args.segmenter_param),
        split=args.split,
        num=args.num,
        batch_size=args.batch_size,
        device=device,
        seed=args.seed,
        fid_stats=args.fid_stats,
        inception_weights=args.inception_weights,
        progress=sys.stderr.isatty(),
    )
    print(report.table())
    if args.out:
        report.save(args.out)
        logger.info("wrote %s", args.out)
    else:
        logger.debug("%s", json.dumps(report.to_dict()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-eval")


if __name__ == "__main__":
    raise SystemExit(main())
