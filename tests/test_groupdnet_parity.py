"""GroupDNet parity: official SMIS checkpoints convert, load, and reproduce the official outputs (max-abs <= 2e-5).

The groupdnet fixtures record eval-mode outputs only (no `*_train_mode` tensors), so there is no official
train-mode reference to compare against here (SPADE's and CC-FPSE's fixtures have one).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import load_io, official_fixture

import semsyn
from semsyn.checkpoint import load_safetensors
from semsyn.cli.convert import main as convert_main

pytestmark = pytest.mark.parity
TOL = 2e-5


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs official {tuple(b.shape)}"
    return (a.double() - b.double()).abs().max().item()


def _convert(name: str, out: Path, parts: dict[str, str]) -> tuple[Path, dict]:
    fx = official_fixture(name)
    args = ["official", "--opt", str(fx / "opt.json"), "--out", str(out)]
    for part, file in parts.items():
        args += [f"--{part}", str(fx / file)]
    assert convert_main(args) == 0
    return out, load_io(fx)


@pytest.fixture(scope="module")
def ade20k(tmp_path_factory) -> tuple[semsyn.SynthesisModel, dict]:
    folder, io = _convert(
        "groupdnet_ade20k",
        tmp_path_factory.mktemp("ade") / "model",
        {"generator": "checkpoint.pth", "encoder": "checkpoint_E.pth"},
    )
    return semsyn.create_model(f"local-dir:{folder}", pretrained=True), io


def test_ade20k_generator_reproduces_the_official_output(ade20k):
    model, io = ade20k
    with torch.no_grad():
        out = model.generator(io["semantics"].float(), io["z"])
    assert _max_abs(out, io["fake_image"]) <= TOL


def test_ade20k_synthesize_from_the_label_map_matches(ade20k):
    model, io = ade20k
    out = model.synthesize(io["label"], z=io["z"])
    assert _max_abs(out, io["fake_image"]) <= TOL


def test_ade20k_encoder_reproduces_the_official_output_on_a_direct_input(ade20k):
    model, io = ade20k
    with torch.no_grad():
        mu, logvar = model.encoder.encode_crops(io["enc_input"])
    assert max(_max_abs(mu, io["enc_mu"]), _max_abs(logvar, io["enc_logvar"])) <= TOL


def test_ade20k_class_crops_match_the_official_trans_img(ade20k):
    from semsyn_models.groupdnet import class_crops

    _, io = ade20k
    crops, present = class_crops(io["image"], io["semantics"].float(), (256, 256))
    assert present.all()
    assert _max_abs(crops[:, :, ::16, ::16], io["trans_img_sub16"]) <= TOL
    assert _max_abs(crops.double().sum(dim=(2, 3)), io["trans_img_channel_sum"]) <= 1e-6 * 256 * 256


def test_ade20k_encoder_after_the_crops_reproduces_the_official_output(ade20k):
    model, io = ade20k
    with torch.no_grad():
        mu, logvar = model.encode(io["image"], io["semantics"].float())
    assert max(_max_abs(mu, io["trans_enc_mu"]), _max_abs(logvar, io["trans_enc_logvar"])) <= TOL
    style = model.encode_style(io["image"], io["label"])
    assert torch.equal(style.mu, mu) and torch.equal(style.logvar, logvar)


def test_ade20k_conversion_reports_the_unused_up_4_block(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="semsyn.convert"):
        folder, _ = _convert("groupdnet_ade20k", tmp_path / "m", {"generator": "checkpoint.pth"})
    report = " ".join(r.getMessage() for r in caplog.records)
    assert "never uses" in report and "up_4.conv_0" in report
    keys = load_safetensors(folder / "model.safetensors")
    assert not [k for k in keys if ".up_4." in k] and "generator.up_3.conv_s.weight_orig" in keys


def test_deepfashion_generator_reproduces_the_official_output(tmp_path):
    folder, io = _convert("groupdnet_deepfashion", tmp_path / "df", {"generator": "checkpoint.pth"})
    model = semsyn.create_model(f"local-dir:{folder}", pretrained=True)
    with torch.no_grad():
        out = model.generator(io["semantics"].float(), io["z"])
    assert _max_abs(out, io["fake_image"]) <= TOL
    assert model.style_kind == "per-class" and tuple(model.sample_style(seed=0).mu.shape) == (1, 64, 4, 4)
