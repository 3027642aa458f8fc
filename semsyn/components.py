"""Spec sections -> modules: look components up in the registries and inject the label facts they ask for.

The layer below `semsyn.model`: it builds networks and losses, not models (`semsyn.builder.build_model`
and `SynthesisModel.from_spec` wrap the networks in a `SynthesisModel`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from semsyn.errors import SpecError
from semsyn.labels import LabelSchema
from semsyn.registry import DISCRIMINATORS, ENCODERS, GENERATORS, LOSSES, Registry
from semsyn.spec import INJECTED, Spec

__all__ = ["build_component", "build_networks", "build_losses", "injected_values"]


def injected_values(schema: LabelSchema, image_size: tuple[int, int]) -> dict[str, Any]:
    """What the builder passes to a constructor that names the parameter."""
    return {
        "label_channels": schema.label_channels,
        "num_classes": schema.num_classes,
        "image_size": tuple(image_size),
        "labels": schema,
    }


def build_component(
    registry: Registry, cfg: Mapping[str, Any], schema: LabelSchema, image_size: tuple[int, int], **extra: Any
) -> Any:
    """Build one component from its (validated) spec section: `{name: ..., **params}`."""
    obj = registry.get(cfg["name"])
    target = obj.__init__ if inspect.isclass(obj) else obj
    names = inspect.signature(target).parameters
    kwargs = {k: v for k, v in cfg.items() if k != "name" and k not in extra}
    injected = {**injected_values(schema, image_size), **extra}
    kwargs.update({k: v for k, v in injected.items() if k in names and (k in INJECTED or k in extra)})
    return obj(**kwargs)


def build_networks(spec: Spec, *, with_discriminator: bool = False) -> dict[str, Any]:
    """Freshly initialised networks of a validated spec: {"generator", "encoder", "discriminator"} (None if absent).

    `SynthesisModel.from_spec` wraps them in a model.
    """
    schema, size = spec.labels, spec.image_size
    generator = build_component(GENERATORS, spec.data["generator"], schema, size)
    encoder = build_component(ENCODERS, spec.data["encoder"], schema, size) if spec.data.get("encoder") else None
    discriminator = None
    if with_discriminator:
        cfg = spec.data.get("discriminator")
        if cfg is None:
            raise SpecError(
                f"{spec.where('discriminator')}: with_discriminator=True but the spec has no discriminator "
                "section; add one, e.g. discriminator: {name: patchgan-multiscale}"
            )
        discriminator = build_component(DISCRIMINATORS, cfg, schema, size)
    return {"generator": generator, "encoder": encoder, "discriminator": discriminator}


def build_losses(spec: Spec) -> dict[str, tuple[float, nn.Module]]:
    """The spec's loss terms: term name -> (weight, loss module)."""
    out = {}
    for term, cfg in (spec.data.get("losses") or {}).items():
        params = {k: v for k, v in cfg.items() if k != "weight"}
        out[term] = (float(cfg["weight"]), build_component(LOSSES, params, spec.labels, spec.image_size))
    return out
