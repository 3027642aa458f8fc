"""CC-FPSE: the conditional depthwise convolution, the cc generator, the fpse discriminator, their specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import semsyn
from semsyn.builder import build_model
from semsyn.errors import ConversionError, LabelError, SemsynError, SpecError
from semsyn_models import ccfpse
from semsyn_models.ccfpse import (
    DEPTHWISE_IMPLS,
    GENERATOR_KEYS,
    CCFPSEOfficialFormat,
    CondConvGenerator,
    DepthsepCCBlock,
    FPSEDiscriminator,
    cond_depthwise_conv3x3,
    predicted_cond_depthwise_conv3x3,
)

ROOT = Path(__file__).resolve().parents[1]


def _operands(shape: tuple[int, int, int, int], dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype, requires_grad=True)
    weights = torch.randn(n, 9 * c, h, w, generator=g, dtype=dtype, requires_grad=True)
    return x, weights


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _semantics(n: int, channels: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, channels - 1, (n, 1, *size), generator=g)
    sem = torch.zeros(n, channels, *size).scatter_(1, label, 1.0)
    sem[:, -1] = (torch.rand(n, *size, generator=g) > 0.8).float()  # an instance-edge-like channel
    return sem


# -- the conditional depthwise convolution ------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 4, 1, 6), (3, 2, 8, 8)])
def test_lean_matches_unfold_outputs_and_gradients(shape):
    x, weights = _operands(shape)
    grad = torch.randn(shape[0], shape[1], shape[2], shape[3], generator=torch.Generator().manual_seed(9))
    results = {}
    for impl in ("lean", "unfold"):
        out = cond_depthwise_conv3x3(x, weights, impl)
        gx, gw = torch.autograd.grad(out, (x, weights), grad)
        results[impl] = (out, gx, gw)
    for lean, ref in zip(results["lean"], results["unfold"]):
        torch.testing.assert_close(lean, ref, rtol=1e-5, atol=1e-5)


def test_lean_passes_gradcheck_in_float64():
    x, weights = _operands((2, 2, 4, 5), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: cond_depthwise_conv3x3(a, b, "lean"), (x, weights))


def test_weight_layout_is_channel_times_nine_plus_row_major_tap():
    # Only tap (ky, kx) = (0, 2) of channel 1 is on: out[1, y, x] = in[1, y - 1, x + 1] (zero outside).
    x = torch.arange(2 * 4 * 5, dtype=torch.float32).view(1, 2, 4, 5)
    weights = torch.zeros(1, 18, 4, 5)
    weights[:, 1 * 9 + 0 * 3 + 2] = 1.0
    expected = torch.zeros(1, 2, 4, 5)
    expected[0, 1, 1:, :-1] = x[0, 1, :-1, 1:]
    for impl in ("lean", "unfold"):
        torch.testing.assert_close(cond_depthwise_conv3x3(x, weights, impl), expected)


def _saved_storages(impl: str, x: torch.Tensor, weights: torch.Tensor) -> dict[int, int]:
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        cond_depthwise_conv3x3(x, weights, impl)
    return storages


def test_lean_keeps_only_its_inputs_for_backward():
    x, weights = _operands((1, 4, 16, 16))
    inputs = {x.untyped_storage().data_ptr(), weights.untyped_storage().data_ptr()}
    lean = _saved_storages("lean", x, weights)
    unfold = _saved_storages("unfold", x, weights)
    assert set(lean) <= inputs
    # The official formula keeps a 9x copy of x on top of its inputs.
    assert sum(b for p, b in unfold.items() if p not in inputs) == 9 * x.numel() * x.element_size()


def _predictor_operands(shape: tuple[int, int, int, int], hidden: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(1)
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype, requires_grad=True)
    hid = torch.randn(n, hidden, h, w, generator=g, dtype=dtype).relu().requires_grad_()
    weight = torch.randn(9 * c, hidden, 3, 3, generator=g, dtype=dtype).mul_(0.3).requires_grad_()
    bias = torch.randn(9 * c, generator=g, dtype=dtype, requires_grad=True)
    return x, hid, weight, bias


def test_recompute_passes_gradcheck_in_float64():
    operands = _predictor_operands((2, 2, 4, 5), hidden=3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: predicted_cond_depthwise_conv3x3(*a, impl="recompute"), operands)


def test_recompute_keeps_x_and_the_predictor_operands_not_the_kernels():
    x, hid, weight, bias = _predictor_operands((1, 4, 16, 16), hidden=3)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        predicted_cond_depthwise_conv3x3(x, hid, weight, bias, impl="recompute")
    assert set(saved) == {t.untyped_storage().data_ptr() for t in (x, hid, weight, bias)}


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_recompute_in_bands_of_rows_matches_unfold(monkeypatch, rows):
    # x (2, 3, 13, 7): a row of kernels is 2 * 27 * 7 * 4 bytes, and bands are a quarter of the threshold
    # (so at most a quarter of the rows). 13 rows in bands of 2 and 3 leave a last band of 1 row.
    monkeypatch.setattr(ccfpse, "RECOMPUTE_BAND_BYTES", 4 * rows * 2 * 27 * 7 * 4)
    x, hid, weight, bias = _predictor_operands((2, 3, 13, 7), hidden=5)
    assert ccfpse._band_rows(x, weight.shape[0]) == rows
    grad = torch.randn(2, 3, 13, 7, generator=torch.Generator().manual_seed(4))
    results = []
    for impl in ("unfold", "recompute"):
        out = predicted_cond_depthwise_conv3x3(x, hid, weight, bias, impl=impl)
        results.append((out, *torch.autograd.grad(out, (x, hid, weight, bias), grad)))
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m, i=i: f"result {i}: {m}")


def test_recompute_in_bands_without_bias_or_the_gradient_of_x(monkeypatch):
    monkeypatch.setattr(ccfpse, "RECOMPUTE_BAND_BYTES", 4 * 2 * 2 * 27 * 7 * 4)  # bands of 2 rows
    x, hid, weight, _ = _predictor_operands((2, 3, 13, 7), hidden=5)
    x = x.detach()  # the banded backward then computes no kernels, only their gradient
    grad = torch.randn(2, 3, 13, 7, generator=torch.Generator().manual_seed(4))
    results = []
    for impl in ("unfold", "recompute"):
        out = predicted_cond_depthwise_conv3x3(x, hid, weight, None, impl=impl)
        results.append((out, *torch.autograd.grad(out, (hid, weight), grad)))
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5, msg=lambda m, i=i: f"result {i}: {m}")


def test_recompute_in_bands_passes_gradcheck_in_float64(monkeypatch):
    monkeypatch.setattr(ccfpse, "RECOMPUTE_BAND_BYTES", 1)  # one row per band
    operands = _predictor_operands((2, 2, 4, 5), hidden=3, dtype=torch.float64)
    assert ccfpse._band_rows(operands[0], 18) == 1
    assert torch.autograd.gradcheck(lambda *a: predicted_cond_depthwise_conv3x3(*a, impl="recompute"), operands)


def test_recompute_bands_only_kernels_above_the_threshold():
    x = torch.empty(1, 64, 256, 256)
    assert ccfpse._band_rows(x, 9 * 64) < 256  # 144 MiB of kernels: bands of at most 16 MiB
    assert ccfpse._band_rows(x, 9 * 64) * 9 * 64 * 256 * 4 <= ccfpse.RECOMPUTE_BAND_BYTES // 4
    assert ccfpse._band_rows(torch.empty(1, 256, 64, 64), 9 * 256) == 64  # 36 MiB: whole
    assert ccfpse._band_rows(torch.empty(1, 64, 256, 256, device="meta"), 9 * 64) == 256  # not on CPU: whole


def test_predicted_cond_depthwise_rejects_a_predictor_of_the_wrong_width():
    x, hid, weight, bias = _predictor_operands((1, 3, 4, 4), hidden=5)
    with pytest.raises(SemsynError, match=r"expected a weight \(27, K, 3, 3\)"):
        predicted_cond_depthwise_conv3x3(x, hid, weight[:18], bias[:18], impl="recompute")


def test_cond_depthwise_rejects_weights_of_the_wrong_shape():
    x, weights = _operands((1, 3, 4, 4))
    with pytest.raises(SemsynError, match=r"expected \(1, 27, 4, 4\)"):
        cond_depthwise_conv3x3(x, weights[:, :18])


# -- official sizes -----------------------------------------------------------------------------------------


def _dead_batchnorm_params(ngf: int) -> int:
    """Parameters of the official BatchNorms semsyn does not build: norm_0 (fmiddle), conv_0 (fin), conv_2 (fmiddle)."""
    blocks = [(16, 16)] * 3 + [(16, 8), (8, 4), (4, 2), (2, 1)]
    return sum(2 * (fin + 2 * fout) * ngf for fin, fout in blocks)


@pytest.mark.parametrize(
    ("label_channels", "image_size", "upsampling", "use_vae", "official"),
    [
        (184, (256, 256), "normal", True, 141_939_843),  # COCO-Stuff
        (184, (256, 256), "normal", False, 126_793_859),
        (36, (256, 512), "more", True, 128_055_555),  # Cityscapes
        (151, (256, 256), "normal", True, 140_704_323),  # ADE20K
    ],
)
def test_generator_has_the_official_parameter_count(label_channels, image_size, upsampling, use_vae, official):
    with torch.device("meta"):
        gen = CondConvGenerator(label_channels, image_size, num_upsampling_layers=upsampling, use_vae=use_vae)
    assert _n_params(gen) + _dead_batchnorm_params(64) == official


@pytest.mark.parametrize(("label_channels", "official"), [(184, 5_194_817), (36, 5_175_873), (151, 5_190_593)])
def test_discriminator_has_the_official_parameter_count(label_channels, official):
    with torch.device("meta"):
        assert _n_params(FPSEDiscriminator(label_channels)) == official


# -- generator ----------------------------------------------------------------------------------------------


# -- blocks -------------------------------------------------------------------------------------------------


def test_block_recompute_matches_unfold_on_outputs_and_gradients_of_x_cond_and_heads():
    torch.manual_seed(0)
    ref = DepthsepCCBlock(6, 4, 5, hidden_channels=7, depthwise_impl="unfold")
    fused = DepthsepCCBlock(6, 4, 5, hidden_channels=7, depthwise_impl="recompute")
    fused.load_state_dict(ref.state_dict())
    g = torch.Generator().manual_seed(2)
    x, cond = torch.randn(2, 6, 9, 7, generator=g), torch.randn(2, 5, 9, 7, generator=g)
    results = []
    for block in (ref, fused):
        xi, ci = x.clone().requires_grad_(), cond.clone().requires_grad_()
        out = block(xi, ci)
        heads = [p for n, p in block.named_parameters() if n.startswith("gen_")]
        results.append((out, *torch.autograd.grad(out.square().sum(), (xi, ci, *heads))))
    assert len(results[0]) == 3 + 4 * 4  # output, x, cond, 4 heads x (2 convs x weight and bias)
    for i, (a, b) in enumerate(zip(*results)):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m, i=i: f"result {i}: {m}")


def test_block_state_dict_keys_do_not_depend_on_the_impl():
    keys = [set(DepthsepCCBlock(4, 2, 3, hidden_channels=5, depthwise_impl=i).state_dict()) for i in DEPTHWISE_IMPLS]
    assert keys[0] == keys[1] == keys[2] and "gen_weights1.2.weight" in keys[0]


def _tiny_generator(**kwargs) -> CondConvGenerator:
    torch.manual_seed(0)
    return CondConvGenerator(5, (32, 32), **{"ngf": 2, "hidden_channels": 8, **kwargs})


@pytest.mark.parametrize("impl", ["lean", "recompute"])
def test_generator_impl_agrees_with_unfold_on_outputs_and_gradients(impl):
    net, unfold = _tiny_generator(depthwise_impl=impl), _tiny_generator(depthwise_impl="unfold")
    unfold.load_state_dict(net.state_dict())
    sem, z = _semantics(2, 5, (32, 32)), torch.randn(2, 256, generator=torch.Generator().manual_seed(1))
    outs = [m(sem, z) for m in (net, unfold)]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    for out in outs:
        out.square().sum().backward()
    for (name, a), b in zip(net.named_parameters(), unfold.parameters()):
        # Scaled per parameter: the heads' first convs get gradients of ~1e-8 at this size and init.
        atol = 1e-5 * b.grad.abs().max().item()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=atol, msg=lambda m, n=name: f"{n}: {m}")


def test_generator_draws_z_with_the_given_torch_generator():
    gen = _tiny_generator().eval()
    sem = _semantics(1, 5, (32, 32))
    with torch.no_grad():
        a, b, c = (gen(sem, generator=torch.Generator().manual_seed(s)) for s in (3, 3, 4))
    torch.testing.assert_close(a, b)
    assert (a - c).abs().max() > 1e-4


def test_generator_follows_the_input_dtype():
    gen = _tiny_generator(use_vae=False).double().eval()
    with torch.no_grad():
        out = gen(_semantics(1, 5, (32, 32)).double())
    assert out.dtype == torch.float64 and out.shape == (1, 3, 32, 32)


def test_generator_without_vae_refuses_z():
    gen = _tiny_generator(use_vae=False)
    with pytest.raises(SemsynError, match="use_vae: false and takes no z"):
        gen(_semantics(1, 5, (32, 32)), torch.zeros(1, 256))


def test_generator_refuses_a_label_map_of_another_size():
    gen = _tiny_generator()
    with pytest.raises(LabelError, match=r"built for \(32, 32\)"):
        gen(_semantics(1, 5, (64, 64)))


def test_generator_refuses_an_image_size_its_label_fpn_cannot_halve():
    with pytest.raises(SpecError, match="multiples of 32"):
        CondConvGenerator(5, (64, 80), ngf=2, hidden_channels=8)


def test_more_upsamplings_add_a_level_to_the_label_fpn():
    gen = CondConvGenerator(5, (64, 128), ngf=2, hidden_channels=8, num_upsampling_layers="more")
    names = {n.split(".")[0] for n, _ in gen.named_parameters()}
    assert {"labelenc7", "labellat6", "labeldec6"} <= names and (gen.sh, gen.sw) == (1, 2)
    with torch.no_grad():
        assert gen.eval()(_semantics(1, 5, (64, 128))).shape == (1, 3, 64, 128)


# -- discriminator ------------------------------------------------------------------------------------------


def test_fpse_outputs_three_logit_scales_and_four_feature_maps():
    disc = FPSEDiscriminator(5, ndf=4)
    out = disc(torch.randn(2, 3, 64, 64), _semantics(2, 5, (64, 64)))
    assert [tuple(t.shape) for t in out.logits] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    assert [[tuple(t.shape) for t in scale] for scale in out.features] == [
        [(2, 8, 16, 16)],
        [(2, 16, 8, 8)],
        [(2, 32, 4, 4)],
        [(2, 32, 2, 2)],
    ]


def test_fpse_score_depends_on_the_label_map():
    disc = FPSEDiscriminator(5, ndf=4).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = disc(image, _semantics(1, 5, (64, 64), seed=0)).logits[0]
        b = disc(image, _semantics(1, 5, (64, 64), seed=1)).logits[0]
    assert (a - b).abs().max() > 1e-6


def test_fp_ablation_has_no_embedding_and_ignores_the_label_map():
    torch.manual_seed(0)
    disc = FPSEDiscriminator(5, ndf=4, semantic_embedding=False).eval()
    assert not any(n.startswith(("seg.", "embedding.")) for n, _ in disc.named_parameters())
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = disc(image, _semantics(1, 5, (64, 64), seed=0))
        b = disc(image, _semantics(1, 5, (64, 64), seed=1))
    for x, y in zip(a.logits, b.logits):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


# -- official format ----------------------------------------------------------------------------------------


def test_key_table_drops_the_dead_batchnorms_and_keeps_the_rest():
    assert GENERATOR_KEYS.map_key("up_0.norm_0.running_var") == (True, None)
    assert GENERATOR_KEYS.map_key("head_0.conv_2.norm_layer.weight") == (True, None)
    assert GENERATOR_KEYS.map_key("up_0.norm_1.running_var") == (True, "up_0.norm_1.running_var")
    assert GENERATOR_KEYS.map_key("labelenc1.0.1.weight") == (True, "labelenc1.0.1.weight")


def test_official_options_choose_the_sections():
    fmt = CCFPSEOfficialFormat()
    opt = {
        "label_nc": 35,
        "dataset_mode": "cityscapes",
        "crop_size": 512,
        "aspect_ratio": 2.0,
        "ngf": 64,
        "ndf": 64,
        "netG": "condconv",
        "netD": "fpse",
        "use_vae": True,
        "z_dim": 256,
    }
    assert fmt.section("generator", opt)["num_upsampling_layers"] == "more"
    assert fmt.section("encoder", opt) == {"name": "spade-conv", "ndf": 64}
    assert fmt.section("encoder", {**opt, "use_vae": False}) is None
    assert fmt.section("generator", {**opt, "netG": "spade"}) is None
    assert fmt.section("discriminator", {**opt, "netD": "multiscale"}) is None


def test_official_options_with_an_unsupported_norm_are_refused():
    opt = {
        "label_nc": 6,
        "dataset_mode": "coco",
        "crop_size": 64,
        "ngf": 1,
        "netG": "condconv",
        "norm_G": "spectralinstance",
    }
    with pytest.raises(ConversionError, match="norm_G = 'spectralinstance'"):
        CCFPSEOfficialFormat().section("generator", opt)


# -- specs --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "label_channels", "upsampling"),
    [("ccfpse-coco", 184, "normal"), ("ccfpse-cityscapes", 36, "more"), ("ccfpse-ade20k", 151, "normal")],
)
def test_named_specs_build_the_official_networks(name, label_channels, upsampling):
    spec = semsyn.load_spec(name)
    assert spec.labels.label_channels == label_channels
    assert spec.data["losses"]["feature_matching"]["weight"] == 20.0
    with torch.device("meta"):
        model = build_model(spec, with_discriminator=True)
    assert model.generator.use_vae and model.encoder is not None
    assert model.generator.num_fpn_levels == {"normal": 6, "more": 7}[upsampling]
    assert _n_params(model.discriminator) == {184: 5_194_817, 36: 5_175_873, 151: 5_190_593}[label_channels]


def test_synthetic_spec_synthesizes_a_64px_image():
    model = semsyn.create_model("ccfpse-synthetic", with_discriminator=True)
    label = torch.randint(0, 10, (1, 64, 64), generator=torch.Generator().manual_seed(0))
    image = model.synthesize(label, seed=0)
    assert image.shape == (1, 3, 64, 64) and image.abs().max() <= 1


@pytest.mark.parametrize("cell", ["spade-fpse", "spade-fp", "cc-fpse", "cc-fp"])
def test_ablation_specs_build_and_run(cell):
    model = semsyn.create_model(str(ROOT / "docs" / "specs" / f"ablation-{cell}.yaml"), with_discriminator=True)
    generator, discriminator = cell.split("-")
    assert model.spec.data["generator"]["name"] == generator
    assert hasattr(model.discriminator, "embedding") == (discriminator == "fpse")
    sem = model.semantics(torch.randint(0, 10, (1, 64, 64), generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        out = model.discriminator(model.generator(sem), sem)
    assert [t.shape[-1] for t in out.logits] == [16, 8, 4]
