"""What every dataset shares: file discovery, reading, the label check, seeded augmentation, collation.

A file dataset is a sorted list of `SampleFiles` (image, label map, optional instance map) plus one
`PairedFileDataset` that reads, checks and transforms them. The registered datasets
(`coco-stuff`, `cityscapes`, `ade20k`, `folder`) differ only in how they find their files.

Items are dicts: 'image' float32 (3, H, W) in [-1, 1], 'label' int64 (1, H, W) (255 "unknown" already
mapped to the dontcare class `num_classes` when the schema has one, as the official dataset step does),
'instance' int64 (1, H, W) when the schema uses instance edges, and 'path' (the image file).

Reproducible augmentation: item `i` of epoch `e` draws its crop and flip from
``numpy.random.default_rng([seed, e, i])``; call `set_epoch(e)` before each epoch (as with a
`DistributedSampler`), so the same (seed, epoch, index) gives the same tensors in any process or worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from semsyn.data.transforms import (
    PREPROCESS_MODES,
    Preprocess,
    apply_image,
    apply_map,
    default_load_size,
    image_to_tensor,
    map_to_tensor,
    plan_transform,
)
from semsyn.errors import DatasetError, SpecError
from semsyn.labels import UNKNOWN, LabelSchema, default_palette

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAP_EXTENSIONS",
    "SampleFiles",
    "PairedFileDataset",
    "item_rng",
    "require_dir",
    "list_by_stem",
    "pair_by_stem",
    "missing_map_error",
    "read_image",
    "read_map",
    "collate",
    "build_dataset",
    "default_palette",
    "colorize",
]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Label and instance maps must be lossless: JPEG would blur class ids into values that mean other classes.
MAP_EXTENSIONS = (".png", ".tif", ".tiff", ".bmp")
LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".webp")
SPLITS = ("train", "val")


@dataclass(frozen=True)
class SampleFiles:
    """The files of one item."""

    image: Path
    label: Path
    instance: Path | None = None


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of item `index` in `epoch`: a pure function of the three numbers."""
    return np.random.default_rng([seed, epoch, index])


# -- discovery --------------------------------------------------------------------------------------


def require_dir(path: Path, what: str, fix: str) -> Path:
    """`path` if it is a folder, else a DatasetError naming it, what it should hold and the fix."""
    if not path.is_dir():
        state = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{what} {path} {state}; {fix}")
    return path


def list_by_stem(folder: Path, extensions: Iterable[str], what: str, *, recursive: bool = False) -> dict[str, Path]:
    """Files of `folder` with one of `extensions`, keyed by stem, sorted; empty or clashing -> DatasetError."""
    extensions = tuple(e.lower() for e in extensions)
    pattern = "**/*" if recursive else "*"
    found: dict[str, Path] = {}
    for path in sorted(folder.glob(pattern)):
        if path.suffix.lower() not in extensions or not path.is_file():
            continue
        if path.stem in found:
            raise DatasetError(
                f"{what} folder {folder} holds two files with the stem {path.stem!r} ({found[path.stem].name} and "
                f"{path.relative_to(folder)}); files pair up by stem, so keep one"
            )
        found[path.stem] = path
    if not found:
        raise DatasetError(
            f"{what} folder {folder} holds no {'/'.join(e.lstrip('.') for e in extensions)} files; "
            "point root at the dataset's top folder (see docs/data.md for the expected layout)"
        )
    return found


def missing_map_error(image: Path, expected: Path | str, what: str, fix: str) -> DatasetError:
    """The error for an image whose label (or instance) file is missing, naming a lossy look-alike if any."""
    expected = Path(expected)
    lossy = [expected.with_suffix(e) for e in LOSSY_EXTENSIONS if expected.with_suffix(e).is_file()]
    hint = f"; {lossy[0]} exists but {what} maps must be lossless PNG (JPEG changes class ids)" if lossy else ""
    return DatasetError(f"image {image} has no {what} file (expected {expected}){hint}; {fix}")


def pair_by_stem(
    images: Mapping[str, Path],
    labels: Mapping[str, Path],
    label_dir: Path,
    instances: Mapping[str, Path] | None = None,
    instance_dir: Path | None = None,
    *,
    fix: str,
) -> list[SampleFiles]:
    """Pair every image with the label (and instance) map of the same stem; a missing one -> DatasetError."""
    for what, maps, folder in (("label", labels, label_dir), ("instance", instances, instance_dir)):
        if maps is None or folder is None:
            continue
        missing = [stem for stem in images if stem not in maps]
        if missing:
            more = f" (and {len(missing) - 1} more images)" if len(missing) > 1 else ""
            first = images[missing[0]]
            raise missing_map_error(
                first, folder / f"{missing[0]}.png", what, f"add it{more} or remove the image; {fix}"
            )
    return [
        SampleFiles(image, labels[stem], instances[stem] if instances is not None else None)
        for stem, image in images.items()
    ]


# -- reading ----------------------------------------------------------------------------------------


def read_image(path: Path) -> Image.Image:
    """An image file as RGB (grey and RGBA files are converted, as the official code does)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"image {path} cannot be read ({exc}); replace or remove the file") from None


def read_map(path: Path, what: str = "label") -> np.ndarray:
    """A single-channel integer map (8-bit, 16-bit, 32-bit or palette PNG) as stored: no x255 scaling."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L", "1"):
                raise DatasetError(
                    f"{what} map {path} has image mode {mode!r}; semsyn needs one channel of integer ids "
                    "(8/16/32-bit grey or palette PNG); convert colour-coded maps to class ids first"
                )
            values = np.asarray(image)
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{what} map {path} cannot be read ({exc}); replace or remove the file") from None
    return values.astype(np.int64) if values.dtype == bool else values


def check_label_values(values: np.ndarray, schema: LabelSchema, path: Path) -> None:
    """Raise a DatasetError naming the file, the value, where it is and the schema if a value is out of range."""
    top = schema.one_hot_channels
    bad = (values < 0) | (values >= top)
    if schema.dontcare:
        bad &= values != UNKNOWN
    if not bad.any():
        return
    y, x = (int(i) for i in np.argwhere(bad)[0])
    value = int(values[y, x])
    allowed = f"0..{top - 1}" + (f" and {UNKNOWN} (unknown)" if schema.dontcare else "")
    fix = (
        "set labels.dontcare: true to accept 255 as unknown"
        if value == UNKNOWN
        else f"check that labels.num_classes ({schema.num_classes}) is the dataset's class count"
    )
    raise DatasetError(
        f"label map {path} holds value {value} at (y, x) = ({y}, {x}), outside the label schema ({schema.describe()}; "
        f"allowed values {allowed}); {fix}, or fix the file"
    )


# -- the dataset ------------------------------------------------------------------------------------


class PairedFileDataset(Dataset):
    """Images paired with label (and instance) maps on disk, transformed together.

    Subclasses find the files and pass them in; this class reads, checks and transforms them.

    Args:
        files: the items, in a fixed order.
        labels: the spec's label schema; every label map is checked against it.
        image_size: (H, W) of the items.
        split: "train" (random crop and flip) or "val" (centre crop, no flip).
        load_size: short side of the size files are resized to before cropping; None = the official
            286/256 margin in training and none in validation.
        flip: random horizontal flips in training.
        preprocess: "resize_and_crop", "fixed", "resize" or "none" (see `semsyn.data.transforms`).
        seed: seeds the augmentation together with the epoch and the item index.
        max_samples: keep only the first `max_samples` items (None: all).
        source: what the files are (used in messages), e.g. "coco-stuff at /data/coco".
    """

    def __init__(
        self,
        files: Sequence[SampleFiles],
        *,
        labels: LabelSchema,
        image_size: tuple[int, int],
        split: str = "train",
        load_size: int | None = None,
        flip: bool = True,
        preprocess: Preprocess = "resize_and_crop",
        seed: int = 0,
        max_samples: int | None = None,
        source: str = "dataset",
    ) -> None:
        super().__init__()
        _check_options(split, image_size, load_size, preprocess, max_samples)
        self.files = list(files)[:max_samples] if max_samples is not None else list(files)
        if not self.files:
            raise DatasetError(f"{source} has no items; check root and split")
        self.labels = labels
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.split = split
        self.load_size = load_size
        self.flip = flip
        self.preprocess = preprocess
        self.seed = seed
        self.epoch = 0
        self.source = source
        logger.info("%s (%s): %d items", source, split, len(self.files))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose crops and flips items get (call before iterating, in every process)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.files):
            raise IndexError(f"index {index} out of range for {len(self.files)} items")
        files = self.files[index]
        image = read_image(files.image)
        file_size = (image.height, image.width)
        label = self._read_matching(files.label, "label", files.image, file_size)
        check_label_values(label, self.labels, files.label)
        instance = None
        if files.instance is not None:
            instance = self._read_matching(files.instance, "instance", files.image, file_size)
        train = self.split == "train"
        plan = plan_transform(
            file_size,
            self.image_size,
            preprocess=self.preprocess,
            load_size=self.load_size,
            flip=self.flip,
            train=train,
            rng=item_rng(self.seed, self.epoch, index) if train else None,
            where=str(files.image),
        )
        label = apply_map(label, plan, str(files.label))
        if self.labels.dontcare:
            # parity: the official dataset step replaces 255 with label_nc (the dontcare channel).
            label[label == UNKNOWN] = self.labels.num_classes
        item: dict[str, Any] = {
            "image": image_to_tensor(apply_image(image, plan)),
            "label": map_to_tensor(label),
            "path": str(files.image),
        }
        if instance is not None:
            item["instance"] = map_to_tensor(apply_map(instance, plan, str(files.instance)))
        return item

    @staticmethod
    def _read_matching(path: Path, what: str, image_path: Path, size: tuple[int, int]) -> np.ndarray:
        values = read_map(path, what)
        if values.shape != size:
            raise DatasetError(
                f"{what} map {path} is {values.shape[0]}x{values.shape[1]} (HxW) but its image {image_path} is "
                f"{size[0]}x{size[1]}; a pair must have the same size: re-export the {what} map at the image's size"
            )
        return values

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source}, split={self.split!r}, items={len(self)}, "
            f"image_size={self.image_size}, preprocess={self.preprocess!r})"
        )


def _check_options(
    split: str, image_size: tuple[int, int], load_size: int | None, preprocess: str, max_samples: int | None
) -> None:
    if split not in SPLITS:
        raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if preprocess not in PREPROCESS_MODES:
        raise DatasetError(f"preprocess {preprocess!r} is not one of {', '.join(PREPROCESS_MODES)}")
    if len(image_size) != 2 or min(image_size) < 1:
        raise DatasetError(f"image_size {tuple(image_size)} must be (height, width) in pixels")
    if load_size is not None and load_size < min(image_size):
        raise DatasetError(
            f"load_size {load_size} is smaller than the image size's short side {min(image_size)}; crops would not "
            f"fit: use load_size >= {min(image_size)} or null (default {default_load_size(tuple(image_size), True)})"
        )
    if max_samples is not None and max_samples < 1:
        raise DatasetError(f"max_samples {max_samples} must be a positive number of items, or null for all")


# -- batches and building ---------------------------------------------------------------------------


def collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack a list of items into a batch: tensors stacked on a new dim 0, other values listed.

    Items must share their keys (a dataset gives 'instance' to all items or to none); a mix raises a
    DatasetError naming the key and an item, rather than silently dropping a map.
    """
    if not items:
        raise DatasetError("cannot collate an empty batch")
    keys = set(items[0])
    for item in items[1:]:
        if set(item) != keys:
            odd = sorted(keys ^ set(item))
            raise DatasetError(
                f"batch items differ in keys {odd} (item {item.get('path', '?')} vs {items[0].get('path', '?')}); "
                "a dataset must give every item the same keys"
            )
    batch: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return batch


def build_dataset(spec: Any, split: str = "train", **overrides: Any) -> Dataset:
    """Build the dataset of a spec's `data:` section for `split`.

    Args:
        spec: a `semsyn.Spec` with a `data:` section.
        split: "train" or "val"; passed to datasets whose constructor takes `split`.
        **overrides: patches of the `data:` section (e.g. ``max_samples=8``), validated like the spec.

    Raises:
        SpecError: the spec has no `data:` section, or an override is not a parameter of the dataset.
    """
    from semsyn.builder import build_component
    from semsyn.registry import DATASETS

    if overrides:
        spec = spec.with_overrides({"data": overrides})
    cfg = spec.data.get("data")
    if cfg is None:
        raise SpecError(f"{spec.where('data')}: the spec has no data section; add one, e.g. data: {{name: synthetic}}")
    if split not in SPLITS:
        raise DatasetError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    return build_component(DATASETS, cfg, spec.labels, spec.image_size, split=split)


# -- colours ----------------------------------------------------------------------------------------


def colorize(label: Any, num_classes: int, palette: Sequence[Sequence[int]] | None = None) -> Any:
    """Colour a label map for viewing; values outside 0..num_classes-1 (unknown, dontcare) are black.

    Args:
        label: integer map. A numpy array (..., H, W) gives uint8 (..., H, W, 3) (for PIL); a torch tensor
            (H, W), (1, H, W), (N, H, W) or (N, 1, H, W) gives uint8 (3, H, W) or (N, 3, H, W) on its device
            (for image grids).
        num_classes: classes of the schema.
        palette: one RGB triple per class; default `default_palette(num_classes)`.
    """
    table = np.asarray(palette if palette is not None else default_palette(num_classes), dtype=np.uint8)
    if table.shape != (num_classes, 3):
        raise ValueError(f"palette must hold {num_classes} RGB triples, got shape {table.shape}")
    table = np.concatenate([table, np.zeros((1, 3), np.uint8)])
    if isinstance(label, torch.Tensor):
        values = label.detach().cpu().numpy()
        if values.ndim >= 3 and values.shape[-3] == 1:
            values = values[..., 0, :, :]
        rgb = _lookup(values, table, num_classes)
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb, -1, -3))).to(label.device)
    return _lookup(np.asarray(label), table, num_classes)


def _lookup(values: np.ndarray, table: np.ndarray, num_classes: int) -> np.ndarray:
    values = values.astype(np.int64)
    return table[np.where((values >= 0) & (values < num_classes), values, num_classes)]
