"""Paired transforms: one resize, crop and flip shared by an image, its label map and its instance map.

A transform is planned once per item (`plan_transform`, the only place randomness enters, through a
numpy `Generator`) and then applied to each map: images resample bicubic, label and instance maps
nearest, so no new class ids are ever invented.

Preprocess modes (`image_size` is the (H, W) the model is trained at):

* ``resize_and_crop`` (official COCO-Stuff / ADE20K): resize the file to the load size (the image
  size scaled so its short side is `load_size`, ignoring the file's own aspect), then crop `image_size`.
* ``fixed`` (official Cityscapes): resize the file straight to `image_size`; no crop.
* ``resize``: scale the file, keeping its aspect, just enough to cover the load size, then crop.
* ``none``: no resizing; crop `image_size` out of the file (which must be at least that large).

Training crops are random and flips happen with probability 1/2 (when enabled); validation crops are
centred and never flipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from semsyn.errors import DatasetError

__all__ = [
    "Preprocess",
    "PREPROCESS_MODES",
    "Plan",
    "default_load_size",
    "plan_transform",
    "apply_image",
    "apply_map",
    "image_to_tensor",
    "map_to_tensor",
]

Preprocess = Literal["resize_and_crop", "fixed", "resize", "none"]
PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "fixed", "resize", "none")
# parity: SPADE trains 256-pixel crops out of 286-pixel loads (COCO-Stuff, ADE20K) and tests at load == crop.
OFFICIAL_LOAD_RATIO = 286 / 256


@dataclass(frozen=True)
class Plan:
    """What to do to one item: resize the file to `resize` (H, W) (None: keep), crop at (top, left), flip."""

    resize: tuple[int, int] | None
    top: int
    left: int
    size: tuple[int, int]
    flip: bool


def default_load_size(image_size: tuple[int, int], train: bool) -> int:
    """The official load size for `image_size`: a 286/256 margin for training crops, none for validation."""
    short = min(image_size)
    return round(short * OFFICIAL_LOAD_RATIO) if train else short


def _load_shape(image_size: tuple[int, int], load_size: int) -> tuple[int, int]:
    """`image_size` scaled so its short side is `load_size`."""
    h, w = image_size
    scale = load_size / min(h, w)
    return max(h, round(h * scale)), max(w, round(w * scale))


def plan_transform(
    file_size: tuple[int, int],
    image_size: tuple[int, int],
    *,
    preprocess: Preprocess,
    load_size: int | None,
    flip: bool,
    train: bool,
    rng: np.random.Generator | None,
    where: str = "file",
) -> Plan:
    """Plan the resize, crop and flip of one item.

    Args:
        file_size: (H, W) of the file as read.
        image_size: (H, W) of the output.
        preprocess: one of `PREPROCESS_MODES` (see the module docstring).
        load_size: short side of the load size; None = `default_load_size`.
        flip: allow a horizontal flip (training only).
        train: random crop and flip (True) or centre crop, no flip (False).
        rng: the item's generator; required when `train` is True.
        where: the file named in errors.

    Raises:
        DatasetError: the file is smaller than `image_size` under ``preprocess: none``.
    """
    out_h, out_w = image_size
    if preprocess == "fixed":
        resize: tuple[int, int] | None = (out_h, out_w)
    elif preprocess == "none":
        resize = None
        if file_size[0] < out_h or file_size[1] < out_w:
            raise DatasetError(
                f"{where}: size {file_size[0]}x{file_size[1]} (HxW) is smaller than image_size {out_h}x{out_w} "
                "and preprocess is 'none'; use preprocess 'resize_and_crop' or 'fixed', or a smaller image_size"
            )
    else:
        load = _load_shape(image_size, load_size or default_load_size(image_size, train))
        if preprocess == "resize":
            scale = max(load[0] / file_size[0], load[1] / file_size[1])
            load = (max(load[0], round(file_size[0] * scale)), max(load[1], round(file_size[1] * scale)))
        resize = load
    src_h, src_w = resize if resize is not None else file_size
    if train:
        if rng is None:
            raise ValueError("a training transform needs the item's numpy Generator")
        # Always three draws in one order, so a flip decision never depends on the crop margins.
        top = int(rng.integers(0, src_h - out_h + 1))
        left = int(rng.integers(0, src_w - out_w + 1))
        do_flip = bool(rng.random() < 0.5) and flip
    else:
        top, left, do_flip = (src_h - out_h) // 2, (src_w - out_w) // 2, False
    return Plan(resize, top, left, (out_h, out_w), do_flip)


def apply_image(image: Image.Image, plan: Plan) -> np.ndarray:
    """Resize (bicubic), crop and flip an RGB image; returns uint8 (H, W, 3)."""
    if plan.resize is not None and plan.resize != (image.height, image.width):
        # parity: the official image transform resamples with PIL's BICUBIC.
        image = image.resize((plan.resize[1], plan.resize[0]), Image.BICUBIC)
    h, w = plan.size
    image = image.crop((plan.left, plan.top, plan.left + w, plan.top + h))
    array = np.asarray(image)
    return array[:, ::-1] if plan.flip else array


def apply_map(values: np.ndarray, plan: Plan, where: str = "map") -> np.ndarray:
    """Resize (nearest), crop and flip an integer (h, w) map; returns int64 (H, W).

    Resizing goes through PIL's 32-bit integer mode, whose nearest sampling equals that of 8-bit
    label PNGs (mode 'L', what the official code resized); PIL's 16-bit mode samples differently,
    which would shift instance edges against the labels.
    """
    if plan.resize is not None and plan.resize != values.shape:
        if values.min(initial=0) < np.iinfo(np.int32).min or values.max(initial=0) > np.iinfo(np.int32).max:
            raise DatasetError(
                f"{where}: values do not fit in 32-bit integers; store class or instance ids below 2**31"
            )
        pil = Image.fromarray(np.ascontiguousarray(values, dtype=np.int32))
        values = np.asarray(pil.resize((plan.resize[1], plan.resize[0]), Image.NEAREST))
    h, w = plan.size
    values = values[plan.top : plan.top + h, plan.left : plan.left + w]
    if plan.flip:
        values = values[:, ::-1]
    return values.astype(np.int64)


def image_to_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float32 (3, H, W) in [-1, 1] (official normalisation: mean 0.5, std 0.5)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    return tensor.to(torch.float32).div_(127.5).sub_(1.0)


def map_to_tensor(array: np.ndarray) -> torch.Tensor:
    """int (H, W) -> int64 (1, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.int64)).unsqueeze(0)
