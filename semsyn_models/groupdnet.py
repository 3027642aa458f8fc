"""GroupDNet (SMIS): semantically multi-modal image synthesis with a per-class latent code.

Paper: Zhu, Xu, Yang, Yuan, Shi, Wang, "Semantically Multi-modal Image Synthesis", CVPR 2020. Official code:
https://github.com/Seanseattle/SMIS (`ADE20KGenerator`, `CityscapesGenerator`, `DeepFashionGenerator`,
`SPADEV2ResnetBlock`, `GROUP_SPADE`, `ConvEncoder`, `SmisModel.trans_img`); this file is written from the
architecture notes and loads the official checkpoints key for key (official module names are kept).

Every class has its own latent code: z is a spatial map (N, classes * latent_per_class, h, w), class-major
(channels c * latent_per_class ... (c + 1) * latent_per_class - 1 belong to class c). The generator is SPADE's
skeleton with grouped convolutions and grouped SPADE norms, so early stages keep classes apart; the encoder
crops every class's masked image to its bounding box, resizes the crops, stacks them class-major and encodes
them with grouped convolutions into per-class (mu, logvar) maps.

What differs from the official code, none of it visible in the numbers:

* the three official generator classes are one generator: the channel table (`channels`), the group
  schedule (`groups`) and the layout of the grouped norms (`norm_layout`) are spec fields, with the official
  values in `hub_configs/groupdnet-{deepfashion,cityscapes,ade20k}.yaml`;
* the ADE20K class builds an `up_4` block it never calls: it is not built; the key table accepts its tensors
  and the conversion report names them;
* the encoder's width (hard-coded 604 / 350 / 256 there) is `ndf`, its crop size `crop_size`, its depth
  `num_layers`;
* classes absent from an image (empty bounding box) encode to the prior: their mu and logvar are 0, so a
  reparameterised z is a prior sample there. The official code encodes a zero image for them and only
  manages to do so at 256x256;
* z = None draws N(0, 1) with the caller's `torch.Generator` on the input's device;
* the instance-edge channel, when the label schema has one, is interleaved with every class mask as in the
  official Cityscapes mode, whatever `norm_layout` is.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from semsyn.convert import OFFICIAL_FORMATS, KeyTable
from semsyn.errors import ConversionError, SemsynError, SpecError
from semsyn.labels import LabelSchema
from semsyn.registry import COND_NORMS, ENCODERS, GENERATORS, ref
from semsyn_models.layers import (
    UPSAMPLINGS,
    SPADEResnetBlock,
    check_official_latent_size,
    init_xavier,
    latent_size,
    lrelu,
    make_norm,
    parse_norm_option,
    resize_nearest,
    run_stages,
    spectral,
)

__all__ = ["GroupSPADE", "GroupDNetGenerator", "GroupDNetEncoder", "class_crops", "GroupDNetOfficialFormat"]

logger = logging.getLogger(__name__)

NormLayout = Literal["shared", "per-class", "per-class-wide"]
STAGES = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3")


# -- helpers -----------------------------------------------------------------------------------------------


def split_semantics(semantics: torch.Tensor, classes: int, instance_edges: bool) -> torch.Tensor:
    """The map the grouped norms see: the class masks, or [mask_0, edge, mask_1, edge, ...] with instance edges.

    The interleaving is the official Cityscapes mode's: each class group then sees its mask and the edges.
    """
    masks = semantics[:, :classes]
    if not instance_edges:
        return masks
    edge = semantics[:, classes : classes + 1].expand_as(masks)
    return torch.stack((masks, edge), dim=2).flatten(1, 2)


def class_crops(image: torch.Tensor, masks: torch.Tensor, size: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The official `trans_img`: every class's masked image cropped to its bounding box and resized, class-major.

    For class c, image * mask_c; the rows and columns whose (signed) RGB sum is non-zero bound the crop, which
    is resized to `size` with legacy nearest interpolation. A class with an empty box gives zeros.

    Args:
        image: (N, 3, H, W) in [-1, 1].
        masks: (N, C, H, W) one-hot class masks.
        size: (h, w) of every crop.

    Returns:
        crops (N, 3 * C, h, w) and present (N, C) bool: which classes had a non-empty box.
    """
    n, classes = masks.shape[:2]
    out = image.new_zeros(n, classes, 3, *size)
    present = torch.zeros(n, classes, dtype=torch.bool, device=image.device)
    masked = image.unsqueeze(1) * masks.unsqueeze(2)  # (N, C, 3, H, W)
    rgb = masked.sum(dim=2)
    rows, cols = rgb.sum(dim=3) != 0, rgb.sum(dim=2) != 0  # parity: signed sums, as the official code
    for i in range(n):
        for c in range(classes):
            r, k = rows[i, c].nonzero(), cols[i, c].nonzero()
            if r.numel() == 0 or k.numel() == 0:
                continue
            crop = masked[i, c, :, int(r[0]) : int(r[-1]) + 1, int(k[0]) : int(k[-1]) + 1]
            out[i, c] = F.interpolate(crop.unsqueeze(0), size=tuple(size), mode="nearest")[0]
            present[i, c] = True
    return out.flatten(1, 2), present


def _check_divides(field: str, what: str, channels: int, groups: int) -> None:
    if groups < 1 or channels % groups:
        raise SpecError(
            f"generator field {field!r}: {what} has {channels} channels, not divisible into {groups} groups; "
            f"choose group counts that divide every stage's channels (or widths that are multiples of them)"
        )


# -- blocks --------------------------------------------------------------------------------------------------


@COND_NORMS.register("group-spade", test_params={"groups": 2, "hidden_channels": 4})
class GroupSPADE(nn.Module):
    """SMIS's GROUP_SPADE: SPADE whose convs are grouped, so groups of channels are modulated by groups of classes.

    out = norm(x) * (1 + gamma(seg)) + beta(seg), with mlp_shared a grouped 3x3 conv + ReLU on the label map
    (nearest-resized to x) and mlp_gamma / mlp_beta grouped 3x3 convs. Keys as SPADE's.

    Args:
        num_features: channels of x.
        label_channels: channels of the conditioning map.
        norm: registered parameter-free norm applied to x.
        groups: groups of mlp_gamma and mlp_beta.
        hidden_channels: output channels of mlp_shared.
        shared_groups: groups of mlp_shared.
        kernel_size: of all three convs.
    """

    def __init__(
        self,
        num_features: int,
        label_channels: int,
        norm: ref("norm") = "instance",
        groups: int = 1,
        hidden_channels: int = 128,
        shared_groups: int = 1,
        kernel_size: int = 3,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = make_norm(norm, num_features)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden_channels, kernel_size, padding=pad, groups=shared_groups), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=pad, groups=groups)
        self.mlp_beta = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=pad, groups=groups)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(resize_nearest(semantics, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


def norm_params(layout: str, classes: int, groups: int, hidden: int) -> dict[str, int]:
    """The grouped norm of a block with `groups` groups, in each of SMIS's three layouts.

    * shared (DeepFashion): hidden `hidden`; mlp_shared and gamma/beta in the block's groups;
    * per-class (ADE20K): mlp_shared per class, hidden 2 per class when the groups divide the classes, else
      classes * groups; gamma/beta in the block's groups;
    * per-class-wide (Cityscapes): mlp_shared and gamma/beta per class, hidden classes * groups.
    """
    if layout == "shared":
        return {"groups": groups, "hidden_channels": hidden, "shared_groups": groups}
    if layout == "per-class":
        width = 2 * classes if classes % groups == 0 else classes * groups
        return {"groups": groups, "hidden_channels": width, "shared_groups": classes}
    return {"groups": classes, "hidden_channels": classes * groups, "shared_groups": classes}


def _stage_norm_params(
    name: str, fin: int, fout: int, groups: int, layout: str, classes: int, seg_channels: int, hidden: int
) -> dict[str, int]:
    """The grouped norms' parameters of one block, after checking that every grouping divides its channels."""
    for what, n in (("input", fin), ("output", fout), ("middle", min(fin, fout))):
        _check_divides("groups", f"{name}'s {what}", n, groups)
    params = norm_params(layout, classes, groups, hidden)
    _check_divides("norm_layout", f"{name}'s norm input", seg_channels, params["shared_groups"])
    _check_divides("norm_layout", f"{name}'s norm hidden layer", params["hidden_channels"], params["groups"])
    for n in (fin, min(fin, fout)):
        _check_divides("norm_layout", f"{name}'s norms", n, params["groups"])
    return params


def default_groups(classes: int) -> list[int]:
    """SMIS DeepFashion's schedule relative to the class count C: C, C, C, C/2, C/2, C/4, C/4, C/8 (at least 1)."""
    return [classes, classes, classes, *(max(1, classes // d) for d in (2, 2, 4, 4, 8))]


# -- the registered networks ----------------------------------------------------------------------------------


@GENERATORS.register(
    "groupdnet",
    # Tiny widths that divide for any class count with instance edges (the conformance schema, groupdnet-synthetic).
    test_params={"ngf": 2, "latent_per_class": 2, "groups": [2, 2, 2, 2, 2, 2, 1, 1], "norm_hidden_channels": 8},
)
class GroupDNetGenerator(nn.Module):
    """The GroupDNet generator: SPADE's skeleton with grouped convolutions, grouped norms and a per-class z.

    fc: grouped 3x3 conv on z (N, C * latent_per_class, sh, sw) -> channels[0]; then head_0, up, G_middle_0,
    [up with "more"], G_middle_1, up, up_0, up, up_1, up, up_2, up, up_3 (grouped residual blocks whose grouped
    norms see the class masks), conv_img (3x3 -> 3), tanh. C = one-hot channels of the label schema (classes +
    dontcare); the instance-edge channel, if any, is interleaved with every mask.

    A per-class latent: the generator declares `latent_per_class`, `latent_classes` and `latent_shape`
    (the contract `semsyn.style` reads).

    Args:
        labels: the label schema (injected).
        image_size: (H, W) (injected); the start map is `latent_size(image_size, num_upsampling_layers)`.
        ngf: base width; the channel table is SPADE's (16, 16, 16, 16, 8, 4, 2, 1) x ngf unless `channels`.
        channels: output channels of fc, head_0, G_middle_0, G_middle_1, up_0, up_1, up_2, up_3 (8 numbers);
            overrides ngf (SMIS ADE20K: 16 C, 16 C, 32 ngf, 16 ngf, 16 ngf, 8 ngf, 4 ngf, 2 ngf).
        groups: group counts of fc and the seven blocks (8 numbers); default SMIS DeepFashion's schedule
            relative to C (`default_groups`).
        latent_per_class: latent channels per class (official 8).
        num_upsampling_layers: 5 ("normal") or 6 ("more", official) x2 upsamplings.
        norm: parameter-free norm inside the grouped norms ("syncbatch" officially).
        norm_layout: how the grouped norms are grouped, see `norm_params` ("shared": SMIS DeepFashion,
            "per-class": ADE20K, "per-class-wide": Cityscapes).
        norm_hidden_channels: hidden width of the "shared" layout's norms (official 128).
        spectral_norm: spectral norm on the blocks' convs.
    """

    def __init__(
        self,
        labels: LabelSchema,
        image_size: tuple[int, int],
        ngf: int = 160,
        channels: list[int] | None = None,
        groups: list[int] | None = None,
        latent_per_class: int = 8,
        num_upsampling_layers: Literal["normal", "more"] = "more",
        norm: ref("norm") = "syncbatch",
        norm_layout: NormLayout = "shared",
        norm_hidden_channels: int = 128,
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_upsampling_layers not in ("normal", "more"):
            raise SpecError(
                f"generator field 'num_upsampling_layers': {num_upsampling_layers!r} is not 'normal' or 'more' "
                "(the official 'most' branches do not run)"
            )
        classes = labels.one_hot_channels
        self.latent_classes, self.latent_per_class = classes, latent_per_class
        self.instance_edges = labels.instance_edges
        self.sh, self.sw = latent_size(tuple(image_size), num_upsampling_layers)
        widths = list(channels) if channels is not None else [m * ngf for m in (16, 16, 16, 16, 8, 4, 2, 1)]
        schedule = list(groups) if groups is not None else default_groups(classes)
        for field, values in (("channels", widths), ("groups", schedule)):
            if len(values) != 8:
                raise SpecError(f"generator field {field!r}: needs 8 numbers (fc and seven blocks), got {values}")
        seg_channels = classes * (2 if self.instance_edges else 1)
        _check_divides("groups", "fc's input (classes x latent_per_class)", classes * latent_per_class, schedule[0])
        _check_divides("groups", "fc", widths[0], schedule[0])
        self.fc = nn.Conv2d(classes * latent_per_class, widths[0], 3, padding=1, groups=schedule[0])
        more = num_upsampling_layers == "more"
        self.schedule = list(zip(STAGES, (False, True, more, True, True, True, True)))
        for i, name in enumerate(STAGES):
            fin, fout, g = widths[i], widths[i + 1], schedule[i + 1]
            params = _stage_norm_params(name, fin, fout, g, norm_layout, classes, seg_channels, norm_hidden_channels)
            block = SPADEResnetBlock(
                fin,
                fout,
                seg_channels,
                cond_norm="group-spade",
                norm=norm,
                spectral_norm=spectral_norm,
                cond_norm_params=params,
                groups=g,
            )
            self.add_module(name, block)
        self.conv_img = nn.Conv2d(widths[-1], 3, 3, padding=1)
        init_xavier(self)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """Shape of one sample's z: (classes * latent_per_class, sh, sw)."""
        return (self.latent_classes * self.latent_per_class, self.sh, self.sw)

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Semantics (N, label_channels, H, W) (+ z (N, C * latent_per_class, sh, sw)) -> image in [-1, 1]."""
        n = semantics.shape[0]
        seg = split_semantics(semantics, self.latent_classes, self.instance_edges)
        if z is None:
            z = torch.randn(n, *self.latent_shape, generator=generator, device=semantics.device, dtype=semantics.dtype)
        if tuple(z.shape) != (n, *self.latent_shape):
            raise SemsynError(
                f"z has shape {tuple(z.shape)}; this groupdnet generator takes {(n, *self.latent_shape)} "
                "(batch, classes x latent_per_class, sh, sw)"
            )
        x = self.fc(z)
        x = run_stages(self, x, seg)
        return torch.tanh(self.conv_img(lrelu(x)))


@ENCODERS.register("groupdnet-conv", test_params={"latent_per_class": 2, "num_layers": 5})
class GroupDNetEncoder(nn.Module):
    """SMIS's encoder: per-class crops (`class_crops`) through grouped stride-2 convs to per-class (mu, logvar).

    3 C -> ndf -> 2 ndf -> 4 ndf -> 8 ndf -> 8 ndf [-> 8 ndf ...] (3x3 stride 2, C groups, norm, LeakyReLU 0.2),
    then `fc_mu`, `fc_var`: grouped 3x3 convs to C * latent_per_class channels. The output map is the crop size
    / 2^num_layers, which must be the generator's start size (sh, sw). Classes absent from the image get
    mu = logvar = 0, the prior. The encoder declares `latent_per_class` (see `semsyn.style`).

    Args:
        labels: the label schema (injected); C = one-hot channels (classes + dontcare).
        image_size: (H, W) (injected): the default crop size.
        ndf: base width, a multiple of C (official: ADE20K 604, Cityscapes 350, DeepFashion 256);
            default 4 per class (ADE20K's ratio).
        latent_per_class: latent channels per class (official 8).
        num_layers: stride-2 convs (official: 6 at crop size 256, 5 below).
        crop_size: (h, w) every class crop is resized to (official 256x256, Cityscapes 256x512); default
            image_size.
        spectral_norm: spectral norm on the convs.
        norm: registered param-free norm after each conv (the conv then has no bias); None: biased convs.
    """

    def __init__(
        self,
        labels: LabelSchema,
        image_size: tuple[int, int],
        ndf: int | None = None,
        latent_per_class: int = 8,
        num_layers: int = 6,
        crop_size: list[int] | None = None,
        spectral_norm: bool = True,
        norm: ref("norm") | None = "instance",
    ) -> None:
        super().__init__()
        classes = labels.one_hot_channels
        ndf = 4 * classes if ndf is None else ndf
        if ndf % classes:
            raise SpecError(f"encoder field 'ndf': {ndf} is not a multiple of the {classes} class channels")
        if num_layers < 5:
            raise SpecError(f"encoder field 'num_layers': {num_layers} < 5 (the official encoder has 5 or 6)")
        self.classes, self.latent_per_class = classes, latent_per_class
        self.crop_size = tuple(crop_size) if crop_size is not None else tuple(image_size)
        widths = [3 * classes, ndf, 2 * ndf, 4 * ndf, *([8 * ndf] * (num_layers - 3))]
        self.num_layers = num_layers
        for i in range(num_layers):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=norm is None, groups=classes)
            layers = [spectral(conv, spectral_norm)] + ([make_norm(norm, widths[i + 1])] if norm else [])
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.fc_mu = nn.Conv2d(8 * ndf, classes * latent_per_class, 3, padding=1, groups=classes)
        self.fc_var = nn.Conv2d(8 * ndf, classes * latent_per_class, 3, padding=1, groups=classes)
        init_xavier(self)

    def encode_crops(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class-major crops (N, 3 C, h, w) -> (mu, logvar), each (N, C * latent_per_class, h / 2^n, w / 2^n)."""
        x = crops
        for i in range(1, self.num_layers + 1):
            x = getattr(self, f"layer{i}")(x if i == 1 else lrelu(x))
        x = lrelu(x)
        return self.fc_mu(x), self.fc_var(x)

    def forward(self, image: torch.Tensor, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (N, 3, H, W) in [-1, 1] and its semantics -> per-class (mu, logvar); absent classes get zeros."""
        crops, present = class_crops(image, semantics[:, : self.classes], self.crop_size)
        mu, logvar = self.encode_crops(crops)
        keep = present.repeat_interleave(self.latent_per_class, dim=1)[:, :, None, None].to(mu.dtype)
        return mu * keep, logvar * keep


# -- official checkpoints (Seanseattle/SMIS) ----------------------------------------------------------------

_BLOCK = r"(head_0|G_middle_[01]|up_[0-3])"
_GENERATOR_RULES = (
    (r"fc\.(weight|bias)", r"fc.\1"),
    (rf"{_BLOCK}\.(conv_[01s])\.(bias|weight_orig|weight_u|weight_v)", r"\1.\2.\3"),
    (
        rf"{_BLOCK}\.(norm_[01s])\.param_free_norm\.(running_mean|running_var|num_batches_tracked)",
        r"\1.\2.param_free_norm.\3",
    ),
    (rf"{_BLOCK}\.(norm_[01s])\.(mlp_shared\.0|mlp_gamma|mlp_beta)\.(weight|bias)", r"\1.\2.\3.\4"),
    (r"conv_img\.(weight|bias)", r"conv_img.\1"),
)
GENERATOR_KEYS = KeyTable(_GENERATOR_RULES)
# parity: ADE20KGenerator builds up_4 and never calls it; its tensors are accepted and not converted.
ADE20K_GENERATOR_KEYS = KeyTable(((r"up_4\..+", None), *_GENERATOR_RULES))
ENCODER_KEYS = KeyTable(
    (
        (r"layer([1-9])\.0\.(bias|weight_orig|weight_u|weight_v)", r"layer\1.0.\2"),
        (r"(fc_mu|fc_var)\.(weight|bias)", r"\1.\2"),
    )
)
# SMIS hard-codes the encoder width per dataset mode; `fixture_encoder_ndf` is how a patched run records its own.
_OFFICIAL_NDF = {"ade20k": 604, "cityscapes": 350, "deepfashion": 256}
_PARAM_FREE = {"instance": "instance", "batch": "batch", "syncbatch": "syncbatch", "group": "group"}


def _official_generator(opt: Mapping[str, Any]) -> dict[str, Any]:
    net = str(opt.get("netG"))
    snc, ngf = int(opt["semantic_nc"]), int(opt.get("ngf", 64))
    norm_g = str(opt.get("norm_G", "spectralspadesyncbatch3x3"))
    spectral_norm = norm_g.startswith("spectral")
    param_free = norm_g.removeprefix("spectral").removeprefix("spade")[:-3]
    if not norm_g.removeprefix("spectral").startswith("spade") or norm_g[-3:] != "3x3" or param_free not in _PARAM_FREE:
        raise ConversionError(f"options field norm_G = {norm_g!r}: expected spectralspade<syncbatch|batch|instance>3x3")
    upsampling = str(opt.get("num_upsampling_layers", "more"))
    if upsampling not in ("normal", "more"):
        raise ConversionError(
            f"options field num_upsampling_layers = {upsampling!r}: GroupDNet runs 'normal' or 'more'"
        )
    check_official_latent_size(opt, upsampling)
    section: dict[str, Any] = {"name": "groupdnet", "ngf": ngf, "channels": None, "latent_per_class": 8}
    if net == "ADE20K":
        section |= {
            "channels": [16 * snc, 16 * snc, 32 * ngf, 16 * ngf, 16 * ngf, 8 * ngf, 4 * ngf, 2 * ngf],
            "groups": [snc, snc, 16, 16, 8, 4, 2, 1],
            "norm_layout": "per-class",
        }
    elif net == "Cityscapes":
        section |= {"groups": [snc, snc, snc, 20, 14, 10, 4, 1], "norm_layout": "per-class-wide"}
    else:
        # parity: DeepFashion's fc has 8 groups whatever the class count; its z view needs sh = sw = 4.
        start = int(opt.get("crop_size", 256)) >> UPSAMPLINGS[upsampling]
        if start != 4 or float(opt.get("aspect_ratio", 1.0)) != 1.0:
            raise ConversionError(
                f"DeepFashionGenerator hard-codes a 4x4 start map; crop_size {opt.get('crop_size')} with "
                f"num_upsampling_layers {upsampling!r} gives {start}x{start}"
            )
        section |= {"groups": [8, snc, snc, snc // 2, snc // 2, snc // 4, snc // 4, snc // 8], "norm_layout": "shared"}
    return section | {
        "num_upsampling_layers": upsampling,
        "norm": _PARAM_FREE[param_free],
        "norm_hidden_channels": 128,
        "spectral_norm": spectral_norm,
    }


class GroupDNetOfficialFormat:
    """Seanseattle/SMIS checkpoints (`--model smis`): the three generators and the `ConvEncoder`."""

    def section(self, part: str, opt: Mapping[str, Any]) -> dict[str, Any] | None:
        """The spec section of `part` the official options describe; None when they are not SMIS's."""
        if opt.get("model") != "smis" or opt.get("netG") not in ("ADE20K", "Cityscapes", "deepfashion"):
            return None
        if part == "generator":
            return _official_generator(opt)
        if part != "encoder":
            return None
        spectral_norm, norm = parse_norm_option(str(opt.get("norm_E", "spectralinstance")), "norm_E")
        mode = str(opt.get("dataset_mode"))
        snc = int(opt["semantic_nc"])
        ndf = opt.get("fixture_encoder_ndf") or _OFFICIAL_NDF.get(mode, 4 * snc)
        return {
            "name": "groupdnet-conv",
            "ndf": int(ndf),
            "latent_per_class": 8,
            "num_layers": 6 if int(opt.get("crop_size", 256)) >= 256 else 5,
            "crop_size": [256, 512] if mode == "cityscapes" else [256, 256],
            "spectral_norm": spectral_norm,
            "norm": norm,
        }

    def key_table(self, part: str, opt: Mapping[str, Any]) -> KeyTable:
        """Official keys -> semsyn keys: the same names; ADE20K's unused up_4 is accepted and dropped."""
        if part == "encoder":
            return ENCODER_KEYS
        return ADE20K_GENERATOR_KEYS if opt.get("netG") == "ADE20K" else GENERATOR_KEYS


OFFICIAL_FORMATS.register("groupdnet")(GroupDNetOfficialFormat())
