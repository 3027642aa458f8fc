"""Blocks shared by two or more families: parameter-free norms, SPADE, spectral norm, initialisation.

Parameter-free norms are registered in `semsyn.NORMS` and label-conditioned norms in
`semsyn.COND_NORMS`, so a spec can name them (`norm: syncbatch`, `cond_norm: spade`) and a plugin's
block drops into a built-in generator.

Spectral norm is torch's classic `torch.nn.utils.spectral_norm`: official checkpoints store its
`weight_orig` / `weight_u` / `weight_v`, and in eval it uses the stored u, v exactly as they did.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from semsyn.convert import labels_from_options
from semsyn.errors import ConversionError, SemsynError, SpecError
from semsyn.inference import fast_path_active
from semsyn.registry import COND_NORMS, NORMS, close_matches, ref
from semsyn_models.fast import cache_spectral_norm, label_scope, spade_block_eval, spade_block_supported

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
    "UPSAMPLINGS",
    "official_latent_size",
    "latent_size",
    "generator_stages",
    "start_fc",
    "check_cond_norm_params",
    "SPADEResnetBlock",
    "NoiseInjection",
    "run_stages",
    "parse_norm_option",
    "check_official_latent_size",
]

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
# Arguments every cond-norm receives from the block that builds it; `cond_norm_params` may not set them.
_COND_NORM_FIXED = ("num_features", "label_channels", "norm")


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
        return self.modulate(x, self.mlp_shared(resize_nearest(semantics, x.shape[-2:])))

    def modulate(self, x: torch.Tensor, actv: torch.Tensor) -> torch.Tensor:
        """norm(x) * (1 + gamma) + beta, given `actv`, the shared conv's output (mlp_shared) at x's size."""
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


def spectral(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Classic spectral norm (one power iteration per training forward; stored u, v in eval, computed once)."""
    return cache_spectral_norm(nn.utils.spectral_norm(module)) if enabled else module


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


# -- the SPADE skeleton: latent size, stage table, first layer, residual block (SPADE, CC-FPSE, GroupDNet, PosGen)


def official_latent_size(image_size: tuple[int, int], num_upsampling_layers: str) -> tuple[int, int]:
    """(sh, sw) as the official `compute_latent_vector_size`: sw = W // 2^n, sh = round(sw / (W / H)).

    Python's round is banker's rounding (round(2.5) == 2), as in the official code. May return zeros.
    """
    height, width = image_size
    sw = width // 2 ** UPSAMPLINGS[num_upsampling_layers]
    return round(sw / (width / height)), sw  # parity: banker's rounding


def latent_size(image_size: tuple[int, int], num_upsampling_layers: str) -> tuple[int, int]:
    """(sh, sw): the spatial size a SPADE-skeleton generator starts from; the output is (sh, sw) * 2^n.

    Raises:
        SpecError: the image is too small for that many upsamplings (the start map would be empty).
    """
    sh, sw = official_latent_size(image_size, num_upsampling_layers)
    if sw < 1 or sh < 1:
        raise SpecError(
            f"image_size {list(image_size)} is too small for num_upsampling_layers={num_upsampling_layers!r}: "
            f"the generator would start from {sh}x{sw}; use a larger image_size or fewer upsampling layers"
        )
    return sh, sw


def generator_stages(ngf: int, num_upsampling_layers: str) -> list[tuple[str, int, int, bool]]:
    """(official name, in channels, out channels, x2 upsampling before it) of every residual block.

    SPADE's table, which CC-FPSE keeps: head_0 16; G_middle_0 16; G_middle_1 16 (upsampled before it with
    "more"/"most"); up_0 8; up_1 4; up_2 2; up_3 1 (units of ngf); "most" adds up_4 at ngf / 2.
    """
    more = num_upsampling_layers != "normal"
    stages = [
        ("head_0", 16, 16, False),
        ("G_middle_0", 16, 16, True),
        ("G_middle_1", 16, 16, more),
        ("up_0", 16, 8, True),
        ("up_1", 8, 4, True),
        ("up_2", 4, 2, True),
        ("up_3", 2, 1, True),
    ]
    out = [(name, fin * ngf, fout * ngf, upsample) for name, fin, fout, upsample in stages]
    if num_upsampling_layers == "most":
        out.append(("up_4", ngf, ngf // 2, True))
    return out


def start_fc(label_channels: int, channels: int, *, use_vae: bool, z_dim: int, size: tuple[int, int]) -> nn.Module:
    """The first layer `start_map` applies: Linear(z_dim -> channels * sh * sw) with a VAE, else a 3x3 conv."""
    if use_vae:
        return nn.Linear(z_dim, channels * size[0] * size[1])
    return nn.Conv2d(label_channels, channels, 3, padding=1)


def check_cond_norm_params(cond_norm: str, params: Mapping[str, Any]) -> None:
    """Reject keywords the chosen cond-norm does not take, before a TypeError deep in construction."""
    cls = COND_NORMS.get(cond_norm)
    sig = inspect.signature(cls.__init__ if inspect.isclass(cls) else cls)
    if any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    allowed = [n for n in sig.parameters if n not in ("self", *_COND_NORM_FIXED)]
    for key in params:
        if key not in allowed:
            raise SpecError(
                f"generator field 'cond_norm_params': cond-norm {cond_norm!r} has no parameter {key!r}"
                f"{close_matches(key, allowed)}; valid: {', '.join(allowed) or 'none'}"
                + (
                    " (num_features, label_channels and norm are set by the generator)"
                    if key in _COND_NORM_FIXED
                    else ""
                )
            )


class SPADEResnetBlock(nn.Module):
    """Residual block with label-conditioned norms (SPADE section 3, figure 4 right).

    out = shortcut + conv_1(lrelu(norm_1(conv_0(lrelu(norm_0(x)))))), shortcut = conv_s(norm_s(x))
    (no activation) when fin != fout, else x.

    Args:
        fin: input channels.
        fout: output channels.
        label_channels: channels of the semantics map.
        cond_norm: registered cond-norm building norm_0, norm_1, norm_s.
        norm: registered param-free norm inside each cond-norm.
        spectral_norm: spectral norm on conv_0, conv_1, conv_s.
        cond_norm_params: extra keywords for every cond-norm.
        groups: groups of conv_0, conv_1 and conv_s (GroupDNet's grouped block; 1 for SPADE).
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        label_channels: int,
        *,
        cond_norm: str = "spade",
        norm: str = "syncbatch",
        spectral_norm: bool = True,
        cond_norm_params: Mapping[str, Any] | None = None,
        groups: int = 1,
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = spectral(nn.Conv2d(fin, fmiddle, 3, padding=1, groups=groups), spectral_norm)
        self.conv_1 = spectral(nn.Conv2d(fmiddle, fout, 3, padding=1, groups=groups), spectral_norm)
        if self.learned_shortcut:
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, bias=False, groups=groups), spectral_norm)
        block = COND_NORMS.get(cond_norm)
        params = dict(cond_norm_params or {})
        self.norm_0 = block(fin, label_channels, norm=norm, **params)
        self.norm_1 = block(fmiddle, label_channels, norm=norm, **params)
        if self.learned_shortcut:
            self.norm_s = block(fin, label_channels, norm=norm, **params)

    def forward(self, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
        if fast_path_active(self) and spade_block_supported(self):
            return spade_block_eval(self, x, semantics)
        shortcut = self.conv_s(self.norm_s(x, semantics)) if self.learned_shortcut else x
        dx = self.conv_0(lrelu(self.norm_0(x, semantics)))
        dx = self.conv_1(lrelu(self.norm_1(dx, semantics)))
        return shortcut + dx


class NoiseInjection(nn.Module):
    """Per-pixel noise, StyleGAN's: x + weight * n, n ~ N(0, 1) of shape (N, 1, H, W), one learned weight per channel.

    Not part of the official SPADE-family generators (an opt-in of semsyn's): without it, a generator that
    starts from the downsampled label map is deterministic, and inside a uniform label region every layer
    sees a constant input, so it can render no texture there. The weights start at 0 (the block is then
    the identity). `generator` (a `torch.Generator` on x's device) makes the draw reproducible.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn((x.shape[0], 1, *x.shape[2:]), generator=generator, device=x.device, dtype=x.dtype)
        return x + self.weight.to(x.dtype) * noise


def run_stages(
    net: nn.Module, x: torch.Tensor, semantics: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Run `net.schedule` ((block name, x2 nearest upsampling before it), ...) on x, every block seeing `semantics`.

    When `net.noise` (a ModuleDict of `NoiseInjection` by block name) exists, noise drawn with `generator`
    is added to each block's input. On the fast path, the blocks share one decoding of a binary label map
    (`fast.label_scope`).
    """
    noise = getattr(net, "noise", None)
    with label_scope(semantics, fast_path_active(net)):
        for name, upsample in net.schedule:
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            if noise is not None and name in noise:
                x = noise[name](x, generator)
            x = getattr(net, name)(x, semantics)
    return x


# -- official options shared by the SPADE-derived code bases ------------------------------------------------


def parse_norm_option(value: str, field: str) -> tuple[bool, str | None]:
    """An official `spectral<norm>` string (norm_D, norm_E) -> (spectral_norm, registered norm or None).

    Only instance norm (or none) converts: the official batch norms there are affine, semsyn's are param-free.
    """
    m = re.fullmatch(r"(spectral)?(instance|none|)", value)
    if not m:
        raise ConversionError(
            f"options field {field} = {value!r}: semsyn converts 'spectralinstance', 'instance', 'spectral' or "
            "'spectralnone' (the official batch-norm variants are affine and have no param-free counterpart)"
        )
    return bool(m.group(1)), ("instance" if m.group(2) == "instance" else None)


def check_official_latent_size(opt: Mapping[str, Any], upsampling: str) -> None:
    """semsyn derives (sh, sw) from image_size; refuse official options where that differs from theirs.

    The official code computes sw from crop_size and sh = round(sw / aspect_ratio); semsyn from the image
    size the options give (`labels_from_options`). They agree except for rare rounding cases.
    """
    if upsampling not in UPSAMPLINGS:
        raise ConversionError(
            f"options field num_upsampling_layers = {upsampling!r}: expected one of {', '.join(UPSAMPLINGS)}"
        )
    crop, aspect = int(opt.get("crop_size", 256)), float(opt.get("aspect_ratio", 1.0))
    sw = crop // 2 ** UPSAMPLINGS[upsampling]
    official = (round(sw / aspect), sw)
    ours = official_latent_size(tuple(labels_from_options(opt)["image_size"]), upsampling)
    if ours != official:
        raise ConversionError(
            f"crop_size {crop} with aspect_ratio {aspect} gives the official latent size "
            f"{official}, which semsyn's image_size-derived size {ours} does not match"
        )
