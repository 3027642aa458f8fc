"""CC-FPSE parity: official checkpoints convert, load, and reproduce the official outputs (max-abs <= 2e-5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import load_io, official_fixture

import semsyn
from semsyn.checkpoint import load_safetensors
from semsyn.convert import convert_official

pytestmark = pytest.mark.parity
TOL = 2e-5


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, f"shape {tuple(a.shape)} vs official {tuple(b.shape)}"
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory) -> tuple[Path, dict]:
    fx = official_fixture("ccfpse_generator")
    out = convert_official(fx / "opt.json", {"generator": fx / "checkpoint.pth"}, tmp_path_factory.mktemp("cc"))
    return out, load_io(fx)


@pytest.fixture(scope="module")
def discriminator_dir(tmp_path_factory) -> tuple[Path, dict]:
    fx = official_fixture("fpse_discriminator")
    out = convert_official(fx / "opt.json", {"discriminator": fx / "checkpoint.pth"}, tmp_path_factory.mktemp("fpse"))
    return out, load_io(fx)


def _load(folder: Path, impl: str = "recompute") -> semsyn.SynthesisModel:
    return semsyn.create_model(
        f"local-dir:{folder}", pretrained=True, with_discriminator=True, generator={"depthwise_impl": impl}
    )


def test_converted_generator_stores_no_dead_batchnorm(generator_dir):
    folder, _ = generator_dir
    keys = load_safetensors(folder / "model.safetensors")
    assert "generator.up_0.norm_1.running_mean" in keys
    assert not [k for k in keys if ".norm_0." in k or ".norm_layer." in k]


@pytest.mark.parametrize("impl", ["recompute", "lean", "unfold"])
def test_generator_reproduces_the_official_eval_output(generator_dir, impl):
    folder, io = generator_dir
    model = _load(folder, impl)
    with torch.no_grad():
        out = model.generator(io["semantics"].float(), io["z"])
    assert _max_abs(out, io["fake_image"]) <= TOL


def test_synthesize_from_label_and_instance_maps_matches_the_official_output(generator_dir):
    folder, io = generator_dir
    model = _load(folder)
    out = model.synthesize(io["label"], io["instance"], z=io["z"])
    assert _max_abs(out, io["fake_image"]) <= TOL


@pytest.mark.parametrize("impl", ["recompute", "lean", "unfold"])
def test_generator_reproduces_the_official_train_mode_output(generator_dir, impl):
    folder, io = generator_dir
    model = _load(folder, impl).train()
    with torch.no_grad():
        out = model.generator(io["semantics"].float(), io["z"])
    assert _max_abs(out, io["fake_image_train_mode"]) <= TOL


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_discriminator_reproduces_the_official_outputs(discriminator_dir, mode):
    folder, io = discriminator_dir
    model = _load(folder)
    disc = model.discriminator.train(mode == "train")
    suffix = "_train_mode" if mode == "train" else ""
    with torch.no_grad():
        out = disc(io["image"], io["semantics"].float())
    assert len(out.logits) == 3 and len(out.features) == 4
    errors = {f"pred{suffix}_{i}": _max_abs(p, io[f"pred{suffix}_{i}"]) for i, p in enumerate(out.logits)}
    errors |= {f"feat{suffix}_{i}": _max_abs(f[0], io[f"feat{suffix}_{i}"]) for i, f in enumerate(out.features)}
    assert max(errors.values()) <= TOL, errors
