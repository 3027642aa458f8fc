"""semsyn-clade: a worked example of a semsyn plugin.

Registers, through the `semsyn.plugins` entry point declared in this package's pyproject.toml:

* the cond-norm block `clade`: class-adaptive normalisation in the style of CLADE (Tan et al., 2021):
  instead of SPADE's convolutions, a learned scale and bias per class, looked up from the label map;
* the generator `clade-lite`: a small upsampling generator built from `clade` blocks.

A spec then uses the block inside semsyn's own SPADE generator with no import of this package::

    generator: {name: spade, cond_norm: clade}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import semsyn


@semsyn.COND_NORMS.register("clade")
class ClassAdaptiveNorm(nn.Module):
    """Normalise x, then scale and shift it by per-class parameters looked up from the label map.

    With a one-hot label map, gamma = sum_c onehot_c * gamma_c, which is a 1x1 convolution without bias:
    no spatial kernels, so it costs a fraction of SPADE. The instance-edge channel, when present, gets
    its own scale and bias like a class.

    Args:
        num_features: channels of x.
        label_channels: channels of the label map (one-hot + dontcare + instance edge).
        norm: a registered parameter-free norm.
    """

    def __init__(self, num_features: int, label_channels: int, norm: semsyn.ref("norm") = "instance") -> None:
        super().__init__()
        self.param_free_norm = semsyn.NORMS.get(norm)(num_features)
        self.gamma = nn.Parameter(torch.zeros(num_features, label_channels))
        self.beta = nn.Parameter(torch.zeros(num_features, label_channels))

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        seg = F.interpolate(semantics, size=x.shape[-2:], mode="nearest").to(x.dtype)
        gamma = torch.einsum("fc,nchw->nfhw", self.gamma, seg)
        beta = torch.einsum("fc,nchw->nfhw", self.beta, seg)
        return self.param_free_norm(x) * (1 + gamma) + beta


class _CladeBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_channels: int) -> None:
        super().__init__()
        self.norm = ClassAdaptiveNorm(fin, label_channels)
        self.conv = nn.Conv2d(fin, fout, 3, padding=1)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        return self.conv(F.leaky_relu(self.norm(x, semantics), 0.2))


@semsyn.GENERATORS.register("clade-lite", test_params={"width": 8, "num_blocks": 3})
class CladeLiteGenerator(nn.Module):
    """A small generator: the label map downsampled, then CLADE blocks with nearest x2 upsampling.

    Args:
        label_channels: injected by semsyn from the spec's label schema.
        image_size: injected; (H, W) of the output, divisible by 2**num_blocks.
        width: channels of every block.
        num_blocks: upsampling blocks.
    """

    def __init__(self, label_channels: int, image_size: tuple[int, int], width: int = 64, num_blocks: int = 4) -> None:
        super().__init__()
        self.start = (image_size[0] // 2**num_blocks, image_size[1] // 2**num_blocks)
        self.fc = nn.Conv2d(label_channels, width, 3, padding=1)
        self.blocks = nn.ModuleList(_CladeBlock(width, width, label_channels) for _ in range(num_blocks))
        self.to_rgb = nn.Conv2d(width, 3, 3, padding=1)

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = self.fc(F.interpolate(semantics, size=self.start, mode="nearest"))
        for block in self.blocks:
            x = block(F.interpolate(x, scale_factor=2, mode="nearest"), semantics)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))
