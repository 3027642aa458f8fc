"""Image tensors <-> files: [-1, 1] float tensors to PNG, grids of images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["to_uint8", "to_pil", "save_image", "image_grid"]


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
