"""Parity with NVlabs/SPADE: official checkpoints convert, load and reproduce the official outputs.

Fixtures: ../shared/reference/official/{spade_generator, spade_generator_vae, multiscale_discriminator}
(see its README). Tolerance: max-abs 2e-5, about 3x the float64 floor of the fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import load_io, official_fixture

import semsyn
from semsyn.convert import convert_official

pytestmark = pytest.mark.parity
TOL = 2e-5


def _assert_close(ours: torch.Tensor, theirs: torch.Tensor, what: str) -> None:
    assert tuple(ours.shape) == tuple(theirs.shape), f"{what}: shape {tuple(ours.shape)} vs {tuple(theirs.shape)}"
    err = (ours.detach().float() - theirs.float()).abs().max().item()
    assert err <= TOL, f"{what}: max-abs error {err:.3g} > {TOL}"


def _converted(tmp_path_factory, fixture: str, parts: dict[str, str]) -> tuple[Path, dict]:
    folder = official_fixture(fixture)
    out = tmp_path_factory.mktemp(fixture)
    convert_official(folder / "opt.json", {part: folder / name for part, name in parts.items()}, out)
    return out, load_io(folder)


def _load(folder: Path, **kwargs) -> semsyn.SynthesisModel:
    return semsyn.create_model("local-dir:" + str(folder), pretrained=True, **kwargs)


@pytest.fixture(scope="module")
def spade_g(tmp_path_factory):
    return _converted(tmp_path_factory, "spade_generator", {"generator": "checkpoint.pth"})


@pytest.fixture(scope="module")
def spade_vae(tmp_path_factory):
    return _converted(
        tmp_path_factory, "spade_generator_vae", {"generator": "checkpoint.pth", "encoder": "checkpoint_E.pth"}
    )


@pytest.fixture(scope="module")
def multiscale_d(tmp_path_factory):
    return _converted(tmp_path_factory, "multiscale_discriminator", {"discriminator": "checkpoint.pth"})


# -- SPADEGenerator (no VAE) --------------------------------------------------------------------------------


def test_generator_eval_matches_official(spade_g):
    folder, io = spade_g
    with torch.no_grad():
        _assert_close(_load(folder).generator(io["semantics"].float()), io["fake_image"], "fake_image")


def test_generator_train_mode_matches_official(spade_g):
    folder, io = spade_g
    model = _load(folder).train()  # batch statistics and one spectral-norm power iteration
    with torch.no_grad():
        _assert_close(model.generator(io["semantics"].float()), io["fake_image_train_mode"], "fake_image_train_mode")


def test_semantics_match_official_preprocessing(spade_g):
    folder, io = spade_g
    sem = _load(folder).semantics(io["label"], io["instance"])
    assert torch.equal(sem, io["semantics"].float())


def test_synthesize_reproduces_official_image(spade_g):
    folder, io = spade_g
    _assert_close(_load(folder).synthesize(io["label"], io["instance"]), io["fake_image"], "synthesize")


# -- SPADEGenerator with --use_vae and ConvEncoder (32x256, aspect 8) ---------------------------------------


def test_vae_encoder_matches_official(spade_vae):
    folder, io = spade_vae
    with torch.no_grad():
        mu, logvar = _load(folder).encoder(io["image"], io["semantics"].float())
    _assert_close(mu, io["mu"], "mu")
    _assert_close(logvar, io["logvar"], "logvar")


def test_vae_generator_matches_official_for_the_encoded_z(spade_vae):
    folder, io = spade_vae
    with torch.no_grad():
        _assert_close(_load(folder).generator(io["semantics"].float(), io["z"]), io["fake_image"], "fake_image")


def test_vae_generator_matches_official_for_a_prior_z(spade_vae):
    folder, io = spade_vae
    with torch.no_grad():
        out = _load(folder).generator(io["semantics"].float(), io["z_prior"])
    _assert_close(out, io["fake_image_prior"], "fake_image_prior")


def test_vae_synthesize_with_z_reproduces_official_image(spade_vae):
    folder, io = spade_vae
    _assert_close(_load(folder).synthesize(io["label"], io["instance"], z=io["z"]), io["fake_image"], "synthesize")


def test_vae_semantics_match_official_preprocessing(spade_vae):
    folder, io = spade_vae
    assert torch.equal(_load(folder).semantics(io["label"], io["instance"]), io["semantics"].float())


# -- MultiscaleDiscriminator --------------------------------------------------------------------------------


def _d_outputs(model: semsyn.SynthesisModel, io: dict) -> list[list[torch.Tensor]]:
    with torch.no_grad():
        out = model.discriminator(io["image"], io["semantics"].float())
    return [[*feats, logits] for feats, logits in zip(out.features, out.logits, strict=True)]


def test_discriminator_eval_matches_official_at_every_layer(multiscale_d):
    folder, io = multiscale_d
    outs = _d_outputs(_load(folder, with_discriminator=True), io)
    assert [len(scale) for scale in outs] == [5, 5]
    for i, scale in enumerate(outs):
        for j, out in enumerate(scale):
            _assert_close(out, io[f"out_{i}_{j}"], f"out_{i}_{j}")


def test_discriminator_train_mode_matches_official_at_every_layer(multiscale_d):
    folder, io = multiscale_d
    outs = _d_outputs(_load(folder, with_discriminator=True).train(), io)
    for i, scale in enumerate(outs):
        for j, out in enumerate(scale):
            _assert_close(out, io[f"out_train_mode_{i}_{j}"], f"out_train_mode_{i}_{j}")


def test_discriminator_only_conversion_reports_the_generator_untrained(multiscale_d):
    folder, _ = multiscale_d
    model = _load(folder, with_discriminator=True)
    assert model.untrained_parts == ["generator"] and model.trained_parts == {"discriminator"}
