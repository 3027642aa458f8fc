"""SPADE / GauGAN: semantic image synthesis with spatially-adaptive normalisation.

Paper: Park, Liu, Wang, Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization",
CVPR 2019. Official code: https://github.com/NVlabs/SPADE (`SPADEGenerator`, `SPADEResnetBlock`,
`ConvEncoder`); this file is written from the architecture notes, and loads the official checkpoints
key for key (official module names are kept, so the key tables are short).

What differs from the official code, none of it visible in the numbers:

* options are typed keyword arguments instead of one `opt` namespace, and the norm string
  `spectralspadesyncbatch3x3` is three fields: `spectral_norm`, `norm`, `cond_norm` (+ `cond_norm_params`);
* the label-conditioned norm is any registered `cond-norm` (SPADE's is `spade` in `layers.py`);
* the aspect ratio comes from `image_size` (width / height) rather than an `aspect_ratio` option;
* with `use_vae` and no z, z is drawn on the input's device with the caller's `torch.Generator`
  (the official code draws on `input.get_device()`, which fails on CPU);
* the encoder's latent size is `z_dim` (hard-coded 256 in the official code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from semsyn.convert import OFFICIAL_FORMATS, KeyTable
from semsyn.errors import ConversionError, SpecError
from semsyn.registry import ENCODERS, GENERATORS, ref
from semsyn.spec import Range
from semsyn_models.layers import (
    UPSAMPLINGS,
    NoiseInjection,
    SPADEResnetBlock,
    check_cond_norm_params,
    check_official_latent_size,
    generator_stages,
    init_xavier,
    latent_size,
    lrelu,
    make_norm,
    parse_norm_option,
    run_stages,
    spectral,
    start_fc,
    start_map,
)

__all__ = [
    "SPADEGenerator",
    "ConvEncoder",
    "SpadeOfficialFormat",
]

logger = logging.getLogger(__name__)


@GENERATORS.register("spade", test_params={"ngf": 2, "cond_norm_params": {"hidden_channels": 8}})
class SPADEGenerator(nn.Module):
    """The SPADE generator: a stack of SPADE residual blocks, upsampled x2 between stages.

    Stages (channels in units of ngf): fc -> 16 @ (sh, sw); head_0 16; up; G_middle_0 16; [up if more/most];
    G_middle_1 16; up; up_0 8; up; up_1 4; up; up_2 2; up; up_3 1; [most: up; up_4 1/2]; conv_img -> 3; tanh.

    Args:
        label_channels: input channels (injected from the label schema).
        image_size: (H, W) the generator is built for (injected); the output is (sh * 2^n, sw * 2^n),
            see `latent_size`, which equals image_size when W and H are multiples of 2^n.
        ngf: base width (the last block's channels).
        num_upsampling_layers: 5, 6 or 7 x2 upsamplings (Cityscapes uses "more").
        use_vae: start from a latent z through a Linear layer (multimodal, trained with the `spade-conv`
            encoder and the KL loss) instead of a conv on the downsampled label map.
        z_dim: size of z (only with use_vae).
        norm: param-free norm inside each cond-norm ("syncbatch" officially: running stats in eval).
        cond_norm: label-conditioned norm block ("spade"; any registered cond-norm drops in).
        spectral_norm: spectral norm on the residual blocks' convs.
        cond_norm_params: extra keywords for every cond-norm block, e.g. ``{kernel_size: 5}`` or
            ``{hidden_channels: 64}`` for `spade`; checked against the block's signature.
        noise_injection: add per-pixel noise, with a learned per-channel scale, to every block's input
            (`layers.NoiseInjection`; not in the official SPADE): a source of texture for a generator
            without a VAE. Drawn with the `generator=` of `forward`, so a seed fixes the image.
        init_gain: gain of the xavier-normal init of every conv and linear layer (official 0.02). Trained
            from scratch on a short budget, a gain of 1 lets the convs without spectral norm (the modulation
            convs, conv_img) leave zero sooner (docs/evaluation.md). Irrelevant when weights are loaded.
    """

    def __init__(
        self,
        label_channels: int,
        image_size: tuple[int, int],
        ngf: Annotated[int, Range(ge=1)] = 64,
        num_upsampling_layers: Literal["normal", "more", "most"] = "normal",
        use_vae: bool = False,
        z_dim: Annotated[int, Range(ge=1)] = 256,
        norm: ref("norm") = "syncbatch",
        cond_norm: ref("cond-norm") = "spade",
        spectral_norm: bool = True,
        cond_norm_params: dict[str, Any] | None = None,
        noise_injection: bool = False,
        init_gain: Annotated[float, Range(gt=0)] = 0.02,
    ) -> None:
        super().__init__()
        if num_upsampling_layers not in UPSAMPLINGS:
            raise SpecError(
                f"generator field 'num_upsampling_layers': {num_upsampling_layers!r} is not one of "
                f"{', '.join(map(repr, UPSAMPLINGS))}"
            )
        check_cond_norm_params(cond_norm, cond_norm_params or {})
        self.ngf, self.use_vae, self.z_dim = ngf, use_vae, z_dim
        self.sh, self.sw = latent_size(tuple(image_size), num_upsampling_layers)
        n = UPSAMPLINGS[num_upsampling_layers]
        out_size = (self.sh << n, self.sw << n)
        if out_size != tuple(image_size):
            logger.warning("spade generator for image_size %s renders %s (multiples of 2^%d)", image_size, out_size, n)
        self.fc = start_fc(label_channels, 16 * ngf, use_vae=use_vae, z_dim=z_dim, size=(self.sh, self.sw))
        stages = generator_stages(ngf, num_upsampling_layers)
        self.schedule = [(name, upsample) for name, _, _, upsample in stages]
        for name, fin, fout, _ in stages:
            block = SPADEResnetBlock(
                fin,
                fout,
                label_channels,
                cond_norm=cond_norm,
                norm=norm,
                spectral_norm=spectral_norm,
                cond_norm_params=cond_norm_params,
            )
            self.add_module(name, block)
        if noise_injection:
            self.noise = nn.ModuleDict({name: NoiseInjection(fin) for name, fin, _, _ in stages})
        self.conv_img = nn.Conv2d(stages[-1][2], 3, 3, padding=1)
        init_xavier(self, init_gain)

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Semantics (N, label_channels, H, W) (+ z (N, z_dim) with use_vae) -> image (N, 3, H', W') in [-1, 1]."""
        x = start_map(
            self.fc,
            semantics,
            z,
            generator,
            use_vae=self.use_vae,
            z_dim=self.z_dim,
            size=(self.sh, self.sw),
            family="spade",
        )
        x = run_stages(self, x, semantics, generator)
        return torch.tanh(self.conv_img(lrelu(x)))


@ENCODERS.register("spade-conv", test_params={"ndf": 2, "z_dim": 8})
class ConvEncoder(nn.Module):
    """SPADE's style encoder: six 3x3 stride-2 convs on the image resized to 256x256, then mu and logvar.

    Channels 3 -> ndf -> 2 -> 4 -> 8 -> 8 -> 8 ndf (each conv + norm, LeakyReLU 0.2), flattened 8 ndf x 4 x 4,
    `fc_mu` and `fc_var`. Always six layers: the official encoder only works at crop >= 256, where it has
    `layer6`. Official width is the generator's ngf.

    Args:
        ndf: base width.
        z_dim: latent size (official 256).
        spectral_norm: spectral norm on the six convs.
        norm: registered param-free norm after each conv (the conv then has no bias); None: no norm, biased convs.
    """

    def __init__(
        self,
        ndf: Annotated[int, Range(ge=1)] = 64,
        z_dim: Annotated[int, Range(ge=1)] = 256,
        spectral_norm: bool = True,
        norm: ref("norm") | None = "instance",
    ) -> None:
        super().__init__()
        widths = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf, 8 * ndf]
        for i in range(6):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=norm is None)
            layers = [spectral(conv, spectral_norm)] + ([make_norm(norm, widths[i + 1])] if norm else [])
            self.add_module(f"layer{i + 1}", nn.Sequential(*layers))
        self.fc_mu = nn.Linear(8 * ndf * 4 * 4, z_dim)
        self.fc_var = nn.Linear(8 * ndf * 4 * 4, z_dim)
        init_xavier(self)

    def forward(self, image: torch.Tensor, semantics: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Image (N, 3, H, W) in [-1, 1] -> (mu, logvar), each (N, z_dim); `semantics` is not used."""
        x = image
        if tuple(x.shape[-2:]) != (256, 256):
            x = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)
        for i in range(1, 7):
            x = getattr(self, f"layer{i}")(x if i == 1 else lrelu(x))
        x = lrelu(x).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


# -- official checkpoints (NVlabs/SPADE) ------------------------------------------------------------------

_BLOCK = r"(head_0|G_middle_[01]|up_[0-4])"
GENERATOR_KEYS = KeyTable(
    (
        (r"fc\.(weight|bias)", r"fc.\1"),
        (rf"{_BLOCK}\.(conv_[01s])\.(bias|weight|weight_orig|weight_u|weight_v)", r"\1.\2.\3"),
        (
            rf"{_BLOCK}\.(norm_[01s])\.param_free_norm\.(running_mean|running_var|num_batches_tracked)",
            r"\1.\2.param_free_norm.\3",
        ),
        (rf"{_BLOCK}\.(norm_[01s])\.(mlp_shared\.0|mlp_gamma|mlp_beta)\.(weight|bias)", r"\1.\2.\3.\4"),
        (r"conv_img\.(weight|bias)", r"conv_img.\1"),
    )
)
ENCODER_KEYS = KeyTable(
    (
        (r"layer([1-6])\.0\.(bias|weight|weight_orig|weight_u|weight_v)", r"layer\1.0.\2"),
        (r"(fc_mu|fc_var)\.(weight|bias)", r"\1.\2"),
    )
)
_PARAM_FREE = {"instance": "instance", "batch": "batch", "syncbatch": "syncbatch"}


class SpadeOfficialFormat:
    """NVlabs/SPADE checkpoints: `SPADEGenerator` (netG spade) and its `ConvEncoder`."""

    def section(self, part: str, opt: Mapping[str, Any]) -> dict[str, Any] | None:
        """The spec section of `part` the official options describe; None when netG is not spade."""
        if opt.get("netG") != "spade" or part not in ("generator", "encoder"):
            return None
        if part == "encoder":
            spectral_norm, norm = parse_norm_option(str(opt.get("norm_E", "spectralinstance")), "norm_E")
            # parity: the official encoder's width is ngf (nef is unused) and its latent size is fixed at 256.
            return {
                "name": "spade-conv",
                "ndf": int(opt.get("ngf", 64)),
                "z_dim": 256,
                "spectral_norm": spectral_norm,
                "norm": norm,
            }
        norm_g = str(opt.get("norm_G", "spectralspadesyncbatch3x3"))
        m = re.fullmatch(r"(spectral)?spade(\D+)(\d)x\d", norm_g)
        if not m or m.group(2) not in _PARAM_FREE:
            raise ConversionError(
                f"options field norm_G = {norm_g!r}: expected spectralspade<instance|batch|"
                "syncbatch><k>x<k>, e.g. spectralspadesyncbatch3x3"
            )
        upsampling = str(opt.get("num_upsampling_layers", "normal"))
        check_official_latent_size(opt, upsampling)
        section = {
            "name": "spade",
            "ngf": int(opt.get("ngf", 64)),
            "num_upsampling_layers": upsampling,
            "use_vae": bool(opt.get("use_vae", False)),
            "z_dim": int(opt.get("z_dim", 256)),
            "norm": _PARAM_FREE[m.group(2)],
            "cond_norm": "spade",
            "spectral_norm": bool(m.group(1)),
            "cond_norm_params": None,
        }
        if m.group(3) != "3":
            section["cond_norm_params"] = {"kernel_size": int(m.group(3))}
        return section

    def key_table(self, part: str, opt: Mapping[str, Any]) -> KeyTable:
        """Official keys -> semsyn keys (the same names: the modules keep theirs)."""
        return GENERATOR_KEYS if part == "generator" else ENCODER_KEYS


OFFICIAL_FORMATS.register("spade")(SpadeOfficialFormat())
