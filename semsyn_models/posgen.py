"""PosGen: a position-aware generator that decodes every pixel on its own, at any resolution.

Report: Zhe Huang, "Image Generation via Independent Semantic Synthesis", CMU 16-726 course project,
spring 2021 (andrew.cmu.edu/course/16-726/projects/zhehuang/project). No code or checkpoint was ever
published, so this file is semsyn's reconstruction from the report and is the reference implementation;
its checkpoint format is semsyn's own and there is no official-checkpoint conversion.

What the report gives: the early layers are SPADE's stacked residual blocks; the later layers are replaced
by a convolution-free decoder in the spirit of CIPS (Anokhin et al., CVPR 2021) that maps, for every pixel
on its own, [semantic features, Fourier features of its coordinates, its coordinates normalised to
[-1, 1] with (-1, -1) the top-left pixel] to RGB with shared fully connected layers. Because no layer after
the trunk mixes pixels, one model renders at any resolution of its label map: sample a denser coordinate
grid and interpolate the semantic features.

What semsyn chose where the report is silent (layer widths, depth, how many SPADE blocks, frequencies):

* the trunk is SPADE's skeleton (`layers.py`: start fc, stage table, residual block) cut after
  `num_spade_blocks` stages: 5 keeps head_0 .. up_1, so the trunk ends at a quarter of the output
  resolution with 4 ngf channels, and the two stages at the highest resolutions (up_2, up_3) are what the
  per-pixel decoder replaces;
* the Fourier features are CIPS's learned ones, sin(W [x, y] + b), W initialised U(-sqrt(9/2), sqrt(9/2))
  (the SIREN first-layer bound for 2 inputs), times `fourier_scale`;
* the trunk features are sampled bilinearly at each pixel's centre (exactly `F.interpolate(...,
  mode="bilinear", align_corners=False)` at any output size), while the coordinate channels follow the
  report: x = linspace(-1, 1, W) along the width, y = linspace(-1, 1, H) along the height (CIPS's own grid
  swaps its repeat counts and is right only for square images);
* the decoder is `decoder_layers` 1x1 convs of `decoder_channels` with LeakyReLU(0.2), then a 1x1 conv to
  RGB and tanh; no normalisation or noise (CIPS's style modulation is replaced by the SPADE-conditioned
  features, which carry the condition);
* the decoder runs over tiles of `tile_pixels` pixels; pixel independence makes tiling exact, and memory
  is then bounded by one tile's activations instead of the full-resolution feature map.

Pixel independence holds exactly in eval mode. In training with a batch norm inside the SPADE blocks
(`norm: syncbatch`, the default) the batch statistics couple pixels, as they do in SPADE; with
`norm: instance` the per-image statistics always do.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from semsyn.errors import SemsynError, SpecError
from semsyn.registry import GENERATORS, ref
from semsyn_models.layers import (
    UPSAMPLINGS,
    SPADEResnetBlock,
    check_cond_norm_params,
    generator_stages,
    init_xavier,
    latent_size,
    lrelu,
    run_stages,
    start_fc,
    start_map,
)

__all__ = ["PosGenGenerator", "pixel_grid", "FourierFeatures"]

logger = logging.getLogger(__name__)

# CIPS's LFF bound: U(-sqrt(9 / fan_in), sqrt(9 / fan_in)) with fan_in = 2 coordinates.
_SIREN_BOUND = math.sqrt(9 / 2)


def pixel_grid(
    size: tuple[int, int], start: int, stop: int, *, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the pixels start..stop-1 (row-major) of an image of `size` = (H, W).

    Returns:
        coords (2, P): the report's normalised coordinates (x, y), x = linspace(-1, 1, W)[col] and
            y = linspace(-1, 1, H)[row], so the top-left pixel is (-1, -1) and the bottom-right (1, 1).
        centres (P, 2): the pixel centres (x, y) in `grid_sample`'s align_corners=False frame,
            (2 col + 1) / W - 1 and (2 row + 1) / H - 1, where bilinear sampling equals bilinear upsampling.
    """
    height, width = size
    index = torch.arange(start, stop, device=device)
    row, col = index.div(width, rounding_mode="floor"), index.remainder(width)
    row_f, col_f = row.to(dtype), col.to(dtype)
    coords = torch.stack(
        [
            col_f * (2 / (width - 1)) - 1 if width > 1 else torch.full_like(col_f, -1.0),
            row_f * (2 / (height - 1)) - 1 if height > 1 else torch.full_like(row_f, -1.0),
        ]
    )
    centres = torch.stack([(2 * col_f + 1) / width - 1, (2 * row_f + 1) / height - 1], dim=1)
    return coords, centres


def _check_fields(upsampling: str, spade_blocks: int, fourier: int, channels: int, layers: int) -> None:
    """SpecErrors for generator fields the layers below would reject less clearly (or not at all)."""
    if upsampling not in UPSAMPLINGS:
        raise SpecError(
            f"generator field 'num_upsampling_layers': {upsampling!r} is not one of {', '.join(map(repr, UPSAMPLINGS))}"
        )
    stages = len(generator_stages(1, upsampling))
    if not 1 <= spade_blocks <= stages:
        raise SpecError(
            f"generator field 'num_spade_blocks': {spade_blocks} is outside 1..{stages}, the residual stages "
            f"SPADE has with num_upsampling_layers={upsampling!r}"
        )
    for field, value in (("fourier_features", fourier), ("decoder_channels", channels)):
        if value < 1:
            raise SpecError(f"generator field {field!r}: {value} must be a positive number of channels")
    if layers < 0:
        raise SpecError(f"generator field 'decoder_layers': {layers} must be >= 0")


class FourierFeatures(nn.Module):
    """Learned Fourier features of coordinates: sin(W [x, y] + b), one 1x1 conv then sin (CIPS's LFF).

    Args:
        out_channels: number of features (CIPS: 512).
        scale: multiplies the SIREN-style bound sqrt(9 / 2) of W's uniform initialisation; larger values
            start from higher frequencies (b keeps the default conv initialisation, as in CIPS).
    """

    def __init__(self, out_channels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.proj = nn.Conv2d(2, out_channels, 1)
        self.scale = scale
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SIREN first-layer initialisation of W; default bias."""
        bound = self.scale * _SIREN_BOUND
        nn.init.uniform_(self.proj.weight, -bound, bound)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Coordinates (N, 2, h, w) in [-1, 1] -> features (N, out_channels, h, w) in [-1, 1]."""
        return torch.sin(self.proj(coords))


@GENERATORS.register(
    "posgen",
    test_params={
        "ngf": 2,
        "cond_norm_params": {"hidden_channels": 8},
        "fourier_features": 8,
        "decoder_channels": 8,
        "decoder_layers": 2,
        "tile_pixels": 1000,
    },
)
class PosGenGenerator(nn.Module):
    """PosGen: a SPADE trunk, then a per-pixel decoder of [features, sin(W coords + b), coords] to RGB.

    fc -> SPADE residual blocks (SPADE's first `num_spade_blocks` stages) -> per pixel of the output:
    bilinear sample of the trunk features (after LeakyReLU) || Fourier features || (x, y) ->
    `decoder_layers` x (1x1 conv, LeakyReLU 0.2) -> 1x1 conv to RGB -> tanh.

    Args:
        label_channels: input channels (injected from the label schema).
        image_size: (H, W) the generator is built for (injected): it sets the trunk's start size
            (`latent_size`); the output has the label map's size, or any `size` given to forward.
        ngf: base width of the SPADE trunk (its stage table in units of ngf).
        num_upsampling_layers: SPADE's setting the start size derives from ("more" for Cityscapes).
        num_spade_blocks: how many of SPADE's residual stages the trunk keeps (7 in SPADE's table, 8 with
            "most"); the default 5 ends at a quarter of the image resolution.
        use_vae: start from a latent z through a Linear layer (with the `spade-conv` encoder) instead of a
            conv on the downsampled label map.
        z_dim: size of z (only with use_vae).
        norm: param-free norm inside each cond-norm of the trunk.
        cond_norm: label-conditioned norm block of the trunk.
        spectral_norm: spectral norm on the trunk's convs.
        cond_norm_params: extra keywords for every cond-norm block.
        fourier_features: number of learned Fourier features of the coordinates (CIPS: 512).
        fourier_scale: multiplies the SIREN bound of the Fourier weights' initialisation.
        decoder_channels: width of the per-pixel fully connected layers (CIPS: 512).
        decoder_layers: number of hidden per-pixel layers before the RGB layer.
        tile_pixels: pixels the decoder renders at once (memory is bounded by one tile's activations);
            0 renders every pixel in one pass.
    """

    def __init__(
        self,
        label_channels: int,
        image_size: tuple[int, int],
        ngf: int = 64,
        num_upsampling_layers: Literal["normal", "more", "most"] = "normal",
        num_spade_blocks: int = 5,
        use_vae: bool = False,
        z_dim: int = 256,
        norm: ref("norm") = "syncbatch",
        cond_norm: ref("cond-norm") = "spade",
        spectral_norm: bool = True,
        cond_norm_params: dict[str, Any] | None = None,
        fourier_features: int = 256,
        fourier_scale: float = 1.0,
        decoder_channels: int = 256,
        decoder_layers: int = 4,
        tile_pixels: int = 16384,
    ) -> None:
        super().__init__()
        _check_fields(num_upsampling_layers, num_spade_blocks, fourier_features, decoder_channels, decoder_layers)
        if tile_pixels < 0:
            raise SpecError(f"generator field 'tile_pixels': {tile_pixels} must be >= 0 (0: every pixel in one pass)")
        check_cond_norm_params(cond_norm, cond_norm_params or {})
        self.use_vae, self.z_dim, self.tile_pixels = use_vae, z_dim, tile_pixels
        self.sh, self.sw = latent_size(tuple(image_size), num_upsampling_layers)
        self.fc = start_fc(label_channels, 16 * ngf, use_vae=use_vae, z_dim=z_dim, size=(self.sh, self.sw))
        kept = generator_stages(ngf, num_upsampling_layers)[:num_spade_blocks]
        self.schedule = [(name, upsample) for name, _, _, upsample in kept]
        for name, fin, fout, _ in kept:
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
        widths = [kept[-1][2] + fourier_features + 2] + [decoder_channels] * decoder_layers
        self.decoder = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths, widths[1:]))
        self.to_rgb = nn.Conv2d(widths[-1], 3, 1)
        init_xavier(self)
        # The SPADE init (xavier, gain 0.02) suits the normalised residual trunk, not a plain MLP: a stack of
        # such layers would start from a vanishing signal. He init for the LeakyReLU layers, SIREN for Fourier.
        for layer in self.decoder:
            nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)
        self.fourier = FourierFeatures(fourier_features, fourier_scale)

    def trunk(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The SPADE trunk: semantics (N, label_channels, H, W) -> features (N, C, sh * 2^k, sw * 2^k)."""
        x = start_map(
            self.fc,
            semantics,
            z,
            generator,
            use_vae=self.use_vae,
            z_dim=self.z_dim,
            size=(self.sh, self.sw),
            family="posgen",
        )
        x = run_stages(self, x, semantics)
        return lrelu(x)

    def decode(self, features: torch.Tensor, size: tuple[int, int], start: int, stop: int) -> torch.Tensor:
        """RGB (N, 3, stop - start) of the pixels start..stop-1 (row-major) of a `size` render of `features`.

        Every pixel is computed from its own position and the trunk features sampled there: no operation
        here mixes pixels, so any split of the pixels into tiles gives the same image.
        """
        n = features.shape[0]
        coords, centres = pixel_grid(size, start, stop, device=features.device, dtype=features.dtype)
        grid = centres.view(1, 1, -1, 2).expand(n, -1, -1, -1)
        sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="border", align_corners=False)
        coords = coords.view(1, 2, 1, -1).expand(n, -1, -1, -1)
        x = torch.cat([sampled, self.fourier(coords), coords], dim=1)
        for layer in self.decoder:
            x = lrelu(layer(x))
        return torch.tanh(self.to_rgb(x)).flatten(2)

    def forward(
        self,
        semantics: torch.Tensor,
        z: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Semantics (N, label_channels, H, W) -> image (N, 3, *size) in [-1, 1]; size defaults to (H, W)."""
        height, width = (int(s) for s in (size if size is not None else semantics.shape[-2:]))
        if height < 1 or width < 1:
            raise SemsynError(f"posgen cannot render at size ({height}, {width}): both sides must be >= 1 pixel")
        features = self.trunk(semantics, z, generator=generator)
        total = height * width
        tile = self.tile_pixels or total
        tiles = [self.decode(features, (height, width), s, min(s + tile, total)) for s in range(0, total, tile)]
        return torch.cat(tiles, dim=2).view(features.shape[0], 3, height, width)
