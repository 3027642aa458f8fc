"""Label schemas and the label map -> semantics tensor step every model shares.

The official preprocessing (SPADE `preprocess_input`, also used by CC-FPSE and SMIS): integer labels,
255 ("unknown") mapped to the dontcare class `num_classes`, one-hot over `num_classes (+1 dontcare)`
channels, then one instance-edge channel when instances are used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from semsyn.errors import LabelError
from semsyn.namings import BUILTIN_NAMINGS, default_palette

__all__ = [
    "LabelSchema",
    "NAMINGS",
    "register_naming",
    "get_naming",
    "UNKNOWN",
    "check_labels",
    "one_hot",
    "instance_edges",
    "semantics",
]

UNKNOWN = 255

# Known namings: name -> (class names, RGB palette or None), e.g. "coco-stuff". A spec's `labels.names`
# may name one; `LabelSchema.class_names` and `.colors` then come from here, else from the shipped ones
# (`semsyn.namings`): a registered name wins.
NAMINGS: dict[str, tuple[tuple[str, ...], tuple[tuple[int, int, int], ...] | None]] = {}


def register_naming(name: str, class_names: Sequence[str], palette: Sequence[Sequence[int]] | None = None) -> None:
    """Make `labels.names: NAME` give these class names (and colours) to every schema that uses it."""
    colours = tuple((int(r), int(g), int(b)) for r, g, b in palette) if palette is not None else None
    if colours is not None and len(colours) != len(class_names):
        raise ValueError(f"naming {name!r}: {len(class_names)} class names but {len(colours)} colours")
    NAMINGS[name] = (tuple(class_names), colours)


def get_naming(name: str) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...] | None] | None:
    """(class names, palette or None) registered as `name`, or shipped with semsyn; None if unknown."""
    return NAMINGS.get(name) or BUILTIN_NAMINGS.get(name)


@dataclass(frozen=True)
class LabelSchema:
    """What a label map may hold and how it becomes the generator's input channels.

    Args:
        num_classes: classes 0 .. num_classes-1 (COCO-Stuff 182, Cityscapes 35, ADE20K 150).
        dontcare: add a channel for "unknown" pixels (value 255, or `num_classes` after the dataset step).
        instance_edges: add the instance-edge channel computed from an instance map.
        names: class names (a list) or a naming: "coco-stuff", "cityscapes", "ade20k", "synthetic" (shipped in
            `semsyn.namings`) or one added with `register_naming`; gives `class_names` and `colors`.
    """

    num_classes: int
    dontcare: bool = False
    instance_edges: bool = False
    names: Any = None
    palette: tuple[tuple[int, int, int], ...] | None = field(default=None, compare=False)

    @property
    def one_hot_channels(self) -> int:
        """Channels of the one-hot part: classes plus the dontcare channel."""
        return self.num_classes + int(self.dontcare)

    @property
    def label_channels(self) -> int:
        """All input channels a generator sees: one-hot (+ dontcare) (+ instance edge)."""
        return self.one_hot_channels + int(self.instance_edges)

    def _naming(self) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...] | None] | None:
        # A naming fits the schema with one entry per class, or one more that names the dontcare channel
        # (ADE20K: the official unshifted ids put class 150, "flag", on that channel).
        known = get_naming(self.names) if isinstance(self.names, str) else None
        if known is None:
            return None
        return known if len(known[0]) in (self.num_classes, self.one_hot_channels) else None

    @property
    def class_names(self) -> tuple[str, ...]:
        """One name per class: the spec's list, the known naming it names, else "class 0", "class 1", ..."""
        if isinstance(self.names, (list, tuple)) and len(self.names) == self.num_classes:
            return tuple(str(n) for n in self.names)
        known = self._naming()
        if known is not None:
            return known[0][: self.num_classes]
        return tuple(f"class {i}" for i in range(self.num_classes))

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        """One RGB triple (0-255) per class: the spec's palette, the naming's, else `default_palette`."""
        if self.palette is not None:
            return tuple((int(r), int(g), int(b)) for r, g, b in self.palette)
        known = self._naming()
        if known is not None and known[1] is not None:
            return known[1][: self.num_classes]
        return tuple((int(r), int(g), int(b)) for r, g, b in default_palette(self.num_classes).tolist())

    @property
    def channel_names(self) -> tuple[str, ...]:
        """One name per one-hot channel: `class_names`, then the dontcare channel's ("unknown" unless named)."""
        if not self.dontcare:
            return self.class_names
        known = self._naming()
        extra = known[0][self.num_classes] if known is not None and len(known[0]) > self.num_classes else "unknown"
        return (*self.class_names, extra)

    @property
    def channel_colors(self) -> tuple[tuple[int, int, int], ...]:
        """One colour per one-hot channel: `colors`, then the dontcare channel's (black unless named).

        Black is also what `semsyn.data.colorize` paints unknown pixels with, so a colour map written that way
        decodes back to the same ids.
        """
        if not self.dontcare:
            return self.colors
        known = self._naming()
        named = self.palette is None and known is not None and known[1] is not None and len(known[1]) > self.num_classes
        return (*self.colors, known[1][self.num_classes] if named else (0, 0, 0))

    def describe(self) -> str:
        """One phrase for error messages."""
        extra = f", {self.num_classes} = dontcare (255 accepted as unknown)" if self.dontcare else ""
        return f"classes 0..{self.num_classes - 1}{extra}"

    def to_dict(self) -> dict[str, Any]:
        """The `labels:` section of a spec."""
        return {
            "num_classes": self.num_classes,
            "dontcare": self.dontcare,
            "instance_edges": self.instance_edges,
            "names": self.names,
        }


def _as_nchw(label: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(label, torch.Tensor):
        raise LabelError(f"{what} must be a torch.Tensor of integers, got {type(label).__name__}")
    if label.is_floating_point() or label.is_complex() or label.dtype == torch.bool:
        raise LabelError(f"{what} must hold integers (got {label.dtype}); pass class ids, not a one-hot or image")
    if label.dim() == 3:
        label = label.unsqueeze(1)
    if label.dim() != 4 or label.shape[1] != 1:
        raise LabelError(f"{what} must have shape (N, H, W) or (N, 1, H, W), got {tuple(label.shape)}")
    return label


def check_labels(label: torch.Tensor, schema: LabelSchema, where: str = "label map") -> torch.Tensor:
    """Validate an integer label map and return it as (N, 1, H, W) int64 with 255 mapped to dontcare.

    Runs before anything reaches a GPU kernel: a bad value otherwise surfaces as a CUDA device assert.

    Raises:
        LabelError: naming the bad value, its first position and the schema.
    """
    label = _as_nchw(label, where).long()
    if schema.dontcare:
        label = torch.where(label == UNKNOWN, torch.full_like(label, schema.num_classes), label)
    top = schema.one_hot_channels
    bad = (label < 0) | (label >= top)
    if bool(bad.any()):
        pos = tuple(int(i) for i in bad.nonzero()[0])
        value = int(label[pos])
        fix = (
            "map it to a class or to 255 (unknown)"
            if schema.dontcare
            else "map it to a class, or use a spec with labels.dontcare: true to allow 255"
        )
        raise LabelError(
            f"{where} holds value {value} at (n, 1, y, x) = {pos}, outside the label schema ({schema.describe()}); "
            f"{fix}"
        )
    return label


def one_hot(label: torch.Tensor, channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """One-hot (N, channels, H, W) of a checked (N, 1, H, W) integer map."""
    out = torch.zeros(label.shape[0], channels, *label.shape[2:], dtype=dtype, device=label.device)
    return out.scatter_(1, label, 1.0)


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """Official instance-edge map: 1 where a pixel's id differs from a 4-neighbour's (both pixels marked)."""
    t = instance
    edge = torch.zeros_like(t, dtype=torch.bool)
    horizontal = t[..., :, 1:] != t[..., :, :-1]
    vertical = t[..., 1:, :] != t[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    return edge


def semantics(
    label: torch.Tensor,
    schema: LabelSchema,
    instance: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Integer label map (+ instance map) -> float (N, label_channels, H, W), as the official code builds it."""
    label = check_labels(label, schema)
    sem = one_hot(label, schema.one_hot_channels, dtype)
    if not schema.instance_edges:
        return sem
    if instance is None:
        raise LabelError(
            "this model's label schema uses instance edges (labels.instance_edges: true) but no instance map "
            "was given; pass instance=, or the label map itself if there are no instances"
        )
    instance = _as_nchw(instance, "instance map").to(label.device)
    if instance.shape[0] != label.shape[0] or instance.shape[2:] != label.shape[2:]:
        raise LabelError(
            f"instance map shape {tuple(instance.shape)} does not match the label map {tuple(label.shape)}"
        )
    return torch.cat([sem, instance_edges(instance).to(dtype)], dim=1)
