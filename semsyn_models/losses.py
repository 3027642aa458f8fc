"""The losses of the SPADE family: GAN (hinge, least squares, vanilla), feature matching, VGG, KL.

Written from NVlabs/SPADE `models/networks/loss.py` (GANLoss, VGGLoss, KLDLoss) and the pix2pixHD
feature-matching loss in `pix2pix_model.py`. Each loss is an `nn.Module` whose `compute(ctx)` takes what
it needs from the step's `semsyn.contracts.LossContext` (and returns None in a phase it has no part in);
the trainer multiplies by the spec's weight.

What differs from the official code: the GAN losses take a `DiscriminatorOutput` (logits per scale);
the VGG19 weights come from a local file or, only when allowed, from the Hub through timm (the official
code downloads torchvision's silently); every loss returns a 0-dim tensor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from semsyn.contracts import DiscriminatorOutput, LossContext
from semsyn.errors import SemsynError
from semsyn.registry import LOSSES

__all__ = ["HingeLoss", "LeastSquaresLoss", "VanillaLoss", "FeatureMatchingLoss", "VGGPerceptualLoss", "KLLoss"]

Logits = DiscriminatorOutput | Sequence[torch.Tensor] | torch.Tensor


def _logits(outputs: Logits) -> list[torch.Tensor]:
    """The per-scale logit maps of a discriminator's output."""
    if isinstance(outputs, DiscriminatorOutput):
        return list(outputs.logits)
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return list(outputs)


class _GANLoss(nn.Module):
    """Shared by the GAN losses: the per-scale loss averaged over scales (the official `GANLoss.__call__`)."""

    adversarial = True
    needs: frozenset[str] = frozenset()

    def compute(self, ctx: LossContext) -> torch.Tensor | dict[str, torch.Tensor]:
        """G's adversarial loss in the generator phase; D's fake and real terms in the discriminator phase."""
        if ctx.phase == "generator":
            return self(ctx.d_fake, True, for_discriminator=False)
        return {"fake": self(ctx.d_fake, False), "real": self(ctx.d_real, True)}

    def forward(self, outputs: Logits, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        """Loss of D's logits for real (`target_is_real`) or fake inputs; G's loss with for_discriminator False.

        Args:
            outputs: a `DiscriminatorOutput` (or a list of per-scale logit maps).
            target_is_real: whether the logits should call their input real.
            for_discriminator: D's loss (True) or G's adversarial loss (False).
        """
        scales = _logits(outputs)
        return sum(self.scale_loss(x, target_is_real, for_discriminator) for x in scales) / len(scales)

    def scale_loss(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        raise NotImplementedError


@LOSSES.register("hinge")
class HingeLoss(_GANLoss):
    """Hinge loss (SPADE's default): D mean(relu(1 - real)) and mean(relu(1 + fake)); G -mean(D(fake))."""

    def scale_loss(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        if not for_discriminator:
            # The official code asserts target_is_real here; the mirror image (+mean) is the natural extension.
            return -logits.mean() if target_is_real else logits.mean()
        return F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean()


@LOSSES.register("least-squares")
class LeastSquaresLoss(_GANLoss):
    """Least-squares GAN loss (official gan_mode `ls`): mean squared error to the real or fake label.

    Args:
        real_label: target for real inputs.
        fake_label: target for fake inputs.
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.real_label, self.fake_label = real_label, fake_label

    def scale_loss(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return F.mse_loss(logits, torch.full_like(logits, target))


@LOSSES.register("vanilla")
class VanillaLoss(_GANLoss):
    """The original GAN loss (official gan_mode `original`): binary cross-entropy on the logits.

    Args:
        real_label: target for real inputs.
        fake_label: target for fake inputs.
    """

    def __init__(self, real_label: float = 1.0, fake_label: float = 0.0) -> None:
        super().__init__()
        self.real_label, self.fake_label = real_label, fake_label

    def scale_loss(self, logits: torch.Tensor, target_is_real: bool, for_discriminator: bool) -> torch.Tensor:
        target = self.real_label if target_is_real else self.fake_label
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@LOSSES.register("feature-matching")
class FeatureMatchingLoss(nn.Module):
    """Discriminator feature matching (pix2pixHD): L1 between fake and real intermediate maps.

    Sums the mean L1 over every scale's intermediate maps (the logits excluded) and divides by the number
    of scales, as the official `lambda_feat / num_D` weighting does.
    """

    needs = frozenset({"d_real"})

    def compute(self, ctx: LossContext) -> torch.Tensor | None:
        """Generator phase only: D's features on fake against those on real."""
        return self(ctx.d_fake, ctx.d_real) if ctx.phase == "generator" else None

    def forward(self, fake: DiscriminatorOutput, real: DiscriminatorOutput) -> torch.Tensor:
        """Loss for D's outputs on fake images against those on the real ones (detached)."""
        if len(fake.features) != len(real.features):
            raise SemsynError(f"feature matching got {len(fake.features)} fake scales and {len(real.features)} real")
        total = sum(
            F.l1_loss(f, r.detach())
            for fs, rs in zip(fake.features, real.features, strict=True)
            for f, r in zip(fs, rs, strict=True)
        )
        return total / max(len(fake.features), 1) if torch.is_tensor(total) else fake.logits[0].new_zeros(())


VGG19_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 as slices of torchvision's / timm's vgg19 `features`.
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))
VGG_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
LOCAL_VGG_HINT = (
    "set the loss's weights_path to a local VGG19 file (safetensors, or a .pth state dict with torchvision or timm "
    "vgg19 key names, e.g. saved from torchvision.models.vgg19(weights='IMAGENET1K_V1').state_dict())"
)
HOW_TO_GET_VGG = f"{LOCAL_VGG_HINT}, or set download: true to fetch timm's vgg19.tv_in1k from the Hugging Face Hub"


def _vgg19_features() -> nn.Sequential:
    """VGG19's `features` up to relu5_1, with torchvision's layer indices (so its keys load as they are)."""
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG19_CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(in_channels, item, 3, padding=1), nn.ReLU()]
            in_channels = item
    return nn.Sequential(*layers)


def _read_vgg_file(path: Path) -> Mapping[str, torch.Tensor]:
    if not path.is_file():
        raise SemsynError(f"VGG19 weights file {path} does not exist; {HOW_TO_GET_VGG}")
    if path.suffix == ".safetensors":
        from semsyn.checkpoint import load_safetensors

        return load_safetensors(path)
    from semsyn.checkpoint import torch_load

    state = torch_load(path)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise SemsynError(f"{path} is not a state dict (got {type(state).__name__}); {HOW_TO_GET_VGG}")
    return state


def _hub_vgg_state() -> Mapping[str, torch.Tensor]:
    try:
        import timm  # ~3 s to import: only when weights are fetched

        return timm.create_model("vgg19.tv_in1k", pretrained=True).state_dict()
    except Exception as exc:  # offline, no timm, a Hub error: all end the same way for the user
        raise SemsynError(
            f"could not fetch VGG19 weights from the Hub through timm ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check the connection (HF_ENDPOINT, "
            f"HF_HUB_OFFLINE) or {LOCAL_VGG_HINT}"
        ) from None


@LOSSES.register("vgg-perceptual", test_params={"allow_random_weights": True})
class VGGPerceptualLoss(nn.Module):
    """Perceptual loss on a frozen VGG19: weighted L1 of relu1_1 .. relu5_1 (weights 1/32 .. 1).

    The images go in as they are, in [-1, 1], without ImageNet normalisation, as in the official code.

    Args:
        weights_path: a local VGG19 state dict (safetensors or .pth, torchvision or timm key names).
        download: when no weights_path is given, fetch timm's `vgg19.tv_in1k` from the Hugging Face Hub.
        allow_random_weights: use an untrained VGG19 when neither is given (tests only; the loss is then
            meaningless).

    Raises:
        SemsynError: no weights could be had, or the file lacks VGG19 keys.
    """

    needs: frozenset[str] = frozenset()

    def __init__(
        self, weights_path: str | None = None, download: bool = False, allow_random_weights: bool = False
    ) -> None:
        super().__init__()
        self.features = _vgg19_features()
        if weights_path is not None:
            self._load(_read_vgg_file(Path(weights_path).expanduser()), str(weights_path))
        elif download:
            self._load(_hub_vgg_state(), "timm vgg19.tv_in1k")
        elif not allow_random_weights:
            raise SemsynError(f"the vgg-perceptual loss has no VGG19 weights: {HOW_TO_GET_VGG}")
        self.requires_grad_(False)
        self.eval()

    def _load(self, state: Mapping[str, torch.Tensor], where: str) -> None:
        own = self.features.state_dict()
        wanted = {f"features.{k}": k for k in own}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise SemsynError(
                f"{where} is not a VGG19 state dict: it lacks {', '.join(missing[:6])}"
                f"{' ...' if len(missing) > 6 else ''}; {HOW_TO_GET_VGG}"
            )
        shapes = [k for k, v in wanted.items() if tuple(state[k].shape) != tuple(own[v].shape)]
        if shapes:
            raise SemsynError(f"{where}: {', '.join(shapes[:6])} do not have VGG19's shapes; {HOW_TO_GET_VGG}")
        self.features.load_state_dict({v: state[k].float() for k, v in wanted.items()}, strict=True)

    def train(self, mode: bool = True) -> VGGPerceptualLoss:
        """The backbone stays frozen and in eval mode whatever the trainer asks."""
        return super().train(False)

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        for start, stop in VGG_SLICES:
            x = self.features[start:stop](x)
            maps.append(x)
        return maps

    def compute(self, ctx: LossContext) -> torch.Tensor | None:
        """Generator phase only: fake against real images."""
        return self(ctx.fake, ctx.real) if ctx.phase == "generator" else None

    def forward(self, fake_image: torch.Tensor, real_image: torch.Tensor) -> torch.Tensor:
        """Weighted L1 between the VGG19 maps of fake and real images (N, 3, H, W) in [-1, 1]."""
        fake_maps = self._pyramid(fake_image)
        with torch.no_grad():  # the official code detaches the real maps; not recording them saves memory
            real_maps = self._pyramid(real_image)
        return sum(w * F.l1_loss(f, r.detach()) for w, f, r in zip(VGG_WEIGHTS, fake_maps, real_maps, strict=True))


@LOSSES.register("kl")
class KLLoss(nn.Module):
    """KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over batch and latent (official KLDLoss)."""

    needs = frozenset({"mu", "logvar"})

    def compute(self, ctx: LossContext) -> torch.Tensor | None:
        """Generator phase only: the encoder's posterior against N(0, 1)."""
        return self(ctx.mu, ctx.logvar) if ctx.phase == "generator" else None

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """-0.5 * sum(1 + logvar - mu^2 - exp(logvar))."""
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
