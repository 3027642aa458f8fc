"""A generic dataset for custom data: images and label maps in two folders, paired by file stem.

Layout::

    root/                      or, with splits:   root/train/images/ ...  root/val/images/ ...
      images/     a.jpg b.png ...
      labels/     a.png b.png ...      one channel of class ids (8/16-bit grey or palette PNG)
      instances/  a.png b.png ...      optional: instance ids (read when the schema uses instance edges)

When `root/<split>/` exists it is used; otherwise `root` itself serves every split.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from semsyn.data.base import (
    IMAGE_EXTENSIONS,
    MAP_EXTENSIONS,
    PairedFileDataset,
    list_by_stem,
    pair_by_stem,
    require_dir,
)
from semsyn.data.transforms import Preprocess
from semsyn.labels import LabelSchema
from semsyn.registry import DATASETS

__all__ = ["ImageLabelFolder"]

logger = logging.getLogger(__name__)
LAYOUT_FIX = "root must hold images/ and labels/ (optionally instances/), or <split>/images/ and so on"


@DATASETS.register("folder")
class ImageLabelFolder(PairedFileDataset):
    """Custom data: `images/` + `labels/` (+ `instances/`) matched by file stem.

    Args:
        root: folder holding `images/` and `labels/`, or `<split>/images/` and `<split>/labels/`.
        split: "train" or "val"; selects `root/<split>/` when it exists.
        labels: the spec's label schema (injected); label values are checked against it.
        image_size: (H, W) of the items (injected).
        load_size: short side of the resize before cropping; None = official 286/256 margin in training.
        flip: random horizontal flips in training.
        preprocess: "resize_and_crop", "fixed", "resize" (keeps the files' aspect) or "none".
        max_samples: keep only the first items (None: all).
        seed: augmentation seed (with the epoch and item index).
        image_dir: name of the image folder.
        label_dir: name of the label folder.
        instance_dir: name of the instance folder (needed when the schema uses instance edges).
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
        preprocess: Preprocess = "resize_and_crop",
        max_samples: int | None = None,
        seed: int = 0,
        image_dir: str = "images",
        label_dir: str = "labels",
        instance_dir: str = "instances",
    ) -> None:
        base = require_dir(
            Path(root), "folder dataset root", f"give the folder that holds {image_dir}/ and {label_dir}/"
        )
        if (base / split / image_dir).is_dir():
            base = base / split
        else:
            logger.info("%s has no %s/ folder: split %r reads %s", root, split, split, base)
        images_path = require_dir(base / image_dir, "image folder", LAYOUT_FIX)
        labels_path = require_dir(base / label_dir, "label folder", LAYOUT_FIX)
        images = list_by_stem(images_path, IMAGE_EXTENSIONS, "image")
        label_files = list_by_stem(labels_path, MAP_EXTENSIONS, "label")
        instances = instances_path = None
        if labels.instance_edges:
            instances_path = require_dir(
                base / instance_dir,
                "instance folder",
                f"the spec uses instance edges (labels.instance_edges: true): add {instance_dir}/ with one instance "
                "map per image, or set labels.instance_edges: false",
            )
            instances = list_by_stem(instances_path, MAP_EXTENSIONS, "instance")
        files = pair_by_stem(images, label_files, labels_path, instances, instances_path, fix=LAYOUT_FIX)
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
            source=f"folder dataset at {base}",
        )
