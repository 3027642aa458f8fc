"""`make demo`: the main job end to end on an embedded default, with nothing downloaded.

1. train a small SPADE (`hub_configs/spade-synthetic.yaml`, shrunk by the overrides below) on the built-in
   synthetic dataset with `semsyn-train`;
2. start a Hub-compatible server on 127.0.0.1 (semsyn.testing.hub_server, a test aid) and publish the trained
   model to it with `push_to_hub`;
3. load it back with `semsyn.create_model("hf-hub:demo/spade-synthetic", pretrained=True)`, through the real
   huggingface_hub client and a fresh cache;
4. synthesize held-out label maps and write `OUT/demo.png`: colourised label | generated | real, one row each.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from semsyn.cli.common import run, setup_logging

logger = logging.getLogger("semsyn.demo")

SPEC = "spade-synthetic"
REPO = "demo/spade-synthetic"
# Small enough to train on 2 CPU cores in about a minute; still the real recipe (TTUR, hinge, feature matching).
DEMO_OVERRIDES = [
    "generator.ngf=8",
    "generator.cond_norm_params={hidden_channels: 32}",
    "discriminator.ndf=16",
    "train.batch_size=4",
    "train.log_every=25",
    "train.checkpoint_every=0",
]


def _train(out: Path, steps: int) -> Path:
    from semsyn.cli.train import main as train_main

    run_dir = out / "run"
    args = [SPEC, "--out", str(run_dir), "--set", f"train.steps={steps}"]
    for item in DEMO_OVERRIDES:
        args += ["--set", item]
    if train_main(args) != 0:
        raise SystemExit("semsyn-train failed; see the message above")
    return run_dir / "final"


def _grid(model, count: int) -> torch.Tensor:
    from semsyn.data import build_dataset, collate, colorize

    dataset = build_dataset(model.spec, "val")
    batch = collate([dataset[i] for i in range(count)])
    fake = model.synthesize(batch["label"], batch.get("instance"), seed=0)
    colour = colorize(batch["label"], model.labels.num_classes, model.labels.palette).float() / 127.5 - 1
    rows = torch.stack([colour, fake.cpu(), batch["image"]], dim=1)
    return rows.flatten(0, 1)


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="semsyn-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    args = parser.parse_args(argv)
    setup_logging()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import huggingface_hub.constants

    import semsyn
    from semsyn.images import image_grid, save_image
    from semsyn.testing.hub_server import HubServer

    start = time.perf_counter()
    final = _train(out, args.steps)
    logger.info("trained %d steps in %.0f s -> %s", args.steps, time.perf_counter() - start, final)
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # the local test server speaks Git LFS, not Xet
    with HubServer(out / "hub-storage") as hub:
        os.environ["HF_ENDPOINT"] = hub.endpoint
        os.environ["HF_HUB_CACHE"] = str(out / "hf-cache")
        trained = semsyn.create_model(f"local-dir:{final}", pretrained=True, with_discriminator=True)
        commit = trained.push_to_hub(REPO, commit_message="semsyn demo", card={"tags": ["demo"]})
        logger.info("published to %s/%s at commit %s", hub.endpoint, REPO, commit[:12])
        model = semsyn.create_model(f"hf-hub:{REPO}", pretrained=True)
        logger.info("loaded hf-hub:%s back (trained parts: %s)", REPO, ", ".join(sorted(model.trained_parts)))
        grid = image_grid(_grid(model, 4), columns=3)
        # 64 px scenes are small on screen: enlarge x4, nearest, so every pixel stays as generated.
        picture = save_image(torch.nn.functional.interpolate(grid[None], scale_factor=4.0), out / "demo.png")
    print(f"wrote {picture}  (rows: label map | generated | real)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-demo")


if __name__ == "__main__":
    raise SystemExit(main())
