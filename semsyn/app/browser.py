"""Drive the app as a person would: `semsyn-app` in a subprocess, headless Chromium through Selenium.

A test and docs aid (the browser test and docs/app_screenshots.py use it), not part of the app. It uses the
system's Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`) and never lets
Selenium download a browser or a driver. Coordinates given to the painting helpers are in label-map
pixels, so a script reads the same at any display size.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["missing_browser_parts", "start_driver", "serve_app", "AppPage"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
WAIT_S = 120.0  # generous: a shared 2-core machine can be slow, and waits end as soon as the page is ready


def _which(names: Sequence[str]) -> str | None:
    return next((path for path in map(shutil.which, names) if path), None)


def missing_browser_parts() -> list[str]:
    """What the browser test lacks on this machine, as install hints; empty when all is there."""
    missing = []
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install 'semsyn[test-app]')")
    if _which(CHROMIUM_NAMES) is None:
        missing.append("chromium (apt-get install chromium)")
    if shutil.which("chromedriver") is None:
        missing.append("chromedriver (apt-get install chromium-driver)")
    return missing


def start_driver(download_dir: str | os.PathLike[str] | None = None, window: tuple[int, int] = (1400, 1000)) -> Any:
    """A headless Chromium session (Selenium `webdriver.Chrome`) on the system's browser and driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = _which(CHROMIUM_NAMES) or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)  # no sandbox: CI runs as root, where Chromium's sandbox refuses to start
    options.add_argument(f"--window-size={window[0]},{window[1]}")
    if download_dir is not None:
        options.add_experimental_option(
            "prefs", {"download.default_directory": str(download_dir), "download.prompt_for_download": False}
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    if download_dir is not None:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return driver


@contextlib.contextmanager
def serve_app(model: str, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `semsyn-app MODEL --port 0 ARGS` in a subprocess; yields the page's URL, stops it on exit."""
    command = [sys.executable, "-m", "semsyn.cli.app", model, "--port", "0", *args]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        if not url.startswith("http://"):
            proc.kill()
            raise RuntimeError(f"semsyn-app did not start: {proc.communicate(timeout=30)[1].strip()}")
        yield url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_PIXELS_JS = """
const el = document.getElementById(arguments[0]);
const w = el.naturalWidth || el.width, h = el.naturalHeight || el.height;
let data;
if (el instanceof HTMLCanvasElement) {
  data = el.getContext('2d').getImageData(0, 0, w, h).data;
} else {
  const c = document.createElement('canvas'); c.width = w; c.height = h;
  const ctx = c.getContext('2d'); ctx.drawImage(el, 0, 0); data = ctx.getImageData(0, 0, w, h).data;
}
let s = ''; for (let i = 0; i < data.length; i++) s += String.fromCharCode(data[i]);
return [w, h, btoa(s)];
"""


class AppPage:
    """The app's page in a browser, with helpers that act and read as a person would (through the UI).

    Args:
        driver: a Selenium WebDriver.
        url: the app's address.
        downloads: the folder the browser downloads to (see `start_driver`), for `wait_for_file`.
    """

    def __init__(self, driver: Any, url: str, downloads: Path | None = None) -> None:
        self.driver = driver
        self.url = url
        self.downloads = downloads
        self.info: dict[str, Any] = {}

    # -- waiting ----------------------------------------------------------------------------------
    def _wait(self, condition: Any, what: str) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, WAIT_S, poll_frequency=0.05).until(condition, message=f"waiting for {what}")

    def open(self) -> AppPage:
        """Load the page and wait until it has built itself (and rendered its starting canvas, if any)."""
        self.driver.get(self.url)
        self._wait(lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), "the page")
        self.info = self.driver.execute_script("return fetch('/api/info').then(r => r.json())")
        self.wait_idle()
        return self

    @property
    def renders(self) -> int:
        """How many renders the page has shown."""
        return int(self.el("result").get_attribute("data-renders"))

    def wait_idle(self) -> None:
        """Wait until the render of the latest canvas has landed or been refused."""
        self._wait(lambda d: self.el("result").get_attribute("data-busy") == "false", "the render")

    def wait_render(self, after: int) -> None:
        """Wait for a render newer than render number `after`, then for the page to be idle."""
        self._wait(lambda d: self.renders > after, f"render {after + 1}")
        self.wait_idle()

    # -- acting -----------------------------------------------------------------------------------
    def el(self, element_id: str) -> Any:
        return self.driver.find_element("id", element_id)

    def click(self, element_id: str) -> None:
        self.el(element_id).click()

    def select_class(self, name: str) -> None:
        """Click the class's swatch in the palette."""
        self.driver.find_element("xpath", f"//button[@class='swatch'][normalize-space()='{name}']").click()

    def select_tool(self, tool: str) -> None:
        """Pick a tool: "brush", "fill" or "eraser"."""
        self.driver.find_element("css selector", f"#tool-buttons button[data-tool='{tool}']").click()

    def set_brush_size(self, size: int) -> None:
        """Move the size slider (keyboard: Home, then Right arrow presses, as a person would)."""
        from selenium.webdriver.common.keys import Keys

        slider = self.el("brush-size")
        slider.send_keys(Keys.HOME)
        slider.send_keys(Keys.RIGHT * (size - int(slider.get_attribute("min"))))

    def _offset(self, x: float, y: float) -> tuple[int, int]:
        """Label-map pixel (x, y) -> offset from the canvas's centre in CSS pixels (Selenium's origin)."""
        canvas = self.el("paint")
        rect = canvas.rect
        height, width = self.info["size"]
        return round((x / width - 0.5) * rect["width"]), round((y / height - 0.5) * rect["height"])

    def stroke(self, points: Sequence[tuple[float, float]]) -> None:
        """Press, drag through `points` (label-map pixels) and release on the canvas."""
        from selenium.webdriver.common.action_chains import ActionChains

        canvas = self.el("paint")
        chain = ActionChains(self.driver, duration=20).move_to_element_with_offset(canvas, *self._offset(*points[0]))
        chain.click_and_hold()
        for point in points[1:]:
            chain.move_to_element_with_offset(canvas, *self._offset(*point))
        chain.release().perform()

    def click_canvas(self, x: float, y: float) -> None:
        """Click label-map pixel (x, y) (the fill tool fills from there)."""
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).move_to_element_with_offset(self.el("paint"), *self._offset(x, y)).click().perform()

    def upload(self, input_id: str, path: str | os.PathLike[str]) -> None:
        """Choose a file in a file input (what the file dialog does)."""
        self.el(input_id).send_keys(str(Path(path).resolve()))

    # -- reading ----------------------------------------------------------------------------------
    def message(self) -> str:
        """The error shown in the page, or "" when none is."""
        box = self.el("message")
        return box.text if box.is_displayed() else ""

    def pixels(self, element_id: str) -> np.ndarray:
        """(H, W, 3) uint8 of the label canvas ("paint") or the rendered image ("result"), at their own size."""
        width, height, data = self.driver.execute_script(_PIXELS_JS, element_id)
        rgba = np.frombuffer(base64.b64decode(data), dtype=np.uint8).reshape(height, width, 4)
        return rgba[..., :3].copy()

    def screenshot(self, path: str | os.PathLike[str]) -> Path:
        """A PNG of the whole page."""
        from PIL import Image

        png = self.driver.get_screenshot_as_png()
        Image.open(io.BytesIO(png)).save(path)
        return Path(path)

    def wait_for_file(self, name_part: str) -> Path:
        """A finished download whose name contains `name_part`."""
        if self.downloads is None:
            raise ValueError("AppPage(downloads=FOLDER) is needed to find downloads")
        folder = self.downloads
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            done = [p for p in folder.iterdir() if name_part in p.name and not p.name.endswith(".crdownload")]
            if done:
                return done[0]
            time.sleep(0.05)
        raise TimeoutError(f"no download named *{name_part}* in {folder}")
