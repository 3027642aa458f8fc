"""`SynthesisModel`: the generator, optional style encoder and optional discriminator of one spec."""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semsyn.checkpoint import load_strict, save_safetensors
from semsyn.errors import CheckpointError, SemsynError
from semsyn.labels import LabelSchema
from semsyn.labels import semantics as make_semantics
from semsyn.spec import Spec

__all__ = ["SynthesisModel", "DiscriminatorOutput", "PARTS", "WEIGHTS_NAME", "SPEC_NAME"]

logger = logging.getLogger(__name__)
PARTS = ("generator", "encoder", "discriminator")
WEIGHTS_NAME = "model.safetensors"
SPEC_NAME = "spec.yaml"


@dataclass
class DiscriminatorOutput:
    """What every discriminator returns.

    Args:
        logits: one real/fake logit map (N, 1, h, w) per scale; the GAN loss averages over scales.
        features: per scale, the intermediate feature maps used for feature matching (the logits excluded).
    """

    logits: list[torch.Tensor]
    features: list[list[torch.Tensor]] = field(default_factory=list)


class SynthesisModel(nn.Module):
    """The networks of one spec and the label-map -> image API.

    Args:
        spec: the validated spec the networks were built from.
        generator: `forward(semantics, z=None, *, generator=None) -> image in [-1, 1]`.
        encoder: style encoder `forward(image, semantics) -> (mu, logvar)`, or None.
        discriminator: `forward(image, semantics) -> DiscriminatorOutput`, or None.
    """

    def __init__(
        self, spec: Spec, generator: nn.Module, encoder: nn.Module | None = None, discriminator: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.spec = spec
        self.generator = generator
        self.encoder = encoder
        self.discriminator = discriminator
        # Parts holding weights that came from a checkpoint; a fresh build holds none.
        self.trained_parts: set[str] = set()

    # -- facts ------------------------------------------------------------------------------------
    @property
    def labels(self) -> LabelSchema:
        """The label schema the model was built for."""
        return self.spec.labels

    @property
    def parts(self) -> list[str]:
        """Names of the networks this model holds."""
        return [p for p in PARTS if getattr(self, p) is not None]

    @property
    def untrained_parts(self) -> list[str]:
        """Networks built from the spec but holding no loaded weights."""
        return [p for p in self.parts if p not in self.trained_parts]

    @property
    def renders_any_size(self) -> bool:
        """Whether the generator renders at any output size (its forward declares `size=`, e.g. posgen)."""
        return "size" in inspect.signature(self.generator.forward).parameters

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.generator.parameters(), None)
        return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.float32)

    # -- inference --------------------------------------------------------------------------------
    def semantics(self, label: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
        """Integer label map (N, H, W) or (N, 1, H, W) -> float (N, C, H, W): one-hot (+ dontcare) (+ edges).

        Values are checked against the label schema first (`LabelError` names the value and position).
        If the schema uses instance edges and no instance map is given, the label map serves as one.
        """
        device, dtype = self._device_dtype()
        if self.labels.instance_edges and instance is None:
            instance = label
        sem = make_semantics(label, self.labels, instance, dtype=dtype)
        return sem.to(device)

    def encode(self, image: torch.Tensor, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of the style encoder for an image in [-1, 1]."""
        if self.encoder is None:
            raise SemsynError(f"model {self.spec.name!r} has no style encoder; its spec has no encoder section")
        return self.encoder(image, semantics)

    @torch.no_grad()
    def synthesize(
        self,
        label: torch.Tensor,
        instance: torch.Tensor | None = None,
        *,
        style: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Label map -> image (N, 3, H, W) in [-1, 1].

        Args:
            label: integer label map (N, H, W) or (N, 1, H, W); 255 means unknown.
            instance: integer instance map of the same shape, for schemas with instance edges.
            style: image(s) in [-1, 1] whose style the encoder extracts; z = mu, or a draw around mu with `seed`.
            z: the generator's latent, given explicitly (overrides style and seed).
            seed: seeds every random draw (multimodal synthesis: another seed, another image).
            size: output (H, W), for generators that render at any resolution (e.g. posgen).
        """
        sem = self.semantics(label, instance)
        device, dtype = self._device_dtype()
        rng = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        if z is None and style is not None:
            mu, logvar = self.encode(style.to(device=device, dtype=dtype), sem)
            z = mu
            if rng is not None:
                eps = torch.randn(mu.shape, generator=rng, device=device, dtype=dtype)
                z = mu + eps * torch.exp(0.5 * logvar)
        kwargs: dict[str, Any] = {"generator": rng}
        if size is not None:
            if not self.renders_any_size:
                raise SemsynError(
                    f"generator {self.spec.data['generator']['name']!r} renders at its built size "
                    f"{self.spec.image_size}; size= needs a generator that renders at any resolution (posgen), "
                    "or build the model with image_size set to the size you want"
                )
            kwargs["size"] = tuple(size)
        return self.generator(sem, z.to(device=device, dtype=dtype) if z is not None else None, **kwargs)

    # -- weights ----------------------------------------------------------------------------------
    def weights(self, parts: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The state dicts of `parts` (default all), keys prefixed `generator.`, `encoder.`, `discriminator.`."""
        chosen = self.parts if parts is None else [p for p in self.parts if p in set(parts)]
        return {f"{p}.{k}": v for p in chosen for k, v in getattr(self, p).state_dict().items()}

    def load_weights(self, state: Mapping[str, torch.Tensor], where: str, *, warn_untrained: bool = True) -> None:
        """Load what `state` holds for each part strictly; parts it lacks stay untrained (and are reported).

        Raises:
            CheckpointError: unknown prefixes, or a part whose keys do not match the model.
        """
        groups: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            part, _, rest = key.partition(".")
            if part not in PARTS or not rest:
                raise CheckpointError(
                    f"{where}: key {key!r} does not start with one of {', '.join(p + '.' for p in PARTS)}; "
                    "this is not a semsyn weights file (convert official checkpoints with semsyn-convert)"
                )
            groups.setdefault(part, {})[rest] = value
        for part in self.parts:
            if part in groups:
                load_strict(getattr(self, part), groups[part], f"{where} ({part})")
                self.trained_parts.add(part)
        missing = self.untrained_parts
        if missing and warn_untrained:
            logger.warning("%s holds no weights for %s: built from the spec and untrained", where, ", ".join(missing))

    def save_pretrained(
        self,
        save_directory: str | os.PathLike[str],
        *,
        card: Mapping[str, Any] | None = None,
        samples: Mapping[str, Any] | None = None,
        parts: Iterable[str] | None = None,
    ) -> Path:
        """Write spec.yaml, model.safetensors and a model card (README.md) to a folder.

        Args:
            save_directory: the folder (created if needed); an existing README.md there is merged.
            card: extra model-card fields (tags, datasets, license, origin, description).
            samples: name -> PIL image or (N, 3, H, W) tensor in [-1, 1], saved under samples/ and shown in the card.
            parts: the networks to store (default all); a converted discriminator alone stores just that.
        """
        from semsyn.hub import write_model_card

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.spec.resolved().dump(out / SPEC_NAME)
        stored = self.weights(parts)
        names = sorted({k.partition(".")[0] for k in stored})
        save_safetensors(stored, out / WEIGHTS_NAME, metadata={"semsyn_parts": ",".join(names)})
        write_model_card(out, self.spec, card=card, samples=samples, parts=names)
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool = False,
        token: str | None = None,
        commit_message: str | None = None,
        card: Mapping[str, Any] | None = None,
        samples: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish this model (spec, weights, card) to a Hub repo; returns the commit id."""
        from semsyn.hub import push_model

        return push_model(
            self,
            repo_id,
            revision=revision,
            private=private,
            token=token,
            commit_message=commit_message,
            card=card,
            samples=samples,
        )

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, trained={sorted(self.trained_parts)}"
