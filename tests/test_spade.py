"""The SPADE generator, its encoder, the multi-scale PatchGAN, their specs and official-checkpoint conversion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

import semsyn
from semsyn import COND_NORMS, DISCRIMINATORS, ENCODERS, GENERATORS, ConversionError, SemsynError, SpecError
from semsyn.builder import build_model
from semsyn.convert import OFFICIAL_FORMATS, convert_official
from semsyn_models.layers import SPADE

HUB_CONFIGS = Path(__file__).resolve().parents[1] / "hub_configs"


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _gen(**params) -> torch.nn.Module:
    params = {
        "label_channels": 5,
        "image_size": (64, 64),
        "ngf": 2,
        "cond_norm_params": {"hidden_channels": 4},
        **params,
    }
    return GENERATORS.get("spade")(**params)


def _semantics(n: int = 2, size: tuple[int, int] = (64, 64), channels: int = 5, seed: int = 0) -> torch.Tensor:
    label = torch.randint(0, channels, (n, 1, *size), generator=torch.Generator().manual_seed(seed))
    return torch.zeros(n, channels, *size).scatter_(1, label, 1.0)


# -- parameter counts of the official defaults (architectures.md section 1, 2) --------------------------------


@pytest.mark.parametrize(
    ("name", "generator", "discriminator"),
    [
        ("spade-coco", 97_480_899, 5_904_514),
        ("spade-cityscapes", 93_048_003, 5_601_410),
        ("spade-ade20k", 96_492_483, 5_836_930),
    ],
)
def test_hub_config_builds_the_official_parameter_counts(name, generator, discriminator):
    with torch.device("meta"):
        model = build_model(semsyn.load_spec(name), with_discriminator=True)
    assert (_count(model.generator), _count(model.discriminator)) == (generator, discriminator)


def test_vae_generator_and_encoder_have_the_official_coco_parameter_counts():
    with torch.device("meta"):
        gen = GENERATORS.get("spade")(label_channels=184, image_size=(256, 256), use_vae=True)
        enc = ENCODERS.get("spade-conv")()
    assert (_count(gen), _count(enc)) == (112_626_883, 10_463_424)


# -- hub configs -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["spade-coco", "spade-cityscapes", "spade-ade20k"])
def test_hub_config_is_fully_resolved(name):
    raw = yaml.safe_load((HUB_CONFIGS / f"{name}.yaml").read_text())
    assert semsyn.load_spec(name).resolved().to_dict() == raw


def test_synthetic_config_loads_with_its_data_and_train_sections():
    if "synthetic" not in semsyn.DATASETS:
        pytest.skip("the synthetic dataset is not registered yet")
    spec = semsyn.load_spec("spade-synthetic")
    raw = yaml.safe_load((HUB_CONFIGS / "spade-synthetic.yaml").read_text())["train"]
    config = spec.train_config()
    assert spec.data["data"]["name"] == "synthetic" and config.steps == raw["steps"]
    assert isinstance(config.lr_g, float) and config.lr_g == raw["lr_g"] and config.ema_halflife_images


# -- generator ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_size", "upsampling", "expected"),
    [
        ((256, 256), "normal", (8, 8)),
        ((256, 512), "more", (4, 8)),
        ((32, 256), "normal", (1, 8)),
        ((80, 256), "normal", (2, 8)),  # 8 / 3.2 = 2.5 rounds to even, as Python's round does in the official code
        ((128, 128), "most", (1, 1)),
    ],
)
def test_latent_size_follows_the_official_formula(image_size, upsampling, expected):
    from semsyn_models.layers import latent_size

    assert latent_size(image_size, upsampling) == expected


@pytest.mark.parametrize(
    ("upsampling", "image_size"), [("normal", (32, 64)), ("more", (64, 128)), ("most", (128, 128))]
)
def test_generator_renders_at_image_size(upsampling, image_size):
    gen = _gen(num_upsampling_layers=upsampling, image_size=image_size).eval()
    with torch.no_grad():
        out = gen(_semantics(1, image_size))
    assert tuple(out.shape) == (1, 3, *image_size) and out.abs().max() <= 1


def test_most_adds_up_4_with_half_the_channels():
    gen = _gen(num_upsampling_layers="most", image_size=(128, 128), ngf=4)
    assert gen.up_4.conv_1.weight_orig.shape[0] == 2 and gen.conv_img.weight.shape[1] == 2


def test_too_small_image_size_is_a_spec_error():
    with pytest.raises(SpecError, match=r"image_size \[16, 16\] is too small"):
        _gen(image_size=(16, 16))


def test_vae_generator_draws_z_from_the_given_torch_generator():
    gen = _gen(use_vae=True, z_dim=8).eval()
    sem = _semantics(2)
    with torch.no_grad():
        a = gen(sem, generator=torch.Generator().manual_seed(3))
        b = gen(sem, generator=torch.Generator().manual_seed(3))
        c = gen(sem, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_vae_generator_uses_the_given_z():
    gen = _gen(use_vae=True, z_dim=8).eval()
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert torch.equal(gen(_semantics(2), z), gen(_semantics(2), z.clone(), generator=torch.Generator()))


def test_vae_generator_rejects_a_misshaped_z():
    with pytest.raises(SemsynError, match=r"z has shape \(2, 7\); this generator takes \(2, 8\)"):
        _gen(use_vae=True, z_dim=8)(_semantics(2), torch.zeros(2, 7))


def test_generator_without_vae_refuses_z():
    with pytest.raises(SemsynError, match="use_vae: false and takes no z"):
        _gen()(_semantics(2), torch.zeros(2, 256))


def test_noise_injection_is_off_by_default_and_starts_as_the_identity():
    assert not any("noise" in k for k in _gen().state_dict())
    torch.manual_seed(0)
    plain = _gen().eval()
    torch.manual_seed(0)
    noisy = _gen(noise_injection=True).eval()
    assert set(noisy.noise) == {name for name, _ in noisy.schedule}
    assert noisy.noise["up_3"].weight.shape == (1, 4, 1, 1)  # the input channels of up_3: 2 * ngf
    with torch.no_grad():
        assert torch.equal(plain(_semantics(2)), noisy(_semantics(2)))  # weights start at 0


def test_noise_injection_draws_per_pixel_noise_from_the_given_torch_generator():
    gen = _gen(noise_injection=True).eval()
    with torch.no_grad():
        for module in gen.noise.values():
            module.weight.fill_(0.5)
        sem = torch.zeros(1, 5, 64, 64)
        sem[:, 1] = 1.0  # one uniform region: without noise, the interior renders flat
        a = gen(sem, generator=torch.Generator().manual_seed(3))
        b = gen(sem, generator=torch.Generator().manual_seed(3))
        c = gen(sem, generator=torch.Generator().manual_seed(4))
        flat = _gen().eval()(sem)
    assert torch.equal(a, b) and not torch.equal(a, c)
    interior = (slice(None), slice(None), slice(8, 56), slice(8, 56))
    assert a[interior].std(dim=(2, 3)).min() > 10 * flat[interior].std(dim=(2, 3)).max()


def test_generator_blocks_use_the_named_cond_norm_with_its_params():
    gen = _gen(cond_norm_params={"kernel_size": 5, "hidden_channels": 4})
    assert isinstance(gen.head_0.norm_0, SPADE) and gen.head_0.norm_0.mlp_gamma.weight.shape[-2:] == (5, 5)


class _FiLMFromMean(torch.nn.Module):
    """A stand-in plugin cond-norm: normalise, then scale by a per-channel map of the mean label map."""

    def __init__(self, num_features: int, label_channels: int, norm: str = "instance", gain: float = 1.0) -> None:
        super().__init__()
        from semsyn_models.layers import make_norm

        self.norm = make_norm(norm, num_features)
        self.proj = torch.nn.Linear(label_channels, num_features)
        self.gain = gain

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gain * self.proj(semantics.mean((2, 3)))[..., None, None])


def test_a_plugin_cond_norm_drops_into_the_generator():
    COND_NORMS.register("test-film")(_FiLMFromMean)
    try:
        gen = _gen(cond_norm="test-film", cond_norm_params={"gain": 0.5}).eval()
        with torch.no_grad():
            out = gen(_semantics(1))
    finally:
        COND_NORMS.unregister("test-film")
    assert isinstance(gen.up_3.norm_s, _FiLMFromMean) and gen.up_3.norm_s.gain == 0.5 and out.shape == (1, 3, 64, 64)


def test_unknown_cond_norm_param_is_a_spec_error_with_a_close_match():
    with pytest.raises(SpecError, match=r"'spade' has no parameter 'kernal_size' \(did you mean 'kernel_size'"):
        _gen(cond_norm_params={"kernal_size": 5})


def test_cond_norm_params_cannot_override_what_the_generator_sets():
    with pytest.raises(SpecError, match="no parameter 'norm'.*set by the generator"):
        _gen(cond_norm_params={"norm": "batch"})


# -- encoder -----------------------------------------------------------------------------------------------


def test_encoder_resizes_any_image_to_256_bilinear():
    enc = ENCODERS.get("spade-conv")(ndf=2, z_dim=8).eval()
    image = torch.rand(1, 3, 32, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    resized = torch.nn.functional.interpolate(image, size=(256, 256), mode="bilinear", align_corners=False)
    with torch.no_grad():
        (mu_a, lv_a), (mu_b, lv_b) = enc(image, None), enc(resized, None)
    assert mu_a.shape == (1, 8) and torch.equal(mu_a, mu_b) and torch.equal(lv_a, lv_b)


def test_encoder_ignores_the_semantics():
    enc = ENCODERS.get("spade-conv")(ndf=2, z_dim=8).eval()
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert torch.equal(enc(image, _semantics(1, (256, 256)))[0], enc(image, None)[0])


# -- discriminator -----------------------------------------------------------------------------------------


def test_discriminator_maps_grow_by_one_in_stride_one_layers():
    disc = DISCRIMINATORS.get("patchgan-multiscale")(label_channels=5, ndf=4)
    out = disc(torch.zeros(1, 3, 64, 64), _semantics(1))
    sizes = [[f.shape[-1] for f in [*feats, logit]] for feats, logit in zip(out.features, out.logits)]
    assert sizes == [[33, 17, 9, 10, 11], [17, 9, 5, 6, 7]]


def test_discriminator_widths_stop_at_512():
    with torch.device("meta"):
        disc = DISCRIMINATORS.get("patchgan-multiscale")(label_channels=5, ndf=256, num_d=1)
    assert disc.discriminator_0.model3[0][0].weight_orig.shape[:2] == (512, 512)


def test_discriminator_without_norm_keeps_conv_biases():
    disc = DISCRIMINATORS.get("patchgan-multiscale")(label_channels=5, ndf=4, norm=None)
    keys = disc.state_dict().keys()
    assert "discriminator_0.model1.0.0.bias" in keys and not any(".0.1." in k for k in keys)


# -- official conversion: sections, key tables, refusals -----------------------------------------------------

OPT = {
    "label_nc": 3,
    "contain_dontcare_label": False,
    "no_instance": True,
    "crop_size": 32,
    "aspect_ratio": 1.0,
    "dataset_mode": "custom",
    "netG": "spade",
    "netD": "multiscale",
    "ngf": 1,
    "ndf": 4,
    "num_D": 1,
    "n_layers_D": 2,
    "norm_G": "spectralspadesyncbatch3x3",
    "norm_D": "spectralinstance",
    "num_upsampling_layers": "normal",
    "use_vae": False,
    "z_dim": 256,
}


def _official_files(tmp_path: Path, **opt_changes) -> tuple[Path, Path, dict]:
    """opt.json and a generator checkpoint with official key names (the semsyn modules keep them)."""
    opt = {**OPT, **opt_changes}
    (tmp_path / "opt.json").write_text(json.dumps(opt))
    state = GENERATORS.get("spade")(label_channels=3, image_size=(32, 32), ngf=1).state_dict()
    return tmp_path / "opt.json", tmp_path / "latest_net_G.pth", dict(state)


def test_spade_section_reads_the_norm_string():
    section = OFFICIAL_FORMATS.get("spade").section("generator", {**OPT, "norm_G": "spadeinstance5x5"})
    assert (section["norm"], section["spectral_norm"], section["cond_norm_params"]) == (
        "instance",
        False,
        {"kernel_size": 5},
    )


def test_spade_format_leaves_other_families_alone():
    fmt = OFFICIAL_FORMATS.get("spade")
    assert fmt.section("generator", {**OPT, "netG": "condconv"}) is None
    assert fmt.section("discriminator", OPT) is None


def test_encoder_section_takes_the_generator_width():
    section = OFFICIAL_FORMATS.get("spade").section("encoder", {**OPT, "ngf": 16, "nef": 99})
    assert section == {"name": "spade-conv", "ndf": 16, "z_dim": 256, "spectral_norm": True, "norm": "instance"}


def test_patchgan_section_reads_the_discriminator_options():
    section = OFFICIAL_FORMATS.get("patchgan").section("discriminator", OPT)
    assert section == {
        "name": "patchgan-multiscale",
        "ndf": 4,
        "num_d": 1,
        "n_layers": 2,
        "norm": "instance",
        "spectral_norm": True,
    }


def test_unknown_norm_string_is_a_conversion_error():
    with pytest.raises(ConversionError, match=r"norm_G = 'spectralspadefancy3x3'"):
        OFFICIAL_FORMATS.get("spade").section("generator", {**OPT, "norm_G": "spectralspadefancy3x3"})


def test_affine_batch_norm_discriminator_options_are_refused():
    with pytest.raises(ConversionError, match=r"norm_D = 'spectralbatch'.*affine"):
        OFFICIAL_FORMATS.get("patchgan").section("discriminator", {**OPT, "norm_D": "spectralbatch"})


def test_official_latent_size_that_image_size_cannot_reproduce_is_refused():
    # official sh = round(8 / 0.76) = 11, but image_size [int(256 / 0.76), 256] = [336, 256] gives round(10.5) = 10
    with pytest.raises(ConversionError, match=r"official latent size \(11, 8\).*\(10, 8\)"):
        OFFICIAL_FORMATS.get("spade").section("generator", {**OPT, "crop_size": 256, "aspect_ratio": 0.76})


def test_a_clean_official_checkpoint_converts_and_loads(tmp_path):
    opt, pth, state = _official_files(tmp_path)
    torch.save(state, pth)
    out = convert_official(opt, {"generator": pth}, tmp_path / "model")
    model = semsyn.create_model(f"local-dir:{out}", pretrained=True)
    assert torch.equal(model.generator.conv_img.weight, state["conv_img.weight"])


def test_conversion_names_every_missing_extra_and_misshaped_key(tmp_path):
    opt, pth, state = _official_files(tmp_path)
    del state["up_1.norm_s.mlp_gamma.bias"]
    state["up_9.conv_0.bias"] = torch.zeros(1)
    state["head_0.conv_1.weight_orig"] = torch.zeros(1, 1, 3, 3)
    torch.save(state, pth)
    with pytest.raises(ConversionError) as err:
        convert_official(opt, {"generator": pth}, tmp_path / "model")
    message = str(err.value)
    assert "source keys left unused: up_9.conv_0.bias" in message
    assert "target keys left unmatched: up_1.norm_s.mlp_gamma.bias" in message
    assert (
        "shape mismatches: head_0.conv_1.weight_orig (1, 1, 3, 3) vs head_0.conv_1.weight_orig (16, 16, 3, 3)"
        in message
    )


def test_conversion_refuses_a_pth_that_is_not_a_state_dict(tmp_path):
    opt, pth, _ = _official_files(tmp_path)
    torch.save({"epoch": 3, "lr": 0.1}, pth)
    with pytest.raises(ConversionError, match=r"latest_net_G\.pth is not a state dict"):
        convert_official(opt, {"generator": pth}, tmp_path / "model")


class PickledThing:
    """Any custom class: unpickling it would run code, so it must never be loaded."""

    def __init__(self) -> None:
        self.weight = torch.zeros(1)


def test_conversion_refuses_pickled_code(tmp_path):
    opt, pth, _ = _official_files(tmp_path)
    torch.save({"net": PickledThing()}, pth)
    with pytest.raises(ConversionError, match=r"holds pickled objects .* semsyn never unpickles"):
        convert_official(opt, {"generator": pth}, tmp_path / "model")
    assert not (tmp_path / "model" / "model.safetensors").exists()
