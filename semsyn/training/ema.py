"""Exponential moving average of the generator's weights, with a half-life counted in images."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from semsyn.checkpoint import load_strict
from semsyn.components import build_component
from semsyn.contracts import call_generator
from semsyn.inference import reference_path
from semsyn.registry import GENERATORS
from semsyn.spec import Spec

__all__ = ["GeneratorEMA"]


class GeneratorEMA:
    """A second generator whose weights follow the trained one's with an exponential moving average.

    After each step, `ema = lerp(ema, weights, 1 - beta)` with `beta = 0.5 ** (images / halflife_images)`,
    so the half-life does not change with the batch size (as in StyleGAN/EDM). Buffers (batch-norm
    statistics, spectral-norm u and v) are copied, not averaged; `calibrate_norms` then recomputes the
    batch-norm statistics for the averaged weights before the average is used.

    The update is torch's own (`torch.optim.swa_utils.get_ema_multi_avg_fn`), but not its `AveragedModel`:
    that deep-copies the module, and `copy.deepcopy` of a module with classic spectral norm fails after a
    training forward (its computed `weight` is a non-leaf tensor). The copy here is a fresh generator
    built from the spec and loaded with the trained one's state dict. Synchronised batch norms of the
    trained generator load into the plain modules here, the keys being the same.

    Args:
        spec: the run's spec (the generator section builds the copy).
        source: the trained generator (unwrapped from DDP).
        halflife_images: images after which the old weights weigh one half.
    """

    def __init__(self, spec: Spec, source: nn.Module, halflife_images: float) -> None:
        self.halflife_images = float(halflife_images)
        self.module: nn.Module = build_component(GENERATORS, spec.data["generator"], spec.labels, spec.image_size)
        self.module.load_state_dict(source.state_dict())
        first = next(source.parameters(), None)
        if first is not None:
            self.module.to(device=first.device, dtype=first.dtype)
        self.module.eval().requires_grad_(False)
        self._pairs: tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]
        self._pairs = (source, *self._match(source))

    def _match(
        self, source: nn.Module
    ) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[tuple[torch.Tensor, torch.Tensor]]]:
        """(ema, trained) parameter pairs to average (floating point only) and buffer pairs to copy, by name."""
        own_p, own_b = dict(self.module.named_parameters()), dict(self.module.named_buffers())
        params = [(own_p[k], p) for k, p in source.named_parameters() if p.is_floating_point()]
        buffers = [(own_b[k], b) for k, b in source.named_buffers()]
        return params, buffers

    @torch.no_grad()
    def update(self, source: nn.Module, images: int) -> None:
        """Move the average towards `source` after a step that saw `images` images (over all processes)."""
        beta = 0.5 ** (images / max(self.halflife_images, 1e-8))
        if self._pairs[0] is not source:
            self._pairs = (source, *self._match(source))
        _, params, buffers = self._pairs
        if params:
            get_ema_multi_avg_fn(beta)([e for e, _ in params], [s.detach() for _, s in params], None)
        for e, s in buffers:
            e.copy_(s)

    @torch.no_grad()
    def calibrate_norms(
        self, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]], generator: torch.Generator | None
    ) -> bool:
        """Recompute the averaged generator's batch-norm running statistics for its own weights.

        The statistics copied from the trained generator are those of the trained weights' activations; the
        average's differ, and evaluated with the copied ones it renders worse than the trained generator
        (measured in docs/evaluation.md). As torch's `swa_utils.update_bn`: the running statistics are
        reset and become the plain average over `batches` ((semantics, z or None) pairs), the batch norms
        alone in train mode; spectral norms stay in eval (their u and v untouched). `generator` (None: the
        global RNG) draws any noise or z the generator needs. The next `update` copies the trained
        generator's statistics back, so training is unchanged by a calibration. Returns whether there were
        batch norms to calibrate.
        """
        norms = [
            m for m in self.module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
        ]
        if not norms:
            return False
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            with reference_path():
                for semantics, z in batches:
                    call_generator(self.module, semantics, z, generator=generator)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
            self.module.eval()
        return True

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged generator's state dict."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], where: str = "EMA weights") -> None:
        """Load the averaged weights strictly."""
        load_strict(self.module, state, where)
