"""semsyn-app end to end in a real browser: headless Chromium (Debian's) driven by Selenium against
`semsyn-app` on 127.0.0.1, with a SPADE trained briefly on the synthetic scenes (sky blue, grass green)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_app_support import StyledModel

from semsyn.app.browser import AppPage, missing_browser_parts, serve_app, start_driver

SIDE = 32
SKY, GRASS = 0, 4  # semsyn.data.synthetic: sky (110, 170, 230), grass (95, 160, 55)
TRAIN = {  # a 32x32 SPADE that learns the classes' mean colours in a few dozen steps (checked below)
    "train.steps": 24,
    "train.batch_size": 4,
    "train.lr_g": 0.002,
    "train.lr_d": 0.002,
    "train.sample_every": 0,
    "train.log_every": 24,
    "train.device": "cpu",
    # The test's own recipe, not the shipped one: no EMA (still at init after 24 steps), 3x3 SPADE modulation.
    "train.ema_halflife_images": "null",
    "train.d_fake": "regenerate",
    "generator.cond_norm_params": "null",
    "image_size": f"[{SIDE}, {SIDE}]",
    "generator.ngf": 8,
    "discriminator.ndf": 8,
    "discriminator.num_d": 1,
    "discriminator.n_layers": 2,
}


@pytest.fixture(scope="module")
def browser_parts() -> None:
    missing = missing_browser_parts()
    if missing:
        message = f"the browser test needs {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from semsyn.cli.train import main

    run = tmp_path_factory.mktemp("app-model") / "run"
    threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    # One thread, no oneDNN: tiny convs on 2 shared cores run many times faster so.
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    try:
        assert main(["spade-synthetic", "--out", str(run), *(f"--set={k}={v}" for k, v in TRAIN.items())]) == 0
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = onednn
    return run / "final"


@pytest.fixture(scope="module")
def page(browser_parts, model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    downloads = tmp_path_factory.mktemp("downloads")
    with serve_app(f"local-dir:{model_dir}", env={"OMP_NUM_THREADS": "1"}) as url:
        driver = start_driver(download_dir=downloads)
        try:
            yield AppPage(driver, url, downloads)
        finally:
            driver.quit()


def blueness(rgb: np.ndarray) -> float:
    """Mean blue minus mean green: sky is bluer than green, grass greener than blue."""
    mean = rgb.reshape(-1, 3).astype(np.float64).mean(0)
    return float(mean[2] - mean[1])


def paint_bottom(app: AppPage, class_name: str, top_row: int) -> None:
    """Brush strokes across the whole width from `top_row` down, at the largest brush."""
    app.select_class(class_name)
    app.select_tool("brush")
    app.set_brush_size(SIDE // 4)
    for y in range(top_row + SIDE // 8, SIDE, SIDE // 8):
        app.stroke([(0.5, y), (SIDE / 2, y + 0.5), (SIDE - 0.5, y)])


def test_paint_two_classes_and_the_render_follows(page: AppPage) -> None:
    page.open()
    page.click("clear-canvas")
    page.wait_idle()
    assert "canvas is empty" in page.message()

    page.select_class("sky")
    page.select_tool("fill")
    before = page.renders
    page.click_canvas(SIDE / 2, SIDE / 4)
    page.wait_render(before)
    assert page.message() == ""
    sky_only = page.pixels("result")

    before = page.renders
    paint_bottom(page, "grass", top_row=SIDE // 2)
    page.wait_render(before)
    assert page.message() == ""

    label = page.pixels("paint")
    colours = {tuple(c["color"]): c["id"] for c in page.info["classes"]}
    assert {tuple(p) for p in label.reshape(-1, 3)} <= set(colours), "every label pixel is exactly one class"
    assert (label[: SIDE // 2 - 1] == page.info["classes"][SKY]["color"]).all()
    assert (label[SIDE // 2 + 1 :] == page.info["classes"][GRASS]["color"]).all()

    image = page.pixels("result")
    top, bottom = image[: int(SIDE * 0.4)], image[int(SIDE * 0.6) :]
    changed = np.abs(bottom.astype(int) - sky_only[int(SIDE * 0.6) :].astype(int)).mean()
    assert changed > 10, f"the grass region's render barely changed ({changed:.1f} levels)"
    assert blueness(top) > blueness(bottom) + 30, f"sky {blueness(top):.0f} vs grass {blueness(bottom):.0f}"
    assert blueness(bottom) < 0, "the grass region renders greener than blue"

    page.select_tool("eraser")  # the eraser paints the background class: sky, the class of the starting canvas
    before = page.renders
    page.stroke([(0.5, SIDE - 1.5), (SIDE - 0.5, SIDE - 1.5)])
    page.wait_render(before)
    assert (page.pixels("paint")[-1] == page.info["classes"][SKY]["color"]).all()


def test_upload_integer_label_png_and_the_render_follows(page: AppPage, tmp_path: Path) -> None:
    page.open()
    upside_down = np.full((SIDE, SIDE), GRASS, np.uint8)
    upside_down[SIDE // 2 :] = SKY
    Image.fromarray(upside_down, mode="L").save(tmp_path / "label.png")
    before = page.renders
    page.upload("label-file", tmp_path / "label.png")
    page.wait_render(before)
    assert page.message() == ""
    assert (page.pixels("paint")[: SIDE // 2] == page.info["classes"][GRASS]["color"]).all()
    image = page.pixels("result")
    assert blueness(image[int(SIDE * 0.6) :]) > blueness(image[: int(SIDE * 0.4)]) + 30


def test_bad_uploads_get_a_message_in_the_page(page: AppPage, tmp_path: Path) -> None:
    page.open()
    Image.new("LA", (SIDE, SIDE)).save(tmp_path / "grey-alpha.png")
    page.upload("label-file", tmp_path / "grey-alpha.png")
    page._wait(lambda d: page.message(), "the message")
    assert "mode LA" in page.message() and "Traceback" not in page.message()

    (tmp_path / "huge.png").write_bytes(bytes(17 * 2**20))
    page.upload("label-file", tmp_path / "huge.png")
    page._wait(lambda d: "MB" in page.message(), "the size message")
    assert "up to 16 MB" in page.message()


def test_reroll_and_downloads(page: AppPage) -> None:
    page.open()
    seed = page.el("seed").get_attribute("value")
    before = page.renders
    page.click("reroll")
    page.wait_render(before)
    assert page.el("seed").get_attribute("value") != seed

    before = page.renders
    paint_bottom(page, "grass", top_row=SIDE // 2)
    page.wait_render(before)
    for button in ("download-ids", "download-colour", "download-image"):
        page.click(button)
    ids = np.asarray(Image.open(page.wait_for_file("label_ids")))
    colour = Image.open(page.wait_for_file("label_colour"))
    image = Image.open(page.wait_for_file("_seed"))
    assert set(np.unique(ids)) == {SKY, GRASS} and (ids[-1] == GRASS).all() and (ids[0] == SKY).all()
    assert np.array_equal(np.asarray(colour.convert("RGB")), page.pixels("paint"))
    assert image.size == (SIDE, SIDE) and np.array_equal(np.asarray(image.convert("RGB")), page.pixels("result"))


def test_style_controls_appear_and_reach_the_model_when_it_has_the_style_api(
    browser_parts, model_dir: Path, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    import semsyn
    from semsyn.app import AppServer, Renderer

    model = StyledModel(semsyn.create_model(f"local-dir:{model_dir}", pretrained=True))
    with AppServer(Renderer(model)) as server:
        driver = start_driver()
        try:
            page = AppPage(driver, server.url).open()
            for controls in ("style-image-controls", "class-style-controls", "scale-controls"):
                assert page.el(controls).is_displayed()
            Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "style.png")
            before = page.renders
            page.upload("style-file", tmp_path / "style.png")
            page.wait_render(before)
            assert ("encode_style", (1, 3, SIDE, SIDE), (1, SIDE, SIDE)) in model.log

            page.select_class("grass")
            before = page.renders
            page.click("class-reroll")
            page.wait_render(before)
            assert [entry[:2] for entry in model.log if entry[0] == "resample_class"] == [("resample_class", GRASS)]

            before = page.renders
            Select(page.el("scale")).select_by_value("4")
            page.wait_render(before)
            assert page.pixels("result").shape == (4 * SIDE, 4 * SIDE, 3)
        finally:
            driver.quit()
