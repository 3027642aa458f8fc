"""semsyn-synthesize: label PNG in, image PNG out; bad inputs exit 2 with one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import semsyn
from semsyn.cli.synthesize import main

SPEC = """\
schema: 1
labels: {num_classes: 3, dontcare: true, instance_edges: false}
image_size: [64, 64]
generator: {name: spade, ngf: 2, norm: instance}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "spec.yaml").write_text(SPEC)
    return semsyn.create_model(str(tmp_path / "spec.yaml")).save_pretrained(tmp_path / "model")


def test_label_png_to_image_png(folder: Path, tmp_path: Path) -> None:
    label = (np.arange(64 * 64).reshape(64, 64) // 300 % 3).astype(np.uint8)
    label[:4] = 255
    Image.fromarray(label, mode="L").save(tmp_path / "label.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "label.png"), "--out", str(tmp_path / "out.png")]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.size == (64, 64) and out.mode == "RGB"


def test_rgb_label_exits_2_with_one_line(folder: Path, tmp_path: Path, capsys) -> None:
    Image.new("RGB", (64, 64)).save(tmp_path / "rgb.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "rgb.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single-channel" in err[0] and "rgb.png" in err[0]


def test_label_value_outside_schema_exits_2(folder: Path, tmp_path: Path, capsys) -> None:
    Image.fromarray(np.full((64, 64), 7, np.uint8), mode="L").save(tmp_path / "bad.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "bad.png")]) == 2
    assert "value 7" in capsys.readouterr().err
