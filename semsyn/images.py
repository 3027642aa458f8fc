"""Image tensors <-> files: [-1, 1] float tensors to PNG, grids of images, label map files in and colours out.

Label map files are integer maps (PNG modes L, P, I, I;16: the pixel values are class ids, 255 = unknown) or
colour maps (RGB / RGBA), decoded with a label schema's `channel_colors` by exact colour match.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semsyn.errors import LabelError
from semsyn.labels import UNKNOWN, LabelSchema

__all__ = [
    "to_uint8",
    "to_pil",
    "save_image",
    "image_grid",
    "INTEGER_MODES",
    "COLOUR_MODES",
    "read_label_map",
    "read_rgb",
    "decode_colors",
    "check_map_values",
    "label_colors",
]

# PIL modes whose pixel values are ids as stored (no x255 scaling), and modes read as colour maps.
INTEGER_MODES = ("L", "P", "I", "I;16", "I;16B", "I;16L", "1")
COLOUR_MODES = ("RGB", "RGBA")


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """(3, H, W) or (N, 3, H, W) in [-1, 1] -> uint8 (..., H, W, 3) on the CPU."""
    x = image.detach().float().cpu().clamp(-1, 1)
    x = ((x + 1) * 127.5).round().to(torch.uint8)
    return x.movedim(-3, -1)


def image_grid(images: torch.Tensor, columns: int | None = None, pad: int = 2) -> torch.Tensor:
    """(N, 3, H, W) -> one (3, H', W') image with the N images in rows of `columns`."""
    n, c, h, w = images.shape
    columns = columns or n
    rows = (n + columns - 1) // columns
    grid = images.new_full((c, rows * (h + pad) + pad, columns * (w + pad) + pad), 1.0)
    for i in range(n):
        r, k = divmod(i, columns)
        grid[:, pad + r * (h + pad) : pad + r * (h + pad) + h, pad + k * (w + pad) : pad + k * (w + pad) + w] = images[
            i
        ]
    return grid


def to_pil(image: Any) -> Any:
    """A PIL image from a PIL image, a (3, H, W) / (1, 3, H, W) tensor in [-1, 1], or a grid of N images."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    if image.dim() == 4:
        image = image[0] if image.shape[0] == 1 else image_grid(image)
    return Image.fromarray(to_uint8(image).numpy())


def save_image(image: Any, path: str | os.PathLike[str]) -> Path:
    """Write an image (see `to_pil`) as PNG, atomically."""
    from semsyn.checkpoint import atomic_write

    pil = to_pil(image)
    return atomic_write(path, lambda p: pil.save(p, format="PNG"))


# -- label map files --------------------------------------------------------------------------------


def _open(path: str | os.PathLike[str], what: str) -> Any:
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise LabelError(f"{what} {path} does not exist") from None
    except (OSError, UnidentifiedImageError) as exc:
        raise LabelError(f"{what} {path} cannot be read as an image ({exc}); replace or remove the file") from None
    return image


def read_label_map(
    path: str | os.PathLike[str], schema: LabelSchema | None = None, *, what: str = "label map"
) -> np.ndarray:
    """An int64 (H, W) map of ids from an integer PNG, or from a colour PNG decoded with `schema`'s colours.

    Args:
        path: the file.
        schema: decodes colour maps (`channel_colors`) and checks the ids; None reads integer maps only and
            checks nothing (instance maps).
        what: the file's role in messages ("label map", "instance map").

    Raises:
        LabelError: naming the file, and the mode, colour or value (with its (y, x)) that is wrong.
    """
    image = _open(path, what)
    if image.mode in INTEGER_MODES:
        values = np.asarray(image).astype(np.int64)
    elif image.mode in COLOUR_MODES and schema is not None:
        rgb = np.asarray(image.convert("RGB"))
        values = decode_colors(rgb, schema.channel_colors, f"{what} {path}")
    else:
        kinds = "single-channel ids (mode L, P or I)" + (" or RGB colours" if schema is not None else "")
        raise LabelError(f"{what} {path} is a {image.mode} image; a {what} holds {kinds}")
    if schema is not None:
        check_map_values(values, schema, f"{what} {path}")
    return values


def read_rgb(path: str | os.PathLike[str], size: tuple[int, int] | None = None, *, what: str = "image") -> torch.Tensor:
    """An image file as float (1, 3, H, W) in [-1, 1], resized (bicubic) to `size` (H, W) if given."""
    from PIL import Image

    image = _open(path, what).convert("RGB")
    if size is not None and (image.height, image.width) != tuple(size):
        image = image.resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)[None] / 127.5 - 1


def decode_colors(rgb: np.ndarray, colors: Sequence[Sequence[int]], where: str) -> np.ndarray:
    """uint8 (H, W, 3) colour map -> int64 (H, W) ids: the index of each pixel's colour in `colors`.

    Exact match only (a resampled or JPEG-saved colour map has blended colours that mean no class). A colour
    listed twice decodes to its lowest index.

    Raises:
        LabelError: for the first pixel whose colour is not in `colors`, naming `where`, the colour, its
            (y, x) and how many pixels and other colours are unknown.
    """
    keys = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table: dict[int, int] = {}
    for index, (r, g, b) in enumerate(colors):
        table.setdefault((int(r) << 16) | (int(g) << 8) | int(b), index)
    known = np.fromiter(table, dtype=np.int64, count=len(table))
    order = np.argsort(known)
    known, ids = known[order], np.fromiter(table.values(), dtype=np.int64, count=len(table))[order]
    slot = np.clip(np.searchsorted(known, keys), 0, len(known) - 1)
    found = known[slot] == keys
    if not bool(found.all()):
        y, x = (int(i) for i in np.argwhere(~found)[0])
        colour = tuple(int(c) for c in rgb[y, x])
        others = len(np.unique(keys[~found])) - 1
        more = f" ({int((~found).sum())} such pixels, {others} other unknown colours)" if others else ""
        raise LabelError(
            f"{where} holds colour {colour} at (y, x) = ({y}, {x}), which is not in the model's palette of "
            f"{len(colors)} colours{more}; colour maps must use the palette's exact colours (no resampling or "
            "JPEG), or give an integer map of class ids"
        )
    return ids[slot]


def check_map_values(values: np.ndarray, schema: LabelSchema, where: str) -> None:
    """Raise a LabelError naming `where`, the value and its (y, x) if a value is outside `schema`."""
    bad = (values < 0) | (values >= schema.one_hot_channels)
    if schema.dontcare:
        bad &= values != UNKNOWN
    if not bool(bad.any()):
        return
    y, x = (int(i) for i in np.argwhere(bad)[0])
    fix = (
        "map it to a class or to 255 (unknown)"
        if schema.dontcare
        else "map it to a class (this model's labels have no dontcare, so 255 is not allowed either)"
    )
    raise LabelError(
        f"{where} holds value {int(values[y, x])} at (y, x) = ({y}, {x}), outside the model's label schema "
        f"({schema.describe()}); {fix}"
    )


def label_colors(label: torch.Tensor, schema: LabelSchema) -> torch.Tensor:
    """Integer map (H, W), (N, H, W) or (N, 1, H, W) -> float (N, 3, H, W) in [-1, 1] in the schema's colours.

    Ids take `schema.channel_colors` (so the dontcare channel's too); 255 and anything else is black.
    """
    values = label.detach().long().cpu()
    if values.dim() == 2:
        values = values[None]
    if values.dim() == 4:
        values = values[:, 0]
    colours = torch.tensor(schema.channel_colors, dtype=torch.float32)
    table = torch.zeros(max(int(values.max()) + 1, len(colours)) if values.numel() else len(colours), 3)
    table[: len(colours)] = colours
    rgb = table[values.clamp(min=0)]
    rgb[values < 0] = 0
    return (rgb.permute(0, 3, 1, 2) / 127.5 - 1).to(label.device)
