"""`create_model`, `list_models`, `list_components`: the front door of the library."""

from __future__ import annotations

import os
from typing import Any

import torch

from semsyn.errors import SemsynError
from semsyn.model import SynthesisModel
from semsyn.named import hub_config_dir, hub_config_path, named_specs
from semsyn.registry import REGISTRIES, close_matches
from semsyn.spec import load_spec as load_local_spec

__all__ = ["create_model", "list_models", "list_components", "hub_config_path", "hub_config_dir"]


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names of the shipped specs matching `pattern`.

    Args:
        pattern: shell-style pattern, e.g. "ccfpse-*".
        pretrained: only names whose semsyn weights are published on the Hub (`pretrained.published: true`).
    """
    names = named_specs(pattern)
    if not pretrained:
        return names
    return [n for n in names if load_local_spec(n).pretrained.get("published") is True]


def list_components(kind: str | None = None, pattern: str = "*") -> list[str]:
    """Registered component names; with no kind, `kind/name` for every registry."""
    if kind is None:
        return sorted(f"{k}/{n}" for k, reg in REGISTRIES.items() for n in reg.names(pattern))
    if kind not in REGISTRIES:
        raise SemsynError(
            f"unknown component kind {kind!r}{close_matches(kind, list(REGISTRIES))}; kinds: {', '.join(REGISTRIES)}"
        )
    return REGISTRIES[kind].names(pattern)


def create_model(
    source: str | os.PathLike[str],
    pretrained: bool = False,
    *,
    revision: str | None = None,
    with_discriminator: bool = False,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    **overrides: Any,
) -> SynthesisModel:
    """Build a model from a name, a spec file, a model or run folder or a Hub repo; returned in eval mode.

    Args:
        source: a hub_configs name ("ccfpse-coco"), "hf-hub:org/name[@revision]", "local-dir:PATH", a run
            folder, or a path to a spec YAML.
        pretrained: load weights (from the Hub for published names and hf-hub:, from the folder otherwise).
        revision: Hub branch, tag or commit (overrides the name's or the @revision).
        with_discriminator: also build (and load, when the weights hold one) the discriminator.
        device: where to put the model.
        dtype: torch.bfloat16 (or "bfloat16") runs bf16 where the device supports it natively (else float32,
            with a warning); default float32. See docs/performance.md.
        **overrides: spec fields to patch, e.g. ``image_size=[128, 128]`` or ``generator={"ngf": 32}``;
            with pretrained weights they must keep the weights' shapes.

    Raises:
        SpecError, RegistryError: bad source or spec.  HubError: weights cannot be had (an unpublished named
        model fails at once, without network, saying how to get weights).  CheckpointError: weights that do
        not match the spec.
    """
    return SynthesisModel.from_pretrained(
        source,
        pretrained=pretrained,
        revision=revision,
        with_discriminator=with_discriminator,
        device=device,
        dtype=dtype,
        **overrides,
    )
