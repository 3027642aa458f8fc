"""Cityscapes in its official download layout (leftImg8bit + gtFine).

Layout (`root` is the folder holding both packages)::

    root/
      leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
      gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png      8-bit ids 0..33
      gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png   16/32-bit ids

The official setup: 35 classes (ids 0..34; the files use 0..33), no dontcare, instance edges,
`preprocess: fixed` to 256x512 (`image_size: [256, 512]`). Instance ids are stuff label ids or
label * 1000 + k for things; they are read as stored, without the x255 scaling the 8-bit maps would
get from a float conversion.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from semsyn.data.base import PairedFileDataset, SampleFiles, missing_map_error, require_dir
from semsyn.data.transforms import Preprocess
from semsyn.errors import DatasetError
from semsyn.labels import LabelSchema
from semsyn.registry import DATASETS

__all__ = ["Cityscapes"]

IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
LAYOUT_FIX = "root must hold leftImg8bit/<split>/<city>/ and gtFine/<split>/<city>/ as downloaded; see docs/data.md"


@DATASETS.register("cityscapes")
class Cityscapes(PairedFileDataset):
    """Cityscapes fine annotations (35 label ids, instance ids), official folder layout.

    Args:
        root: folder holding `leftImg8bit/` and `gtFine/`.
        split: "train" or "val".
        labels: the spec's label schema (injected).
        image_size: (H, W) of the items (injected); the official models use (256, 512).
        load_size: short side of the resize before cropping (crop modes only); None = official margin.
        flip: random horizontal flips in training.
        preprocess: "fixed" (official: resize to image_size), "resize_and_crop", "resize" or "none".
        max_samples: keep only the first items (None: all).
        seed: augmentation seed (with the epoch and item index).
    """

    def __init__(
        self,
        root: str,
        split: Literal["train", "val"] = "train",
        *,
        labels: LabelSchema,
        image_size: tuple[int, int],
        load_size: int | None = None,
        flip: bool = True,
        preprocess: Preprocess = "fixed",
        max_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        base = require_dir(Path(root), "cityscapes root", "give the folder that holds leftImg8bit/ and gtFine/")
        files = _find_files(base, split, labels.instance_edges)
        super().__init__(
            files,
            labels=labels,
            image_size=image_size,
            split=split,
            load_size=load_size,
            flip=flip,
            preprocess=preprocess,
            seed=seed,
            max_samples=max_samples,
            source=f"cityscapes at {base}",
        )


def _find_files(base: Path, split: str, with_instances: bool) -> list[SampleFiles]:
    """Every `leftImg8bit` image of the split with its gtFine label (and instance) map."""
    image_dir = require_dir(base / "leftImg8bit" / split, "cityscapes image folder", LAYOUT_FIX)
    label_dir = require_dir(base / "gtFine" / split, "cityscapes label folder", LAYOUT_FIX)
    images = sorted(image_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DatasetError(f"cityscapes image folder {image_dir} holds no <city>/*{IMAGE_SUFFIX}; {LAYOUT_FIX}")
    label_files = {p.relative_to(label_dir) for p in label_dir.glob(f"*/*{LABEL_SUFFIX}")}
    instance_files = set()
    if with_instances:
        instance_files = {p.relative_to(label_dir) for p in label_dir.glob(f"*/*{INSTANCE_SUFFIX}")}
    files = []
    for image in images:
        stem = image.relative_to(image_dir).as_posix()[: -len(IMAGE_SUFFIX)]
        label = Path(stem + LABEL_SUFFIX)
        if label not in label_files:
            raise missing_map_error(image, label_dir / label, "label", f"add it or remove the image; {LAYOUT_FIX}")
        instance = Path(stem + INSTANCE_SUFFIX)
        if with_instances and instance not in instance_files:
            raise missing_map_error(
                image,
                label_dir / instance,
                "instance",
                "the spec uses instance edges: add the gtFine *_instanceIds.png files, "
                "or set labels.instance_edges: false",
            )
        files.append(SampleFiles(image, label_dir / label, label_dir / instance if with_instances else None))
    return files
