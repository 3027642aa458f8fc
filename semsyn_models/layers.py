"""Blocks shared by two or more families: parameter-free norms, SPADE, spectral norm, initialisation.

Parameter-free norms are registered in `semsyn.NORMS` and label-conditioned norms in
`semsyn.COND_NORMS`, so a spec can name them (`norm: syncbatch`, `cond_norm: spade`) and a plugin's
block drops into a built-in generator.

Spectral norm is torch's classic `torch.nn.utils.spectral_norm`: official checkpoints store its
`weight_orig` / `weight_u` / `weight_v`, and in eval it uses the stored u, v exactly as they did.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from semsyn.errors import SemsynError
from semsyn.registry import COND_NORMS, NORMS, ref

__all__ = [
    "SyncBatchNorm2d",
    "make_norm",
    "SPADE",
    "spectral",
    "lrelu",
    "init_xavier",
    "settle_spectral_norms",
    "resize_nearest",
    "start_map",
]


@NORMS.register("instance")
class InstanceNorm(nn.InstanceNorm2d):
    """InstanceNorm2d without affine parameters or running statistics."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False)


@NORMS.register("batch")
class BatchNorm(nn.BatchNorm2d):
    """BatchNorm2d without affine parameters; per-process statistics even under DDP."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False)


@NORMS.register("syncbatch")
class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d without affine parameters whose statistics the trainer syncs across DDP processes.

    On one process it is plain batch norm. The trainer swaps it for torch's `nn.SyncBatchNorm`
    under DDP (official SPADE vendored a SynchronizedBatchNorm2d; the state-dict keys are the same).
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, affine=False)


@NORMS.register("group", test_params={"num_groups": 2})
class GroupNorm(nn.GroupNorm):
    """GroupNorm without affine parameters (SMIS's `group` option)."""

    def __init__(self, num_features: int, num_groups: int = 8) -> None:
        super().__init__(num_groups, num_features, affine=False)


def make_norm(name: str, num_features: int) -> nn.Module:
    """A registered parameter-free norm by name."""
    return NORMS.get(name)(num_features)


def resize_nearest(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Legacy nearest resize (src = floor(dst * in / out)), as the official code does; no-op at equal size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="nearest")


@COND_NORMS.register("spade", test_params={"hidden_channels": 8})
class SPADE(nn.Module):
    """Spatially-adaptive denormalisation (Park et al., CVPR 2019).

    out = norm(x) * (1 + gamma(seg)) + beta(seg), gamma and beta predicted per pixel by convs on the
    label map nearest-resized to x. Keys match NVlabs/SPADE: `param_free_norm`, `mlp_shared.0`,
    `mlp_gamma`, `mlp_beta`.

    Args:
        num_features: channels of x.
        label_channels: channels of the conditioning map.
        norm: registered parameter-free norm applied to x.
        kernel_size: of all three convs (official 3).
        hidden_channels: of the shared conv (official 128, hard-coded there).
    """

    def __init__(
        self,
        num_features: int,
        label_channels: int,
        norm: ref("norm") = "instance",
        kernel_size: int = 3,
        hidden_channels: int = 128,
    ) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = make_norm(norm, num_features)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_channels, hidden_channels, kernel_size, padding=pad), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden_channels, num_features, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        actv = self.mlp_shared(resize_nearest(semantics, x.shape[-2:]))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


def spectral(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Classic spectral norm (one power iteration per training forward; stored u, v in eval)."""
    return nn.utils.spectral_norm(module) if enabled else module


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2), the field's activation."""
    return F.leaky_relu(x, 0.2)


def settle_spectral_norms(module: nn.Module, iterations: int = 5) -> None:
    """Run a few power iterations on every spectral norm so u, v match the current weights.

    torch draws u and v at random and eval mode uses them as stored, so a freshly built model in eval (what
    `create_model` returns) would divide by a random, possibly tiny or negative, sigma. Loading a checkpoint
    overwrites u and v anyway.
    """
    with torch.no_grad():
        for m in module.modules():
            for hook in m._forward_pre_hooks.values():
                if isinstance(hook, SpectralNorm):
                    for _ in range(iterations):
                        hook.compute_weight(m, do_power_iteration=True)


def init_xavier(module: nn.Module, gain: float = 0.02) -> None:
    """Official SPADE-family init: xavier-normal(gain) for conv/linear weights, zero biases, BN weight N(1, gain).

    Spectral norms are then settled on the new weights (`settle_spectral_norms`).
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            weight = getattr(m, "weight_orig", m.weight)
            nn.init.xavier_normal_(weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    settle_spectral_norms(module)


def start_map(
    fc: nn.Module,
    semantics: torch.Tensor,
    z: torch.Tensor | None,
    generator: torch.Generator | None,
    *,
    use_vae: bool,
    z_dim: int,
    size: tuple[int, int],
    family: str,
) -> torch.Tensor:
    """The SPADE skeleton's first map (N, C, sh, sw): `fc` on the label map resized to `size`, or on z.

    Without a VAE, `fc` is a conv applied to the nearest-resized label map and z is refused; with one,
    `fc` is a Linear on z (drawn from N(0, 1) with `generator` when not given), reshaped to `size`.
    """
    n = semantics.shape[0]
    if not use_vae:
        if z is not None:
            raise SemsynError(
                f"this {family} generator was built with use_vae: false and takes no z; build it with "
                "use_vae: true (and a spade-conv encoder) for multimodal synthesis"
            )
        return fc(resize_nearest(semantics, size))
    if z is None:
        z = torch.randn(n, z_dim, generator=generator, device=semantics.device, dtype=semantics.dtype)
    if tuple(z.shape) != (n, z_dim):
        raise SemsynError(f"z has shape {tuple(z.shape)}; this generator takes ({n}, {z_dim}) (batch size, z_dim)")
    return fc(z).view(n, -1, *size)
