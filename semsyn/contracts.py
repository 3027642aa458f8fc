"""The call contracts of registered components, in one place: checked at registration, obeyed by the core.

* generator: ``forward(semantics, z=None) -> image`` in [-1, 1]. It may also declare the optional
  keywords ``generator=`` (a `torch.Generator` for its random draws) and ``size=`` (any-resolution
  families); `call_generator` passes an optional keyword only to a forward that declares it, so the
  plain two-argument contract always works.
* encoder and discriminator: ``forward(image, semantics)``; norm: ``forward(x)``; cond-norm:
  ``forward(x, semantics)``.
* loss: ``compute(ctx: LossContext)`` returning a scalar, a mapping of named scalars, or None when the
  loss has nothing to say in that phase; ``needs`` names the optional context fields it reads
  (``d_real``, ``mu``, ``logvar``), so the trainer computes them only when someone asks.

This module imports nothing of semsyn but its errors: the registry checks against it, the model and the
trainer call through it.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from semsyn.errors import PluginError, RegistryError

__all__ = [
    "DiscriminatorOutput",
    "LossContext",
    "LOSS_NEEDS",
    "GENERATOR_OPTIONAL",
    "accepted_keywords",
    "call_generator",
    "check_contract",
    "check_loss_value",
]

GENERATOR_OPTIONAL = ("generator", "size")
# Context fields a loss may need that the trainer does not always compute (D on real images, the encoder's output).
LOSS_NEEDS = ("d_real", "mu", "logvar")
# kind -> positional arguments the core passes to forward.
_POSITIONAL = {
    "generator": ("semantics", "z"),
    "encoder": ("image", "semantics"),
    "discriminator": ("image", "semantics"),
    "norm": ("x",),
    "cond-norm": ("x", "semantics"),
}


@dataclass
class DiscriminatorOutput:
    """What every discriminator returns.

    Args:
        logits: one real/fake logit map (N, 1, h, w) per scale; the GAN loss averages over scales.
        features: per scale, the intermediate feature maps used for feature matching (the logits excluded).
    """

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]] = field(default_factory=list)


@dataclass
class LossContext:
    """Everything one training phase knows, handed to every loss term as one object.

    Args:
        phase: "generator" (the generator's terms) or "discriminator" (the discriminator's terms).
        semantics: the generator's input (N, label_channels, H, W).
        real: the real images (N, 3, H, W) in [-1, 1].
        fake: the generated images (detached in the discriminator phase).
        d_fake: the discriminator's output on `fake`.
        d_real: the discriminator's output on `real` (None in the generator phase unless a loss needs it).
        mu, logvar: the style encoder's output (None without an encoder).
        step: training steps done before this one.
    """

    phase: Literal["generator", "discriminator"]
    semantics: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor
    d_fake: DiscriminatorOutput
    d_real: DiscriminatorOutput | None = None
    mu: torch.Tensor | None = None
    logvar: torch.Tensor | None = None
    step: int = 0


def _forward_of(module: Any) -> Any:
    """The forward that will really run (through a DDP wrapper) or the class's forward."""
    inner = getattr(module, "module", None) if isinstance(module, nn.Module) else None
    target = inner if isinstance(inner, nn.Module) else module
    return target.forward if not inspect.isclass(target) else target.forward


def accepted_keywords(module: Any) -> frozenset[str] | None:
    """Keyword names the module's forward declares; None when it takes ``**kwargs`` (it accepts any)."""
    try:
        params = inspect.signature(_forward_of(module)).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def call_generator(net: Any, semantics: torch.Tensor, z: torch.Tensor | None = None, /, **optional: Any) -> Any:
    """``net(semantics, z, **optional)``, passing each optional keyword only if the forward declares it.

    Keywords whose value is None are never passed (None is every optional keyword's default), e.g.
    ``call_generator(model.generator, semantics, z, generator=rng, size=None)``.
    """
    given = {k: v for k, v in optional.items() if v is not None}
    if given:
        accepted = accepted_keywords(net)
        if accepted is not None:
            given = {k: v for k, v in given.items() if k in accepted}
    return net(semantics, z, **given)


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def check_contract(kind: str, name: str, obj: Any) -> None:
    """Check a component's call signature against its kind's contract; RegistryError names the mismatch.

    Factories (functions returning a module) cannot be checked before they run and pass.
    """
    if not inspect.isclass(obj):
        return
    if kind == "loss":
        if not callable(getattr(obj, "compute", None)) and getattr(obj, "role", None) is None:
            raise RegistryError(
                f"loss {name!r} ({_describe(obj)}) has no compute(ctx) method: a loss receives one "
                "semsyn.contracts.LossContext per phase and returns a scalar (or None when it does not apply)"
            )
        return
    wanted = _POSITIONAL.get(kind)
    if wanted is None or not callable(getattr(obj, "forward", None)):
        return
    try:
        params = list(inspect.signature(obj.forward).parameters.values())[1:]  # drop self
    except (TypeError, ValueError):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind == p.VAR_POSITIONAL for p in params)
    contract = f"forward({', '.join(wanted)}{'=None' if kind == 'generator' else ''})"
    if len(positional) < len(wanted) and not var_positional:
        raise RegistryError(
            f"{kind} {name!r} ({_describe(obj)}): forward takes {len(positional)} positional argument(s) "
            f"({', '.join(p.name for p in positional) or 'none'}) but the contract is {contract}"
        )
    extra = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    extra = [p for p in extra if p not in positional[: len(wanted)]]
    if extra:
        raise RegistryError(
            f"{kind} {name!r} ({_describe(obj)}): forward requires {', '.join(repr(p.name) for p in extra)}, which "
            f"semsyn never passes; the contract is {contract}"
            + (f" with optional keywords {', '.join(GENERATOR_OPTIONAL)}" if kind == "generator" else "")
            + ": give them defaults"
        )


def check_loss_value(value: Any, where: str) -> Mapping[str, torch.Tensor] | None:
    """A loss's `compute` result as {suffix: scalar} ('' for a plain scalar), or None when it does not apply."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return {"": value}
    if isinstance(value, Mapping) and all(isinstance(v, torch.Tensor) for v in value.values()):
        return dict(value)
    raise PluginError(
        f"{where}: compute(ctx) returned {type(value).__name__}; return a scalar tensor, a mapping of named scalar "
        "tensors, or None"
    )
