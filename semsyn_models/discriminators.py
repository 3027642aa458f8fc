"""The multi-scale PatchGAN discriminator of pix2pixHD and SPADE.

Papers: Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional GANs"
(pix2pixHD, CVPR 2018); Park et al., SPADE (CVPR 2019). Official code: NVlabs/SPADE
`MultiscaleDiscriminator` of `NLayerDiscriminator`s (also used unchanged by SMIS / GroupDNet).
Module names follow the official ones (`discriminator_{i}.model{k}`), so official checkpoints load
through an identity key table.

What differs from the official code: options are typed keywords (`norm_D = spectralinstance` is
`spectral_norm` + `norm`), and every scale always returns its intermediate maps (the official
`--no_ganFeat_loss` only drops them from the output).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import nn

from semsyn.convert import OFFICIAL_FORMATS, KeyTable
from semsyn.errors import ConversionError, SpecError
from semsyn.model import DiscriminatorOutput
from semsyn.registry import DISCRIMINATORS, ref
from semsyn.spec import Range
from semsyn_models.layers import init_xavier, make_norm, spectral

__all__ = ["NLayerDiscriminator", "MultiscaleDiscriminator", "PatchGANOfficialFormat"]

_KERNEL = 4
_PADDING = 2  # parity: official padw = ceil((4 - 1) / 2) = 2, so maps grow by one in the stride-1 layers


class NLayerDiscriminator(nn.Module):
    """One PatchGAN scale: `n_layers` 4x4 convs with LeakyReLU 0.2, then a 1-channel 4x4 conv.

    model0: conv stride 2 (bias, no norm); model1 .. model{n-1}: conv (stride 2, the last stride 1) with
    spectral norm and a param-free norm (bias removed); model{n}: conv stride 1 -> 1 channel (bias).
    Widths double from ndf up to 512.

    Args:
        in_channels: label channels + 3.
        ndf: width of the first layer.
        n_layers: convs before the logit conv.
        norm: registered param-free norm of the middle layers; None: no norm, biased convs.
        spectral_norm: spectral norm on the middle layers.
    """

    def __init__(
        self,
        in_channels: int,
        ndf: Annotated[int, Range(ge=1)] = 64,
        n_layers: Annotated[int, Range(ge=1)] = 4,
        norm: str | None = "instance",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.n_layers = n_layers
        self.model0 = nn.Sequential(nn.Conv2d(in_channels, ndf, _KERNEL, stride=2, padding=_PADDING), nn.LeakyReLU(0.2))
        nf = ndf
        for k in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if k == n_layers - 1 else 2
            conv = spectral(
                nn.Conv2d(nf_prev, nf, _KERNEL, stride=stride, padding=_PADDING, bias=norm is None), spectral_norm
            )
            inner = nn.Sequential(conv, make_norm(norm, nf)) if norm else nn.Sequential(conv)
            self.add_module(f"model{k}", nn.Sequential(inner, nn.LeakyReLU(0.2)))
        self.add_module(f"model{n_layers}", nn.Sequential(nn.Conv2d(nf, 1, _KERNEL, stride=1, padding=_PADDING)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every layer's output: n_layers activations, then the (N, 1, h, w) patch logits."""
        outputs = []
        for k in range(self.n_layers + 1):
            x = getattr(self, f"model{k}")(x)
            outputs.append(x)
        return outputs


@DISCRIMINATORS.register("patchgan-multiscale", test_params={"ndf": 4, "n_layers": 2})
class MultiscaleDiscriminator(nn.Module):
    """`num_d` PatchGANs on cat(semantics, image), each on the input average-pooled once more.

    Args:
        label_channels: channels of the semantics map (injected).
        ndf: width of each scale's first layer.
        num_d: number of scales.
        n_layers: convs per scale before the logit conv.
        norm: registered param-free norm of the middle layers ("instance" officially); None: no norm.
        spectral_norm: spectral norm on the middle layers.
    """

    def __init__(
        self,
        label_channels: int,
        ndf: Annotated[int, Range(ge=1)] = 64,
        num_d: Annotated[int, Range(ge=1)] = 2,
        n_layers: Annotated[int, Range(ge=1)] = 4,
        norm: ref("norm") | None = "instance",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_d < 1 or n_layers < 1:
            raise SpecError(f"discriminator fields num_d = {num_d} and n_layers = {n_layers} must both be >= 1")
        self.num_d = num_d
        for i in range(num_d):
            self.add_module(
                f"discriminator_{i}", NLayerDiscriminator(label_channels + 3, ndf, n_layers, norm, spectral_norm)
            )
        init_xavier(self)

    def forward(self, image: torch.Tensor, semantics: torch.Tensor) -> DiscriminatorOutput:
        """Image (N, 3, H, W) and semantics (N, C, H, W) -> per-scale logits and intermediate maps."""
        x = torch.cat([semantics, image], dim=1)  # parity: semantics first
        logits, features = [], []
        for i in range(self.num_d):
            outputs = getattr(self, f"discriminator_{i}")(x)
            logits.append(outputs[-1])
            features.append(outputs[:-1])
            if i + 1 < self.num_d:
                x = F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)
        return DiscriminatorOutput(logits=logits, features=features)


# -- official checkpoints -------------------------------------------------------------------------------

DISCRIMINATOR_KEYS = KeyTable(
    (
        (r"discriminator_(\d+)\.model(\d+)\.0\.(weight|bias)", r"discriminator_\1.model\2.0.\3"),
        (
            r"discriminator_(\d+)\.model(\d+)\.0\.0\.(bias|weight|weight_orig|weight_u|weight_v)",
            r"discriminator_\1.model\2.0.0.\3",
        ),
    )
)


class PatchGANOfficialFormat:
    """Official `MultiscaleDiscriminator` checkpoints (netD multiscale, netD_subarch n_layer)."""

    def section(self, part: str, opt: Mapping[str, Any]) -> dict[str, Any] | None:
        """The discriminator section for netD == "multiscale"; None otherwise."""
        if part != "discriminator" or opt.get("netD") != "multiscale":
            return None
        if opt.get("netD_subarch", "n_layer") != "n_layer":
            raise ConversionError(f"options field netD_subarch = {opt['netD_subarch']!r}: only 'n_layer' exists")
        norm_d = str(opt.get("norm_D", "spectralinstance"))
        m = re.fullmatch(r"(spectral)?(instance|none|)", norm_d)
        if not m:
            raise ConversionError(
                f"options field norm_D = {norm_d!r}: semsyn converts 'spectralinstance', 'instance', 'spectral' or "
                "'spectralnone' (the official batch-norm variants are affine and have no param-free counterpart)"
            )
        spectral_norm, norm = bool(m.group(1)), ("instance" if m.group(2) == "instance" else None)
        return {
            "name": "patchgan-multiscale",
            "ndf": int(opt.get("ndf", 64)),
            "num_d": int(opt.get("num_D", 2)),
            "n_layers": int(opt.get("n_layers_D", 4)),
            "norm": norm,
            "spectral_norm": spectral_norm,
        }

    def key_table(self, part: str, opt: Mapping[str, Any]) -> KeyTable:
        """Official keys -> semsyn keys (identical names)."""
        return DISCRIMINATOR_KEYS


OFFICIAL_FORMATS.register("patchgan")(PatchGANOfficialFormat())
