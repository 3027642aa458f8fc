"""Take the screenshots of docs/app.md: paint a synthetic scene in semsyn-app and capture the page.

    python docs/app_screenshots.py [--model SOURCE] [--steps 300] [--out docs/images]

Without --model it first trains the synthetic SPADE for --steps steps (a couple of minutes on an idle
2-core machine) in a temporary folder. Needs Chromium, chromedriver and Selenium, as the browser test does
(`apt-get install chromium chromium-driver`, `pip install 'semsyn[test-app]'`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def train(steps: int, folder: Path) -> str:
    """Train spade-synthetic briefly; returns its local-dir: source."""
    import torch

    from semsyn.cli.train import main

    torch.set_num_threads(1)  # tiny convs: a second thread only adds contention
    torch.backends.mkldnn.enabled = False
    if main(
        ["spade-synthetic", "--out", str(folder), "--set", f"train.steps={steps}", "--set", "train.sample_every=0"]
    ):
        sys.exit("training failed")
    return f"local-dir:{folder / 'final'}"


def paint_scene(page) -> None:
    """A valley: sky, a mountain ridge, grass with a lake and trees, two clouds (label-map pixels of 64x64)."""
    h, w = page.info["size"]
    sx, sy = w / 64, h / 64
    scaled = lambda pts: [(x * sx, y * sy) for x, y in pts]  # noqa: E731
    page.select_class("sky")
    page.click("new-canvas")
    page.select_tool("brush")
    page.select_class("mountain")
    page.set_brush_size(3)
    page.stroke(scaled([(0, 30), (12, 19), (22, 27), (34, 14), (46, 26), (56, 20), (63.5, 27)]))
    page.select_tool("fill")
    page.click_canvas(32 * sx, 36 * sy)
    page.select_class("grass")
    page.select_tool("brush")
    page.set_brush_size(2)
    page.stroke(scaled([(0, 42), (20, 40), (40, 43), (63.5, 41)]))
    page.select_tool("fill")
    page.click_canvas(32 * sx, 56 * sy)
    page.select_tool("brush")
    page.select_class("water")
    page.set_brush_size(7)
    page.stroke(scaled([(22, 52), (32, 54), (44, 53)]))
    page.select_class("tree")
    page.set_brush_size(6)
    for x, y in ((6, 44), (11, 46), (56, 45)):
        page.stroke(scaled([(x, y), (x + 0.5, y + 3)]))
    page.select_class("cloud")
    page.set_brush_size(5)
    page.stroke(scaled([(8, 8), (20, 9)]))
    page.stroke(scaled([(40, 6), (50, 7)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a model source (default: train spade-synthetic first)")
    parser.add_argument("--steps", type=int, default=300, help="training steps when --model is not given")
    parser.add_argument("--out", type=Path, default=HERE / "images")
    args = parser.parse_args()
    from PIL import Image

    from semsyn.app.browser import AppPage, missing_browser_parts, serve_app, start_driver

    if missing_browser_parts():
        sys.exit(f"needs {', '.join(missing_browser_parts())}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train(args.steps, Path(tmp) / "run")
        with serve_app(model, env={"OMP_NUM_THREADS": "1"}) as url:
            driver = start_driver(window=(1320, 1000))
            try:
                page = AppPage(driver, url).open()
                before = page.renders
                paint_scene(page)
                page.wait_render(before)
                page.screenshot(args.out / "app-painted.png")

                from semsyn.data.synthetic import SyntheticScenes

                h, w = page.info["size"]
                label = SyntheticScenes(image_size=(h, w), split="val")[3]["label"]
                Image.fromarray(np.asarray(label).reshape(h, w).astype(np.uint8), mode="L").save(Path(tmp) / "val.png")
                before = page.renders
                page.upload("label-file", Path(tmp) / "val.png")
                page.wait_render(before)
                page.screenshot(args.out / "app-uploaded.png")

                page.click("clear-canvas")
                page.wait_idle()
                page.screenshot(args.out / "app-empty-canvas.png")
            finally:
                driver.quit()
    for name in ("app-painted.png", "app-uploaded.png", "app-empty-canvas.png"):
        print(args.out / name)


if __name__ == "__main__":
    main()
