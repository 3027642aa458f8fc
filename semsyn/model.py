"""`SynthesisModel`: the generator, optional style encoder and optional discriminator of one spec."""

from __future__ import annotations

import inspect
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semsyn.checkpoint import load_strict, prefixed_state, split_prefixed
from semsyn.components import build_networks
from semsyn.contracts import DiscriminatorOutput, call_generator
from semsyn.errors import SemsynError
from semsyn.inference import resolve_dtype
from semsyn.labels import LabelSchema
from semsyn.labels import semantics as make_semantics
from semsyn.provenance import Provenance
from semsyn.resolve import PARTS, SPEC_NAME, WEIGHTS_NAME, push_folder, resolve, write_model_folder
from semsyn.spec import Spec
from semsyn.style import Style, StyleKind, class_names_for, latent_info

__all__ = ["SynthesisModel", "DiscriminatorOutput", "build_model", "PARTS", "WEIGHTS_NAME", "SPEC_NAME"]

logger = logging.getLogger(__name__)


class SynthesisModel(nn.Module):
    """The networks of one spec and the label-map -> image API.

    Args:
        spec: the validated spec the networks were built from.
        generator: `forward(semantics, z=None) -> image in [-1, 1]` (optionally `generator=`, `size=` keywords).
        encoder: style encoder `forward(image, semantics) -> (mu, logvar)`, or None.
        discriminator: `forward(image, semantics) -> DiscriminatorOutput`, or None.
        provenance: where the networks' weights come from (default: random-init, a fresh build).
    """

    def __init__(
        self,
        spec: Spec,
        generator: nn.Module,
        encoder: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.generator = generator
        self.encoder = encoder
        self.discriminator = discriminator
        # Parts holding weights that came from a checkpoint; a fresh build holds none.
        self.trained_parts: set[str] = set()
        self.provenance = provenance or Provenance.random_init(spec.name, self.parts)
        # The source the weights were loaded from (what a fine-tune names as its parent).
        self.loaded_from: str | None = None

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source: str | os.PathLike[str],
        *,
        pretrained: bool = True,
        revision: str | None = None,
        with_discriminator: bool = False,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        **overrides: Any,
    ) -> SynthesisModel:
        """A model from any source `semsyn.resolve` knows, with its weights (`pretrained=True`); in eval mode.

        Args:
            source: a named spec, "hf-hub:org/name[@rev]", "local-dir:PATH", a model or run folder, a spec file.
            pretrained: load the weights; False builds the source's spec untrained.
            revision: Hub branch, tag or commit.
            with_discriminator: also build (and load, when the weights hold one) the discriminator.
            device: where to put the model.
            dtype: torch.bfloat16 (or "bfloat16") runs the model in bf16 where the device has native bf16
                convolutions (else float32, with a warning); default float32. See docs/performance.md.
            **overrides: spec fields to patch (a nested patch; ``generator__ngf=32`` also works).

        Raises:
            HubError: weights cannot be had (for an unpublished named model: at once, saying how to get them).
            SpecError, CheckpointError: a bad spec, or weights that do not match it.
        """
        folder = resolve(source, revision)
        if pretrained:
            folder = folder.published(revision)
            folder.weights_path()  # fail on missing weights before building anything
        model = build_model(folder.spec(split_overrides(overrides)), with_discriminator=with_discriminator)
        if pretrained:
            state, provenance = folder.read_weights()
            model.load_weights(
                state, f"{folder.where}/{WEIGHTS_NAME}" if folder.repo_id else str(folder.weights_path())
            )
            model.provenance = provenance
            model.loaded_from = folder.load_source
        if device is not None:
            model = model.to(device)
        run_dtype = resolve_dtype(dtype, device)
        if run_dtype is not None:
            model = model.to(dtype=run_dtype)
        return model.eval()

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
        # inference_mode lets eval-only shortcuts run (semsyn.inference); the image is returned as a normal
        # tensor (a copy), so callers may still edit it in place; contiguous, whatever layout the path ran in.
        with torch.inference_mode():
            image = self._synthesize(label, instance, style, z, seed, size)
        return image.clone(memory_format=torch.contiguous_format)

    def _synthesize(
        self,
        label: torch.Tensor,
        instance: torch.Tensor | None,
        style: Style | torch.Tensor | None,
        z: torch.Tensor | None,
        seed: int | None,
        size: tuple[int, int] | None,
    ) -> torch.Tensor:
        sem = self.semantics(label, instance)
        device, dtype = self._device_dtype()
        rng = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
        if z is None and style is not None:
            z = self._style_code(style, sem, rng)
        kwargs: dict[str, Any] = {"generator": rng}
        if size is not None:
            if not self.renders_any_size:
                raise SemsynError(
                    f"generator {self.spec.data['generator']['name']!r} renders at its built size "
                    f"{self.spec.image_size}; size= needs a generator that renders at any resolution (posgen), "
                    "or build the model with image_size set to the size you want"
                )
            kwargs["size"] = tuple(size)
        return call_generator(
            self.generator, sem, z.to(device=device, dtype=dtype) if z is not None else None, **kwargs
        )

    # -- weights ----------------------------------------------------------------------------------
    def weights(self, parts: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """The state dicts of `parts` (default all), keys prefixed `generator.`, `encoder.`, `discriminator.`."""
        chosen = self.parts if parts is None else [p for p in self.parts if p in set(parts)]
        return prefixed_state({p: getattr(self, p) for p in chosen})

    def load_weights(self, state: Mapping[str, torch.Tensor], where: str, *, warn_untrained: bool = True) -> None:
        """Load what `state` holds for each part strictly; parts it lacks stay untrained (and are reported).

        Raises:
            CheckpointError: unknown prefixes, or a part whose keys do not match the model.
        """
        groups = split_prefixed(state, PARTS, where)
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
        source: str | None = None,
    ) -> Path:
        """Write spec.yaml, model.safetensors (with the provenance record) and a model card (README.md).

        The card states the true origin and licence: a fresh build is random-init, whatever the spec is
        named; parts stored but never trained are named as untrained.

        Args:
            save_directory: the folder (created if needed); an existing README.md there is merged.
            card: extra model-card fields (tags, datasets, description, license for weights you made).
            samples: name -> PIL image or (N, 3, H, W) tensor in [-1, 1], saved under samples/ and shown in the card.
            parts: the networks to store (default all); a converted discriminator alone stores just that.
            source: what the card's usage snippet loads (default "local-dir:<the folder>").
        """
        stored = self.weights(parts)
        names = sorted({k.partition(".")[0] for k in stored})
        provenance = self.provenance.stored(names, self.trained_parts)
        return write_model_folder(
            save_directory, self.spec, stored, provenance, source=source, card=card, samples=samples
        )

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
        """Publish this model (spec, weights, card) to a Hub repo; returns the commit id.

        Stores the trained parts (all parts when none is trained); the repo's existing card is merged.
        """
        with tempfile.TemporaryDirectory(prefix="semsyn-save-") as tmp:
            folder = self.save_pretrained(
                Path(tmp) / "model",
                card=card,
                samples=samples,
                parts=sorted(self.trained_parts) or None,
                source=f"hf-hub:{repo_id}",
            )
            return push_folder(
                folder,
                repo_id,
                revision=revision,
                private=private,
                token=token,
                commit_message=commit_message,
                card=card,
            )

    def extra_repr(self) -> str:
        return f"spec={self.spec.name!r}, trained={sorted(self.trained_parts)}"


def split_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`generator={"ngf": 32}, image_size=[128, 128]` or `generator__ngf=32` (like sklearn) -> a nested patch."""
    patch: dict[str, Any] = {}
    for key, value in overrides.items():
        node = patch
        *parents, leaf = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return patch


def build_model(spec: Spec, *, with_discriminator: bool = False) -> SynthesisModel:
    """A `SynthesisModel` with freshly initialised networks (provenance random-init), from a validated spec."""
    nets = build_networks(spec, with_discriminator=with_discriminator)
    return SynthesisModel(spec, nets["generator"], nets["encoder"], nets["discriminator"])
