"""`make demo`: the main job end to end on an embedded default, with nothing downloaded, and measured.

1. get the synthetic segmenter (`synthetic-unet`, trained with colour augmentation on the train split, about
   a minute on 2 cores; cached in OUT/cache so a second demo reuses it);
2. train a small SPADE (`hub_configs/spade-synthetic.yaml`, its recipe as shipped) on the synthetic scenes
   with `semsyn-train` (a finished OUT/run/final of the same spec is reused);
3. start a Hub-compatible server on 127.0.0.1 (semsyn.testing.hub_server, a test aid) and publish the
   trained model to it with `push_to_hub`;
4. in a fresh process, load it back with `semsyn.create_model("hf-hub:demo/spade-synthetic", pretrained=True)`
   through the real huggingface_hub client and a fresh cache, write `OUT/demo.png` (colourised label |
   generated | real, one row each, held-out maps) and score it: the segmenter's mIoU on the real images,
   on the generated images of the same unseen label maps, and on flat blocks of each class's palette
   colour, side by side, against the targets generated / real >= 0.90 and generated >= flat + 0.10.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from semsyn.cli.common import run, setup_logging

logger = logging.getLogger("semsyn.demo")

SPEC = "spade-synthetic"
REPO = "demo/spade-synthetic"
DEMO_OVERRIDES = ["train.log_every=50", "train.checkpoint_every=0"]
EVAL_MAPS = 256
TARGET_RATIO = 0.90
TARGET_MARGIN = 0.10


def _spec(steps: int | None):  # noqa: ANN202 - a semsyn.Spec
    import semsyn

    spec = semsyn.load_spec(SPEC).with_overrides(DEMO_OVERRIDES)
    return spec.with_overrides([f"train.steps={steps}"]) if steps else spec


def _recipe(spec) -> dict:  # noqa: ANN001 - a semsyn.Spec
    """What a trained run depends on: every section but the Hub record and the prose."""
    return {k: v for k, v in spec.resolved().data.items() if k not in ("pretrained", "description")}


def _train(out: Path, steps: int | None) -> Path:
    from semsyn.cli.train import main as train_main

    run_dir = out / "run"
    final = run_dir / "final"
    spec = _spec(steps).resolved()
    if (final / "spec.yaml").is_file():
        import semsyn

        if _recipe(semsyn.load_spec(str(final / "spec.yaml"))) == _recipe(spec):
            logger.info("reusing the trained model %s (same recipe); delete %s to retrain", final, run_dir)
            return final
        raise SystemExit(f"{run_dir} holds a run of another recipe; delete it or pass another --out")
    args = [SPEC, "--out", str(run_dir)]
    for item in DEMO_OVERRIDES + ([f"train.steps={steps}"] if steps else []):
        args += ["--set", item]
    if train_main(args) != 0:
        raise SystemExit("semsyn-train failed; see the message above")
    return final


def _grid(model, count: int) -> torch.Tensor:  # noqa: ANN001
    from semsyn.data import build_dataset, collate, colorize

    dataset = build_dataset(model.spec, "val")
    batch = collate([dataset[i] for i in range(count)])
    fake = model.synthesize(batch["label"], batch.get("instance"), seed=0)
    colour = colorize(batch["label"], model.labels.num_classes, model.labels.colors).float() / 127.5 - 1
    rows = torch.stack([colour, fake.cpu(), batch["image"]], dim=1)
    return rows.flatten(0, 1)


def _load_and_score(out: Path) -> int:
    """The fresh process: load the published model from the Hub, write the grid, print the three mIoUs."""
    import semsyn
    from semsyn.images import image_grid, save_image

    model = semsyn.create_model(f"hf-hub:{REPO}", pretrained=True)
    logger.info("loaded hf-hub:%s back (trained parts: %s)", REPO, ", ".join(sorted(model.trained_parts)))
    grid = image_grid(_grid(model, 6), columns=3)
    # 64 px scenes are small on screen: enlarge x4, nearest, so every pixel stays as generated.
    picture = save_image(torch.nn.functional.interpolate(grid[None], scale_factor=4.0), out / "demo.png")
    report = semsyn.evaluate(model, None, metrics=["miou-real", "miou", "miou-flat"], num=EVAL_MAPS, seed=0)
    report.save(out / "demo_eval.json")
    m = report.metrics
    ratio = m["miou"] / max(m["miou_real"], 1e-9)
    margin = m["miou"] - m["miou_flat"]
    ok_ratio, ok_margin = ratio >= TARGET_RATIO, margin >= TARGET_MARGIN
    print(f"wrote {picture}  (rows: label map | generated | real)")
    print(f"synthetic-unet mIoU on {report.num} unseen val label maps:")
    print(f"  real images   {m['miou_real']:.3f}")
    print(
        f"  generated     {m['miou']:.3f}   generated / real = {ratio:.3f} (target >= {TARGET_RATIO:.2f}: "
        f"{'met' if ok_ratio else 'MISSED'})"
    )
    print(
        f"  flat colours  {m['miou_flat']:.3f}   generated - flat = {margin:+.3f} (target >= {TARGET_MARGIN:+.2f}: "
        f"{'met' if ok_margin else 'MISSED'})"
    )
    return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="semsyn-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="demo_out", help="output folder")
    parser.add_argument("--steps", type=int, help="training steps (default: the spec's recipe)")
    parser.add_argument("--score-only", action="store_true", help=argparse.SUPPRESS)  # step 4, in a fresh process
    args = parser.parse_args(argv)
    setup_logging()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("SEMSYN_CACHE", str(out / "cache"))
    if args.score_only:
        return _load_and_score(out)
    import huggingface_hub.constants

    import semsyn
    from semsyn.evaluation.segmenters import build_segmenter
    from semsyn.testing.hub_server import HubServer

    start = time.perf_counter()
    build_segmenter("synthetic-unet", _spec(args.steps))  # trained once, then cached for the scoring process
    logger.info("segmenter ready after %.0f s", time.perf_counter() - start)
    final = _train(out, args.steps)
    logger.info("trained after %.0f s -> %s", time.perf_counter() - start, final)
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # the local test server speaks Git LFS, not Xet
    with HubServer(out / "hub-storage") as hub:
        trained = semsyn.create_model(f"local-dir:{final}", pretrained=True, with_discriminator=True)
        env = {
            **os.environ,
            "HF_ENDPOINT": hub.endpoint,
            "HF_HUB_CACHE": str(out / "hf-cache"),
            "HF_HUB_DISABLE_XET": "1",
        }
        os.environ.update({k: env[k] for k in ("HF_ENDPOINT", "HF_HUB_CACHE", "HF_HUB_DISABLE_XET")})
        commit = trained.push_to_hub(REPO, commit_message="semsyn demo", card={"tags": ["demo"]})
        logger.info("published to %s/%s at commit %s", hub.endpoint, REPO, commit[:12])
        scored = subprocess.run(
            [sys.executable, "-m", "semsyn.cli.demo", "--out", str(out), "--score-only"], env=env, check=False
        )
    logger.info("demo done in %.0f s", time.perf_counter() - start)
    (out / "demo_time.json").write_text(json.dumps({"seconds": round(time.perf_counter() - start, 1)}) + "\n")
    return scored.returncode


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-demo")


if __name__ == "__main__":
    raise SystemExit(main())
