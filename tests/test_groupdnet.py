"""GroupDNet: official sizes, any class count / group schedule / image shape, absent classes, per-class codes."""

from __future__ import annotations

import pytest
import torch

import semsyn
from semsyn.builder import build_model
from semsyn.errors import SpecError
from semsyn.labels import LabelSchema
from semsyn.spec import load_spec
from semsyn_models.groupdnet import GroupDNetEncoder, GroupDNetGenerator, class_crops

# SMIS ADE20KGenerator builds an up_4 block (2 ngf -> ngf) it never calls; semsyn does not build it.
ADE20K_UNUSED_UP_4 = 1_868_132


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("name", "generator", "encoder", "unused"),
    [
        ("groupdnet-deepfashion", 96_324_451, 12_835_712, 0),
        ("groupdnet-ade20k", 68_326_847, 4_411_012, ADE20K_UNUSED_UP_4),
        ("groupdnet-cityscapes", 76_501_358, 5_768_210, 0),
    ],
)
def test_official_configs_have_the_official_parameter_counts(name, generator, encoder, unused):
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = build_model(load_spec(name))
    assert _count(model.generator) + unused == generator
    assert _count(model.encoder) == encoder


def _tiny(schema: LabelSchema, size=(32, 64), **kw) -> tuple[GroupDNetGenerator, GroupDNetEncoder]:
    params = {"ngf": 5, "latent_per_class": 3, "num_upsampling_layers": "normal", "norm_hidden_channels": 10, **kw}
    return GroupDNetGenerator(schema, size, **params).eval(), _encoder(schema, size)


def _encoder(schema: LabelSchema, size) -> GroupDNetEncoder:
    return GroupDNetEncoder(schema, size, ndf=2 * schema.one_hot_channels, latent_per_class=3, num_layers=5).eval()


def _label(schema: LabelSchema, size, n=2, seed=0) -> torch.Tensor:
    return torch.randint(0, schema.one_hot_channels, (n, *size), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("schema", "groups", "layout"),
    [
        (LabelSchema(5), [5, 5, 5, 5, 5, 1, 1, 1], "shared"),
        (LabelSchema(4, dontcare=True, instance_edges=True), [5, 5, 5, 5, 1, 1, 1, 1], "per-class"),
        (LabelSchema(5, instance_edges=True), [5, 5, 5, 1, 1, 1, 1, 1], "per-class-wide"),
    ],
)
def test_non_square_images_other_class_counts_and_schedules_render(schema, groups, layout):
    size = (32, 64)
    gen, enc = _tiny(schema, size, groups=groups, norm_layout=layout)
    model = semsyn.SynthesisModel(_spec(schema, size), gen, enc)
    label = _label(schema, size)
    image = torch.rand(2, 3, *size) * 2 - 1
    style = model.encode_style(image, label)
    assert style.mu.shape == (2, 5 * 3, 1, 2) == (2, *gen.latent_shape)
    out = model.synthesize(label, style=style)
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()


def _spec(schema: LabelSchema, size) -> semsyn.Spec:
    return semsyn.Spec(
        {
            "schema": 1,
            "name": "t",
            "labels": schema.to_dict(),
            "image_size": list(size),
            "generator": {"name": "groupdnet"},
        }
    )


def test_a_group_count_that_does_not_divide_the_channels_is_a_spec_error():
    with pytest.raises(SpecError, match="'groups'.*not divisible into 3 groups"):
        GroupDNetGenerator(
            LabelSchema(5),
            (32, 32),
            ngf=5,
            groups=[5, 5, 5, 3, 1, 1, 1, 1],
            num_upsampling_layers="normal",
            norm_hidden_channels=10,
        )


def test_absent_classes_encode_to_the_prior_at_any_image_size():
    schema = LabelSchema(6)
    size = (40, 72)  # neither square nor the official 256
    enc = _encoder(schema, size)
    label = _label(schema, size, n=1) % 4  # classes 4 and 5 are absent
    sem = torch.nn.functional.one_hot(label, 6).permute(0, 3, 1, 2).float()
    mu, logvar = enc(torch.rand(1, 3, *size) * 2 - 1, sem)
    absent = slice(4 * 3, 6 * 3)
    assert torch.isfinite(mu).all() and torch.isfinite(logvar).all()
    assert mu[:, absent].abs().max() == 0 and logvar[:, absent].abs().max() == 0
    assert mu[:, : 4 * 3].abs().max() > 0


def test_class_crops_fill_each_class_block_from_its_bounding_box_only():
    image = torch.zeros(1, 3, 8, 10)
    masks = torch.zeros(1, 2, 8, 10)
    masks[0, 0, 2:4, 3:8] = 1  # a 2x5 box
    image[0, :, 2:4, 3:8] = 0.5
    crops, present = class_crops(image, masks, (4, 10))
    assert present.tolist() == [[True, False]]
    assert torch.equal(crops[0, :3], torch.full((3, 4, 10), 0.5))  # the box, nearest-resized, fills the crop
    assert crops[0, 3:].abs().max() == 0


def test_a_class_encodes_from_its_own_pixels_only():
    """Exact locality of the encoder: editing class c's pixels changes class c's code and no other."""
    schema = LabelSchema(4)
    size = (64, 64)
    enc = _encoder(schema, size)
    label = torch.zeros(1, *size, dtype=torch.long)
    label[:, :32, 32:], label[:, 32:, :32], label[:, 32:, 32:] = 1, 2, 3
    sem = torch.nn.functional.one_hot(label, 4).permute(0, 3, 1, 2).float()
    image = torch.rand(1, 3, *size) * 2 - 1
    edited = image.clone()
    edited[:, :, 32:, 32:] = -image[:, :, 32:, 32:]  # class 3's quadrant
    with torch.no_grad():
        before, after = enc(image, sem)[0], enc(edited, sem)[0]
    change = (before - after).abs().amax(dim=(0, 2, 3)).view(4, 3).amax(dim=1)
    assert change[3] > 1e-3 and change[:3].max() == 0


def test_a_class_edit_stays_within_4px_of_the_class_when_its_norms_close_outside_it():
    """Locality of the generator, exactly: with every stage grouped per class and norms whose gamma is -1 where
    a class is absent (what a trained GroupDNet learns to approach), class c's code cannot reach pixels more
    than 4 px from class c: 2 px through the last norm's two 3x3 convs, 1 px for conv_1, 1 px for conv_img.
    Measured: the change beyond 4 px is exactly 0, inside the class it is > 0.
    """
    schema, size = LabelSchema(4), (64, 64)
    gen, _ = _tiny(schema, size, ngf=4, groups=[4] * 8, norm_layout="per-class-wide")
    with torch.no_grad():
        for name, module in gen.named_modules():
            if name.endswith(("norm_0", "norm_1", "norm_s")):
                shared, gamma = module.mlp_shared[0], module.mlp_gamma
                shared.bias.zero_()  # hidden = relu(0) = 0 away from the mask, 1 deep inside it ...
                shared.weight.fill_(1 / 9)
                gamma.bias.fill_(-1.0)  # ... so gamma = -1 (closed) away from it, 0 (open) inside
                gamma.weight.fill_(1 / gamma.weight[0].numel())
    model = semsyn.SynthesisModel(_spec(schema, size), gen)
    label = torch.full((1, *size), 3)
    label[:, :, :16], label[:, :32, 16:40], label[:, 32:, 16:40] = 0, 1, 2
    style = model.sample_style(seed=0)
    before = model.synthesize(label, style=style)
    after = model.synthesize(label, style=style.resample_class(0, seed=1))
    change = (before - after).abs().amax(dim=1)[0]
    assert change[:, :16].max() > 1e-3 * before.abs().max()  # class 0's pixels change
    assert change[:, 16 + 4 :].max() == 0  # nothing more than 4 px away does
