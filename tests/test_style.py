"""The style API (semsyn.style) on groupdnet-synthetic (per class) and a SPADE-VAE (global)."""

from __future__ import annotations

import pytest
import torch

import semsyn
from semsyn.data.synthetic import SyntheticScenes
from semsyn.errors import SemsynError
from semsyn.style import Style

L = 8  # groupdnet-synthetic's latent_per_class
TREE = 5


@pytest.fixture(scope="module")
def gdn() -> semsyn.SynthesisModel:
    torch.manual_seed(0)  # groupdnet-synthetic at half width: the same latent, a quicker test
    return semsyn.create_model("groupdnet-synthetic", generator={"ngf": 5, "norm_hidden_channels": 20})


@pytest.fixture(scope="module")
def scenes() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    data = SyntheticScenes(length=2)
    items = [data[i] for i in range(2)]
    return (
        torch.stack([it["image"] for it in items]),
        torch.stack([it["label"] for it in items]),
        torch.stack([it["instance"] for it in items]),
    )


@pytest.fixture(scope="module")
def spade_vae() -> semsyn.SynthesisModel:
    torch.manual_seed(0)
    return semsyn.create_model(
        "spade-synthetic",
        generator={"use_vae": True, "z_dim": 16, "ngf": 2, "cond_norm_params": {"hidden_channels": 8}},
        encoder={"name": "spade-conv", "ndf": 2, "z_dim": 16},
    )


def test_model_reports_its_style_kind(gdn, spade_vae):
    assert gdn.style_kind == "per-class"
    assert spade_vae.style_kind == "global"
    assert semsyn.create_model("spade-synthetic", generator={"ngf": 2}).style_kind is None


def test_encode_style_gives_a_per_class_style_that_renders(gdn, scenes):
    image, label, instance = scenes
    style = gdn.encode_style(image, label, instance)
    assert style.per_class and style.num_classes == 10 and style.latent_per_class == L
    assert style.mu.shape == (2, 10 * L, 2, 2) and style.class_names[TREE] == "tree"
    out = gdn.synthesize(label, instance, style=style)
    again = gdn.synthesize(label, instance, z=style.mu)
    assert torch.equal(out, again)


def test_a_seeded_prior_style_is_reproducible_and_renders_like_z(gdn, scenes):
    _, label, instance = scenes
    a, b = gdn.sample_style(2, seed=3), gdn.sample_style(2, seed=3)
    assert torch.equal(a.mu, b.mu) and a.per_class and a.logvar is None
    assert not torch.equal(a.mu, gdn.sample_style(2, seed=4).mu)
    assert torch.equal(gdn.synthesize(label, instance, style=a), gdn.synthesize(label, instance, z=a.mu))


def test_a_style_of_one_renders_every_label_map(gdn, scenes):
    _, label, instance = scenes
    one = gdn.sample_style(1, seed=1)
    out = gdn.synthesize(label, instance, style=one)
    assert torch.equal(out, gdn.synthesize(label, instance, z=one.mu.expand(2, -1, -1, -1)))


def test_interpolate_is_a_linear_blend_with_the_ends_at_the_styles(gdn):
    a, b = gdn.sample_style(1, seed=1), gdn.sample_style(1, seed=2)
    assert torch.allclose(a.interpolate(b, 0.0).mu, a.mu) and torch.allclose(a.interpolate(b, 1.0).mu, b.mu)
    assert torch.allclose(a.interpolate(b, 0.25).mu, 0.75 * a.mu + 0.25 * b.mu, atol=1e-6)


def test_replace_class_by_name_takes_only_that_class_code(gdn):
    a, b = gdn.sample_style(1, seed=1), gdn.sample_style(1, seed=2)
    mixed = a.replace_class("tree", b)
    tree = slice(TREE * L, (TREE + 1) * L)
    assert torch.equal(mixed.mu[:, tree], b.mu[:, tree])
    rest = torch.ones(10 * L, dtype=torch.bool)
    rest[tree] = False
    assert torch.equal(mixed.mu[:, rest], a.mu[:, rest])
    assert torch.equal(a.replace_class(TREE, b).mu, mixed.mu)


def test_resample_class_draws_a_fresh_seeded_code_for_that_class_only(gdn, scenes):
    image, label, instance = scenes
    style = gdn.encode_style(image, label, instance)
    new = style.resample_class("sky", seed=7)
    assert torch.equal(new.mu[:, L:], style.mu[:, L:]) and not torch.equal(new.mu[:, :L], style.mu[:, :L])
    assert torch.equal(new.mu, style.resample_class(0, seed=7).mu)


def test_changing_one_class_code_changes_the_rendered_image(gdn, scenes):
    _, label, instance = scenes
    style = gdn.sample_style(1, seed=1)
    a = gdn.synthesize(label, instance, style=style)
    b = gdn.synthesize(label, instance, style=style.resample_class("sky", seed=9))
    assert (a - b).abs().max() > 1e-2 * a.abs().max()  # untrained outputs are tiny (gain-0.02 init)


def test_per_class_operations_on_a_global_style_are_refused(spade_vae):
    style = spade_vae.sample_style(1, seed=0)
    assert not style.per_class and style.mu.shape == (1, 16)
    with pytest.raises(SemsynError, match="needs a per-class style.*global"):
        style.resample_class(0)
    with pytest.raises(SemsynError, match="needs a per-class style.*global"):
        style.replace_class("sky", spade_vae.sample_style(1, seed=1))


@pytest.mark.parametrize("cls", [10, -1, "unicorn"])
def test_an_unknown_or_out_of_range_class_is_refused(gdn, cls):
    with pytest.raises(SemsynError, match="out of range|not one of"):
        gdn.sample_style(1, seed=0).resample_class(cls)


def test_global_styles_encode_morph_and_render(spade_vae, scenes):
    image, label, instance = scenes
    a = spade_vae.encode_style(image[:1], label[:1], instance[:1])
    b = spade_vae.sample_style(1, seed=2)
    assert a.mu.shape == (1, 16) and a.logvar is not None
    mid = a.interpolate(b, 0.5)
    assert mid.logvar is None  # b is a point code
    out = spade_vae.synthesize(label[:1], instance[:1], style=mid)
    assert torch.allclose(out, spade_vae.synthesize(label[:1], instance[:1], z=(a.mu + b.mu) / 2), atol=1e-6)


def test_a_style_of_another_model_is_refused(gdn, spade_vae, scenes):
    _, label, instance = scenes
    with pytest.raises(SemsynError, match="use a style of this model"):
        gdn.synthesize(label, instance, style=spade_vae.sample_style(1, seed=0))
    with pytest.raises(SemsynError, match="do not match"):
        gdn.sample_style(1).interpolate(spade_vae.sample_style(1), 0.5)


def test_a_model_without_encoder_cannot_encode_a_style(scenes):
    model = semsyn.create_model("spade-synthetic", generator={"ngf": 2})
    image, label, instance = scenes
    with pytest.raises(SemsynError, match="no style encoder"):
        model.encode_style(image, label, instance)
    with pytest.raises(SemsynError, match="takes no latent"):
        model.sample_style(seed=0)


def test_style_is_a_plain_dataclass_that_moves_between_dtypes(gdn):
    style = gdn.sample_style(1, seed=0)
    assert isinstance(style, Style) and style.to(dtype=torch.float64).mu.dtype == torch.float64
