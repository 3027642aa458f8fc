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
from semsyn.style import Style, StyleKind, class_names_for, latent_info

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

    # -- styles (semsyn.style documents the contract) ---------------------------------------------
    @property
    def style_kind(self) -> StyleKind | None:
        """The kind of Style this model takes: "per-class" or "global"; None when it takes no latent."""
        info = latent_info(self.generator)
        return None if info is None else ("per-class" if info.per_class else "global")

    def _style(self, mu: torch.Tensor, logvar: torch.Tensor | None) -> Style:
        info = latent_info(self.generator)
        if info is None or not info.per_class:
            return Style(mu, logvar)
        names = class_names_for(info.num_classes, self.labels.class_names)
        return Style(mu, logvar, True, info.num_classes, info.latent_per_class, names)

    @torch.no_grad()
    def encode_style(self, image: torch.Tensor, label: torch.Tensor, instance: torch.Tensor | None = None) -> Style:
        """The style of image(s) (N, 3, H, W) in [-1, 1] whose label map is `label` (global or per class).

        Per-class styles need the image and label map at the same size; classes absent from the image get
        the prior (mu = logvar = 0).
        """
        if self.style_kind is None or self.encoder is None:
            raise SemsynError(
                f"model {self.spec.name!r} has no style encoder (its spec has no encoder section"
                f"{'' if self.style_kind else ' and its generator takes no latent'}); use a model built with one"
            )
        if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise SemsynError(f"style image must be a float tensor (N, 3, H, W) in [-1, 1], got {shape}")
        sem = self.semantics(label, instance)
        if self.style_kind == "per-class" and tuple(image.shape[-2:]) != tuple(sem.shape[-2:]):
            raise SemsynError(
                f"style image is {tuple(image.shape[-2:])} but its label map {tuple(sem.shape[-2:])}; a per-class "
                "style crops every class from the image by its mask, so give them the same size"
            )
        device, dtype = self._device_dtype()
        mu, logvar = self.encoder(image.to(device=device, dtype=dtype), sem)
        return self._style(mu, logvar)

    def sample_style(self, batch: int = 1, *, seed: int | None = None, size: tuple[int, int] | None = None) -> Style:
        """A style drawn from the prior N(0, I): `batch` codes, drawn on the CPU with `seed` (a point code).

        Args:
            batch: number of codes.
            seed: seeds the draw (the same numbers on every device).
            size: output (H, W), for generators whose latent grows with the image (`latent_shape_for(size)`).
        """
        info = latent_info(self.generator)
        if info is None:
            raise SemsynError(
                f"model {self.spec.name!r} takes no latent (its generator declares none, e.g. use_vae: false), "
                "so it has no style to sample"
            )
        shape = info.shape
        if size is not None and tuple(size) != tuple(self.spec.image_size):
            shape_for = getattr(self.generator, "latent_shape_for", None)
            if shape_for is None:
                raise SemsynError(
                    f"this generator's latent is fixed by its built size {self.spec.image_size}; "
                    "sample_style(size=...) needs a generator that declares latent_shape_for(size)"
                )
            shape = tuple(shape_for(tuple(size)))
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        device, dtype = self._device_dtype()
        mu = torch.randn(batch, *shape, generator=rng).to(device=device, dtype=dtype)
        return self._style(mu, None)

    def _style_code(self, style: Style | torch.Tensor, sem: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
        if isinstance(style, torch.Tensor):  # an image: its style under the label map being rendered
            style = self._encode_image(style, sem)
        if not isinstance(style, Style):
            raise SemsynError(f"style= takes a semsyn.Style (model.encode_style / sample_style), got {type(style)}")
        info = latent_info(self.generator)
        if info is None:
            raise SemsynError(f"model {self.spec.name!r} takes no latent, so it cannot render a style")
        if style.per_class != info.per_class or tuple(style.mu.shape[1:]) != info.shape:
            raise SemsynError(
                f"style is {style.kind} {tuple(style.mu.shape[1:])} per image but this model takes "
                f"{'per-class' if info.per_class else 'global'} {info.shape}; use a style of this model"
            )
        n = sem.shape[0]
        if style.batch not in (1, n):
            raise SemsynError(f"style holds {style.batch} codes for {n} label maps; give one code or {n}")
        device, dtype = self._device_dtype()
        z = style.to(device, dtype).code(rng)
        return z.expand(n, *z.shape[1:]).contiguous()

    def _encode_image(self, image: torch.Tensor, sem: torch.Tensor) -> Style:
        device, dtype = self._device_dtype()
        return self._style(*self.encode(image.to(device=device, dtype=dtype), sem))

    @torch.no_grad()
    def synthesize(
        self,
        label: torch.Tensor,
        instance: torch.Tensor | None = None,
        *,
        style: Style | torch.Tensor | None = None,
        z: torch.Tensor | None = None,
        seed: int | None = None,
        size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """Label map -> image (N, 3, H, W) in [-1, 1].

        Args:
            label: integer label map (N, H, W) or (N, 1, H, W); 255 means unknown.
            instance: integer instance map of the same shape, for schemas with instance edges.
            style: a `Style` (`encode_style`, `sample_style`, or one made by its operations): z = its code, or
                with `seed` a draw around it; an image tensor in [-1, 1] is encoded under `label` first.
            z: the generator's latent, given explicitly (overrides style and seed).
            seed: seeds every random draw (multimodal synthesis: another seed, another image).
            size: output (H, W), for generators that render at any resolution (e.g. posgen).
        """
        sem = self.semantics(label, instance)
        device, dtype = self._device_dtype()
        rng = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        if z is None and style is not None:
            z = self._style_code(style, sem, rng)
        kwargs: dict[str, Any] = {"generator": rng}
        if size is not None:
            if "size" not in inspect.signature(self.generator.forward).parameters:
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
