"""Optimisers and the learning-rate schedule of the paper recipe (TTUR Adam, linear decay to 0)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from semsyn.training.config import TrainConfig

__all__ = ["LinearDecay", "adam", "build_optimizers", "build_schedulers", "decay_start"]


def decay_start(cfg: TrainConfig) -> int:
    """The step from which the learning rates fall linearly (None in the spec means half the run)."""
    return cfg.steps // 2 if cfg.lr_decay_start_step is None else cfg.lr_decay_start_step


class LinearDecay:
    """LR factor: 1 until `start`, then linear to 0 at `total` (SPADE's `niter` + `niter_decay` in steps).

    A class rather than a lambda so `LambdaLR.state_dict()` stores its fields and a resumed run can tell
    a changed schedule.

    Args:
        start: first step of the decay; `start >= total` keeps the rate constant.
        total: the run's length in steps.
    """

    def __init__(self, start: int, total: int) -> None:
        self.start = start
        self.total = total

    def __call__(self, step: int) -> float:
        if step < self.start or self.start >= self.total:
            return 1.0
        return max(0.0, (self.total - step) / (self.total - self.start))


def _trainable(modules: Iterable[nn.Module | None]) -> list[nn.Parameter]:
    return [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]


# Devices whose parameters torch's fused Adam updates in one kernel per step (torch >= 2.4 on CPU).
FUSED_ADAM_DEVICES = ("cpu", "cuda")


def adam(params: list[nn.Parameter], lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """torch's Adam, fused when every parameter is a floating-point tensor on a `FUSED_ADAM_DEVICES` device.

    The fused update is the same arithmetic in one kernel (it agrees with the per-tensor loop to float
    rounding) and takes about a third of its time on the small models trained on CPU (docs/performance.md).
    """
    fused = bool(params) and all(p.is_floating_point() and p.device.type in FUSED_ADAM_DEVICES for p in params)
    return torch.optim.Adam(params, lr=lr, betas=(float(betas[0]), float(betas[1])), fused=fused or None)


def build_optimizers(
    cfg: TrainConfig, generator: nn.Module, discriminator: nn.Module, encoder: nn.Module | None = None
) -> dict[str, torch.optim.Optimizer]:
    """TTUR Adam: one optimiser for generator + encoder (`lr_g`), one for the discriminator (`lr_d`).

    # parity: SPADE/CC-FPSE optimise G and E together with G's rate, betas (beta1, beta2) = (0, 0.9).
    """
    betas = (cfg.beta1, cfg.beta2)
    return {
        "generator": adam(_trainable([generator, encoder]), cfg.lr_g, betas),
        "discriminator": adam(_trainable([discriminator]), cfg.lr_d, betas),
    }


def build_schedulers(
    cfg: TrainConfig, optimizers: dict[str, torch.optim.Optimizer]
) -> dict[str, torch.optim.lr_scheduler.LambdaLR]:
    """The same linear decay for every optimiser, stepped once per generator update."""
    return {
        name: torch.optim.lr_scheduler.LambdaLR(opt, LinearDecay(decay_start(cfg), cfg.steps))
        for name, opt in optimizers.items()
    }
