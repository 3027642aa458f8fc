"""The spec's loss terms as the trainer uses them: one `LossContext` per phase, handed to every term.

A loss declares what it reads through `compute(ctx)` and, for the context fields the trainer computes
only on demand, its `needs` (``d_real``: the discriminator on real images in the generator phase;
``mu``/``logvar``: the style encoder's output). A term whose needs the model cannot meet (a KL term
without an encoder) or whose weight is 0 is left out. Losses written for the older `role` contract
(gan, feature-matching, perceptual, kl) are adapted here, so they keep training unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from semsyn.components import build_losses
from semsyn.contracts import LOSS_NEEDS, LossContext, check_loss_value
from semsyn.errors import SpecError
from semsyn.spec import Spec

__all__ = ["LossTerm", "build_terms", "evaluate_terms", "RoleLoss"]

logger = logging.getLogger(__name__)
ROLE_NEEDS = {"gan": (), "feature-matching": ("d_real",), "perceptual": (), "kl": ("mu", "logvar")}


class RoleLoss(nn.Module):
    """Adapts a loss of the `role` contract (forward dispatched by role) to `compute(ctx)`."""

    def __init__(self, loss: nn.Module, role: str) -> None:
        super().__init__()
        self.loss = loss
        self.role = role
        self.needs = frozenset(ROLE_NEEDS[role])
        self.adversarial = role == "gan"

    def compute(self, ctx: LossContext) -> Any:
        if self.role == "gan":
            if ctx.phase == "generator":
                return self.loss(ctx.d_fake, True, for_discriminator=False)
            return {"fake": self.loss(ctx.d_fake, False), "real": self.loss(ctx.d_real, True)}
        if ctx.phase != "generator":
            return None
        if self.role == "feature-matching":
            return self.loss(ctx.d_fake, ctx.d_real)
        if self.role == "perceptual":
            return self.loss(ctx.fake, ctx.real)
        return self.loss(ctx.mu, ctx.logvar)


@dataclass
class LossTerm:
    """One weighted term of the spec's `losses:` section."""

    name: str
    weight: float
    module: nn.Module
    needs: frozenset[str]


def _adapt(spec: Spec, term: str, module: nn.Module) -> nn.Module:
    if callable(getattr(module, "compute", None)):
        return module
    role = getattr(module, "role", None)
    if role in ROLE_NEEDS:
        return RoleLoss(module, role)
    raise SpecError(
        f"{spec.where('losses', term)}: loss {spec.data['losses'][term]['name']!r} has no compute(ctx) method "
        "(and no known role); a loss receives a semsyn.contracts.LossContext per phase"
    )


def build_terms(spec: Spec, *, has_encoder: bool, device: torch.device) -> list[LossTerm]:
    """The terms that take part in training (weight 0 and unmeetable needs left out, and logged)."""
    terms = []
    for term, (weight, module) in build_losses(spec).items():
        module = _adapt(spec, term, module)
        needs = frozenset(getattr(module, "needs", ()))
        unknown = sorted(needs - set(LOSS_NEEDS))
        if unknown:
            raise SpecError(
                f"{spec.where('losses', term)}: loss needs {', '.join(unknown)}, which the trainer does not "
                f"provide; it provides {', '.join(LOSS_NEEDS)} besides the fields every LossContext has"
            )
        if weight == 0 or ({"mu", "logvar"} & needs and not has_encoder):
            logger.info("loss term %r is not used (%s)", term, "weight 0" if weight == 0 else "no encoder")
            continue
        module.to(device).eval().requires_grad_(False)
        terms.append(LossTerm(term, weight, module, needs))
    if not any(getattr(t.module, "adversarial", False) for t in terms):
        raise SpecError(f"{spec.where('losses')}: training needs a GAN term, e.g. losses: {{gan: {{name: hinge}}}}")
    return terms


def evaluate_terms(terms: list[LossTerm], ctx: LossContext, prefix: str) -> dict[str, torch.Tensor]:
    """Every term's weighted value(s) for one phase, named `G/term` or `D/term_suffix`."""
    out: dict[str, torch.Tensor] = {}
    for term in terms:
        values: Mapping[str, torch.Tensor] | None = check_loss_value(
            term.module.compute(ctx), f"loss term {term.name!r}"
        )
        for suffix, value in (values or {}).items():
            out[f"{prefix}/{term.name}{'_' + suffix if suffix else ''}"] = value * term.weight
    return out
