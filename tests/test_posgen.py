"""PosGen: any-size rendering, pixel independence, exact tiling, its specs, and the any-size API of the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from test_train_support import quiet_cpu

import semsyn
from semsyn import GENERATORS, HubError, SemsynError, SpecError
from semsyn.labels import LabelSchema, semantics
from semsyn_models.posgen import pixel_grid

HUB_CONFIGS = Path(__file__).resolve().parents[1] / "hub_configs"
SCHEMA = LabelSchema(num_classes=4, dontcare=False, instance_edges=True)
TINY = {
    "ngf": 2,
    "cond_norm_params": {"hidden_channels": 4},
    "fourier_features": 6,
    "decoder_channels": 8,
    "decoder_layers": 2,
}


def _gen(image_size: tuple[int, int] = (64, 64), **params) -> torch.nn.Module:
    torch.manual_seed(0)
    gen = GENERATORS.get("posgen")(label_channels=SCHEMA.label_channels, image_size=image_size, **{**TINY, **params})
    return gen.eval()


def _label(size: tuple[int, int], seed: int = 0, n: int = 1) -> torch.Tensor:
    return torch.randint(0, SCHEMA.num_classes, (n, *size), generator=torch.Generator().manual_seed(seed))


def _sem(label: torch.Tensor) -> torch.Tensor:
    return semantics(label, SCHEMA, label)


@pytest.fixture(scope="module", autouse=True)
def _one_cpu_thread():
    with quiet_cpu():  # tiny convs lose 10-50x on a second thread when the cores are shared
        yield


# -- specs and the "no weights exist" promise ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["posgen-coco", "posgen-cityscapes"])
def test_hub_config_is_fully_resolved(name):
    raw = yaml.safe_load((HUB_CONFIGS / f"{name}.yaml").read_text())
    assert semsyn.load_spec(name).resolved().to_dict() == raw


def test_no_posgen_is_listed_as_pretrained():
    assert set(semsyn.list_models("posgen-*")) == {"posgen-coco", "posgen-cityscapes", "posgen-synthetic"}
    assert semsyn.list_models("posgen-*", pretrained=True) == []


@pytest.mark.parametrize("name", ["posgen-coco", "posgen-cityscapes"])
def test_named_posgen_has_no_weights_anywhere_and_says_so_without_a_download(name):
    spec = semsyn.load_spec(name)
    assert spec.pretrained["published"] is False and spec.pretrained["official_checkpoint"] is None
    with pytest.raises(HubError, match="no official checkpoint of it exists"):
        semsyn.create_model(name, pretrained=True)


def test_card_of_a_saved_posgen_states_its_real_origin(tmp_path):
    model = semsyn.create_model("posgen-synthetic", generator=TINY)
    text = (model.save_pretrained(tmp_path / "m") / "README.md").read_text()
    assert "kind: random-init" in text and "provenance-random-init" in text
    assert "official" not in text.lower()


# -- construction --------------------------------------------------------------------------------------------


def test_trunk_keeps_the_first_spade_stages_and_ends_at_a_quarter_resolution():
    gen = _gen(num_spade_blocks=5)
    assert [name for name, _ in gen.schedule] == ["head_0", "G_middle_0", "G_middle_1", "up_0", "up_1"]
    assert not hasattr(gen, "up_2")
    with torch.no_grad():
        assert gen.trunk(_sem(_label((64, 64)))).shape[-2:] == (16, 16)


def test_too_many_spade_blocks_is_a_spec_error():
    with pytest.raises(SpecError, match=r"'num_spade_blocks': 8 is outside 1\.\.7"):
        _gen(num_spade_blocks=8)


def test_fourier_weights_have_the_siren_first_layer_bound():
    weight = _gen(fourier_features=512, fourier_scale=2.0).fourier.proj.weight
    bound = 2.0 * (9 / 2) ** 0.5
    assert weight.abs().max() <= bound and weight.abs().max() > 0.9 * bound


# -- the coordinate grid -------------------------------------------------------------------------------------


def test_grid_is_right_for_non_square_images():
    coords, _ = pixel_grid((3, 5), 0, 15, device=torch.device("cpu"), dtype=torch.float32)
    x, y = coords.view(2, 3, 5)
    assert torch.allclose(x, torch.linspace(-1, 1, 5).expand(3, 5))
    assert torch.allclose(y, torch.linspace(-1, 1, 3)[:, None].expand(3, 5))


def test_sampling_at_pixel_centres_is_bilinear_upsampling():
    features = torch.randn(2, 3, 4, 6, generator=torch.Generator().manual_seed(1))
    _, centres = pixel_grid((12, 30), 0, 360, device=torch.device("cpu"), dtype=torch.float32)
    grid = centres.view(1, 12, 30, 2).expand(2, -1, -1, -1)
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
    upsampled = F.interpolate(features, size=(12, 30), mode="bilinear", align_corners=False)
    assert torch.allclose(sampled, upsampled, atol=1e-5)


# -- any size ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [None, (128, 128), (256, 256), (40, 90)])
def test_renders_at_the_requested_size(size):
    with torch.no_grad():
        out = _gen()(_sem(_label((64, 64), n=2)), size=size)
    assert tuple(out.shape) == (2, 3, *(size or (64, 64))) and out.abs().max() <= 1


def test_model_renders_any_size_through_synthesize():
    model = semsyn.create_model(
        "posgen-synthetic", generator={"ngf": 2, "cond_norm_params": {"hidden_channels": 4}, "decoder_channels": 8}
    )
    assert model.renders_any_size
    assert tuple(model.synthesize(_label((64, 64)), size=(96, 160)).shape) == (1, 3, 96, 160)


def test_a_fixed_size_generator_refuses_size_naming_itself():
    model = semsyn.create_model("spade-synthetic", generator={"ngf": 2, "cond_norm_params": {"hidden_channels": 4}})
    assert not model.renders_any_size
    with pytest.raises(SemsynError, match=r"generator 'spade' renders at its built size"):
        model.synthesize(_label((64, 64)), size=(128, 128))


# -- pixel independence and tiling ---------------------------------------------------------------------------


def test_a_pixel_rendered_alone_equals_that_pixel_of_the_full_render():
    gen = _gen()
    with torch.no_grad():
        features = gen.trunk(_sem(_label((64, 64))))
        full = gen.decode(features, (150, 110), 0, 150 * 110)
        for p in (0, 109, 7777, 150 * 110 - 1):
            assert torch.allclose(gen.decode(features, (150, 110), p, p + 1)[..., 0], full[..., p], atol=1e-6)


@pytest.mark.parametrize("size", [(64, 64), (128, 256)])
def test_tiled_and_untiled_renders_agree(size):
    gen, sem = _gen(), _sem(_label((64, 64), n=2))
    with torch.no_grad():
        gen.tile_pixels = 0
        whole = gen(sem, size=size)
        gen.tile_pixels = 777  # divides neither size: the last tile is partial
        tiled = gen(sem, size=size)
    assert torch.allclose(whole, tiled, atol=1e-6)


def test_pixels_ignore_labels_outside_the_trunks_receptive_field():
    # A 32x512 strip: the output's left 32 columns, measured with autograd, depend on label columns < `reach`
    # only; relabelling every column from reach + 2 on (the instance edges then change from reach + 1 on)
    # leaves those pixels unchanged while the pixels over the relabelled part change.
    gen, label = _gen(image_size=(32, 512)), _label((32, 512))
    sem = _sem(label).requires_grad_(True)
    gen(sem)[..., :32].sum().backward()
    reach = int(sem.grad.abs().sum((0, 1, 2)).nonzero().max()) + 1
    assert 32 < reach < 400
    changed = label.clone()
    changed[..., reach + 2 :] = (changed[..., reach + 2 :] + 1) % SCHEMA.num_classes
    with torch.no_grad():
        before, after = gen(_sem(label)), gen(_sem(changed))
    assert torch.equal(before[..., :32], after[..., :32])
    assert not torch.allclose(before[..., reach + 100 :], after[..., reach + 100 :])


def test_posgen_synthetic_trains_with_the_fpse_discriminator(tmp_path):
    # The patchgan pairing is trained by test_train.py's every-synthetic-spec test; this is the other one.
    from test_train_support import tiny_overrides

    from semsyn.cli.train import main

    run = tmp_path / "run"
    overrides = tiny_overrides("posgen-synthetic", discriminator={"name": "fpse", "ndf": 4})
    assert main(["posgen-synthetic", "--out", str(run), *overrides]) == 0
    spec = yaml.safe_load((run / "final" / "spec.yaml").read_text())
    assert spec["discriminator"]["name"] == "fpse" and spec["generator"]["name"] == "posgen"
    model = semsyn.create_model(f"local-dir:{run / 'final'}", pretrained=True)
    assert tuple(model.synthesize(_label((64, 64)), size=(128, 96)).shape) == (1, 3, 128, 96)
