"""Styles: the appearance codes of multimodal generators, and the operations every family shares.

A `Style` is what `SynthesisModel.encode_style(image, label)` returns and `synthesize(label, style=...)`
renders with; `SynthesisModel.sample_style(seed=...)` draws one from the prior. Two kinds exist:

* **global** (SPADE-VAE, CC-FPSE-VAE): one code per image, `mu` of shape (N, D);
* **per class** (GroupDNet): one code per class, `mu` of shape (N, C * L, h, w), class-major: channels
  c * L ... (c + 1) * L - 1 belong to class c (C classes incl. dontcare, L = latent_per_class).

Every style interpolates (style morphing); a per-class style also swaps one class's code for another
style's (appearance mixture) or for a fresh prior draw (semantic manipulation), the class named by id or
by name (`LabelSchema.class_names`, plus "dontcare" for the dontcare channel).

The contract the core reads (it never names a family):

* a generator whose latent is **per class** declares `latent_per_class: int` (L), `latent_classes: int` (C)
  and `latent_shape: tuple` ((C * L, h, w) for one sample); its z is (N, C * L, h, w), class-major;
* any other generator that takes a z declares `latent_shape` ((D,) for a global code), or, as the SPADE
  skeleton does, `use_vae: bool` and `z_dim: int` (a global z of shape (N, z_dim) when use_vae is true);
* the encoder returns (mu, logvar) of the generator's z shape; a per-class encoder also declares
  `latent_per_class` and gives classes absent from the image mu = logvar = 0 (the prior).

`mu` is the code a style renders; `logvar` (or None for a point, e.g. a prior draw) is the spread a seeded
`synthesize` samples around it. Operations keep the spread only when every input has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

from semsyn.errors import SemsynError

__all__ = ["Style", "StyleKind", "LatentInfo", "latent_info", "class_names_for"]

StyleKind = Literal["global", "per-class"]


@dataclass(frozen=True)
class LatentInfo:
    """What a model's latent looks like, read from the generator's declarations (module docstring).

    Args:
        shape: one sample's z shape, e.g. (256,) or (C * L, h, w).
        per_class: whether the code is per class.
        num_classes: C (per class only).
        latent_per_class: L (per class only).
    """

    shape: tuple[int, ...]
    per_class: bool
    num_classes: int | None = None
    latent_per_class: int | None = None


def latent_info(generator: nn.Module) -> LatentInfo | None:
    """The latent a generator declares, or None when it takes no z."""
    shape = getattr(generator, "latent_shape", None)
    per_class = getattr(generator, "latent_per_class", None)
    if isinstance(per_class, int) and shape is not None:
        return LatentInfo(tuple(shape), True, int(generator.latent_classes), per_class)
    if shape is not None:
        return LatentInfo(tuple(shape), False)
    if getattr(generator, "use_vae", False) and isinstance(getattr(generator, "z_dim", None), int):
        return LatentInfo((generator.z_dim,), False)
    return None


@dataclass(frozen=True)
class Style:
    """An appearance code: global (N, D) or per class (N, C * L, h, w), with an optional spread.

    Args:
        mu: the code a style renders.
        logvar: log-variance around mu (an encoder's), same shape; None for a point code (a prior draw).
        per_class: whether the code is per class (class-major channel blocks of `latent_per_class`).
        num_classes: C, the classes with a code (per class only).
        latent_per_class: L, channels per class (per class only).
        class_names: one name per class code (per class only), to address classes by name.
    """

    mu: torch.Tensor
    logvar: torch.Tensor | None = None
    per_class: bool = False
    num_classes: int | None = None
    latent_per_class: int | None = None
    class_names: tuple[str, ...] = ()

    @property
    def kind(self) -> StyleKind:
        """ "per-class" or "global"."""
        return "per-class" if self.per_class else "global"

    @property
    def batch(self) -> int:
        """Number of codes (images) the style holds."""
        return self.mu.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Style:
        """The same style on another device / dtype."""
        logvar = self.logvar.to(device=device, dtype=dtype) if self.logvar is not None else None
        return replace(self, mu=self.mu.to(device=device, dtype=dtype), logvar=logvar)

    def code(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z to render: mu, or with a `torch.Generator` a draw mu + eps * exp(logvar / 2) (mu for a point)."""
        if generator is None or self.logvar is None:
            return self.mu
        eps = torch.randn(self.mu.shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + eps * torch.exp(0.5 * self.logvar)

    # -- operations ---------------------------------------------------------------------------------
    def interpolate(self, other: Style, t: float) -> Style:
        """Style morphing: (1 - t) * self + t * other, codes and log-variances alike (t = 0: self, 1: other).

        A style of batch 1 broadcasts against the other's batch.
        """
        self._check_compatible(other, "interpolate")
        mu_a, mu_b = _broadcast(self.mu, other.mu)
        mu = torch.lerp(mu_a, mu_b.to(mu_a), float(t))
        logvar = None
        if self.logvar is not None and other.logvar is not None:
            lv_a, lv_b = _broadcast(self.logvar, other.logvar)
            logvar = torch.lerp(lv_a, lv_b.to(lv_a), float(t))
        return replace(self, mu=mu, logvar=logvar)

    def replace_class(self, cls: int | str, other: Style) -> Style:
        """Appearance mixture: this style with class `cls`'s code taken from `other` (per-class styles only)."""
        self._check_compatible(other, "replace_class")
        span = self._class_span(cls, "replace_class")
        mu_a, mu_b = _broadcast(self.mu, other.mu)
        mu = mu_a.clone()
        mu[:, span] = mu_b[:, span].to(mu)
        logvar = None
        if self.logvar is not None and other.logvar is not None:
            lv_a, lv_b = _broadcast(self.logvar, other.logvar)
            logvar = lv_a.clone()
            logvar[:, span] = lv_b[:, span].to(logvar)
        return replace(self, mu=mu, logvar=logvar)

    def resample_class(self, cls: int | str, seed: int | None = None) -> Style:
        """Semantic manipulation: class `cls`'s code replaced by a fresh N(0, I) draw (per-class styles only).

        The draw is made on the CPU with `seed` (the same numbers on every device); the result is a point
        code for that class, so it carries no log-variance.
        """
        span = self._class_span(cls, "resample_class")
        rng = torch.Generator().manual_seed(seed) if seed is not None else None
        shape = (self.mu.shape[0], span.stop - span.start, *self.mu.shape[2:])
        draw = torch.randn(shape, generator=rng)
        mu = self.mu.clone()
        mu[:, span] = draw.to(mu)
        return replace(self, mu=mu, logvar=None)

    # -- checks -------------------------------------------------------------------------------------
    def class_index(self, cls: int | str) -> int:
        """A class id from an id or a name; SemsynError when out of range or unknown."""
        if not self.per_class:
            raise SemsynError(
                "this style is global (one code per image, e.g. SPADE or CC-FPSE): per-class operations need a "
                "per-class style from a model whose latent is per class (e.g. groupdnet); use interpolate instead"
            )
        if isinstance(cls, str):
            if cls in self.class_names:
                return self.class_names.index(cls)
            from semsyn.registry import close_matches

            raise SemsynError(
                f"class {cls!r} is not one of this style's {self.num_classes} classes"
                f"{close_matches(cls, list(self.class_names))}; use a name from the model's labels.class_names or an id"
            )
        if isinstance(cls, bool) or not isinstance(cls, int) or not 0 <= cls < int(self.num_classes or 0):
            raise SemsynError(f"class id {cls!r} is out of range: this style has classes 0..{self.num_classes - 1}")
        return cls

    def _class_span(self, cls: int | str, op: str) -> slice:
        if not self.per_class:
            raise SemsynError(
                f"Style.{op} needs a per-class style, but this one is global (one code per image, e.g. SPADE or "
                "CC-FPSE); use interpolate, or a model whose latent is per class (e.g. groupdnet)"
            )
        c = self.class_index(cls)
        return slice(c * self.latent_per_class, (c + 1) * self.latent_per_class)

    def _check_compatible(self, other: Style, op: str) -> None:
        if not isinstance(other, Style):
            raise SemsynError(f"Style.{op} takes another Style, got {type(other).__name__}")
        if self.per_class != other.per_class or self.mu.shape[1:] != other.mu.shape[1:]:
            raise SemsynError(
                f"Style.{op}: the styles do not match ({self.kind} {tuple(self.mu.shape[1:])} vs "
                f"{other.kind} {tuple(other.mu.shape[1:])} per image); combine styles of the same model"
            )
        if self.batch != other.batch and 1 not in (self.batch, other.batch):
            raise SemsynError(
                f"Style.{op}: batches of {self.batch} and {other.batch} codes; use equal batches or a style of one"
            )


def _broadcast(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(a.shape[0], b.shape[0])
    return a.expand(n, *a.shape[1:]), b.expand(n, *b.shape[1:])


def class_names_for(num_classes: int, names: Sequence[str]) -> tuple[str, ...]:
    """Names for C class codes: the schema's names, then "dontcare" for the dontcare channel if C is one more."""
    out = list(names)[:num_classes]
    if len(out) < num_classes:
        out.append("dontcare")
    while len(out) < num_classes:
        out.append(f"class {len(out)}")
    return tuple(out)
