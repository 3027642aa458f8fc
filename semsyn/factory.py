"""`create_model`, `list_models`, `list_components`: the front door of the library."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from semsyn.errors import HubError, SemsynError
from semsyn.registry import REGISTRIES, close_matches

__all__ = ["create_model", "list_models", "list_components", "hub_config_path", "hub_config_dir"]


def hub_config_dir() -> Path:
    """The folder of shipped named specs (`hub_configs/` in the checkout, `semsyn/hub_configs` in a wheel)."""
    return Path(str(resources.files("semsyn.hub_configs")))


def hub_config_path(name: str) -> Path | None:
    """Path of the named spec, or None."""
    path = hub_config_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Names of the shipped specs matching `pattern`.

    Args:
        pattern: shell-style pattern, e.g. "ccfpse-*".
        pretrained: only names whose spec says where published weights live (a `pretrained.repo_id`).
    """
    names = sorted(p.stem for p in hub_config_dir().glob("*.yaml") if fnmatch.fnmatchcase(p.stem, pattern))
    if not pretrained:
        return names
    from semsyn.spec import load_spec

    return [n for n in names if load_spec(n).pretrained.get("repo_id")]


def list_components(kind: str | None = None, pattern: str = "*") -> list[str]:
    """Registered component names; with no kind, `kind/name` for every registry."""
    if kind is None:
        return sorted(f"{k}/{n}" for k, reg in REGISTRIES.items() for n in reg.names(pattern))
    if kind not in REGISTRIES:
        raise SemsynError(
            f"unknown component kind {kind!r}{close_matches(kind, list(REGISTRIES))}; kinds: {', '.join(REGISTRIES)}"
        )
    return REGISTRIES[kind].names(pattern)


def _split_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`create_model(..., generator={"ngf": 32}, image_size=[128, 128])` -> a nested patch."""
    patch: dict[str, Any] = {}
    for key, value in overrides.items():
        node = patch
        *parents, leaf = key.split("__")  # generator__ngf=32 also works, like sklearn
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return patch


def create_model(
    source: str | os.PathLike[str],
    pretrained: bool = False,
    *,
    revision: str | None = None,
    with_discriminator: bool = False,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> Any:
    """Build a model from a name, a spec file, a model folder or a Hub repo; returned in eval mode.

    Args:
        source: a hub_configs name ("ccfpse-coco"), "hf-hub:org/name[@revision]", "local-dir:PATH",
            or a path to a spec YAML.
        pretrained: load weights (from the Hub for names and hf-hub:, from the folder for local-dir:).
        revision: Hub branch, tag or commit (overrides the name's or the @revision).
        with_discriminator: also build (and load, when the weights hold one) the discriminator.
        device: where to put the model.
        **overrides: spec fields to patch, e.g. ``image_size=[128, 128]`` or ``generator={"ngf": 32}``;
            with pretrained weights they must keep the weights' shapes.

    Raises:
        SpecError, RegistryError: bad source or spec.  HubError: weights cannot be had.  CheckpointError:
        weights that do not match the spec.
    """
    from semsyn.builder import build_model
    from semsyn.spec import load_spec

    text = os.fspath(source)
    patch = _split_overrides(overrides)
    if text.startswith("hf-hub:") or (pretrained and not text.startswith("local-dir:") and hub_config_path(text)):
        from semsyn.hub import load_from_hub

        model = load_from_hub(
            text, pretrained=pretrained, revision=revision, with_discriminator=with_discriminator, overrides=patch
        )
    elif text.startswith("local-dir:"):
        from semsyn.model import SPEC_NAME, WEIGHTS_NAME

        folder = Path(text[len("local-dir:") :])
        spec = load_spec(folder / SPEC_NAME, overrides=patch)
        model = build_model(spec, with_discriminator=with_discriminator)
        if pretrained:
            from semsyn.checkpoint import load_safetensors

            if not (folder / WEIGHTS_NAME).is_file():
                raise SemsynError(f"{folder} has no {WEIGHTS_NAME}; pass pretrained=False to build it untrained")
            model.load_weights(load_safetensors(folder / WEIGHTS_NAME), str(folder / WEIGHTS_NAME))
    else:
        if pretrained:
            raise HubError(
                f"{text} is a spec file: it holds no weights. Use 'local-dir:FOLDER' for a saved model, "
                "'hf-hub:org/name' for a Hub repo, or a name from semsyn.list_models()"
            )
        model = build_model(load_spec(text, overrides=patch), with_discriminator=with_discriminator)
    if device is not None:
        model = model.to(device)
    return model.eval()
