"""ADE20K (the MIT Scene Parsing challenge release, ADEChallengeData2016).

Layout (`root` is `ADEChallengeData2016/` or the folder holding it)::

    ADEChallengeData2016/
      images/training/ADE_train_00000001.jpg ...     images/validation/ADE_val_00000001.jpg ...
      annotations/training/ADE_train_00000001.png ...   8-bit ids: 0 = "other", 1..150 = the classes

Labels are NOT shifted: the official SPADE-family code meant to move "other" (0) to the end but its
`postprocess` never wrote the result back, so the released models saw raw ids 0..150 (151 channels,
channel 0 = "other"). Official setup: `labels: {num_classes: 150, dontcare: true, instance_edges: false}`
(151 one-hot channels). ADE20K has no instance maps.
"""

from __future__ import annotations

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
from semsyn.errors import DatasetError
from semsyn.labels import LabelSchema
from semsyn.registry import DATASETS

__all__ = ["ADE20K"]

FOLDER = "ADEChallengeData2016"
SPLIT_FOLDERS = {"train": "training", "val": "validation"}
LAYOUT_FIX = f"root must be {FOLDER}/ (or hold it) with images/ and annotations/ split into training/ and validation/"


@DATASETS.register("ade20k")
class ADE20K(PairedFileDataset):
    """ADE20K scene parsing (150 classes + "other" 0, unshifted as the official models saw them).

    Args:
        root: `ADEChallengeData2016/` or the folder holding it.
        split: "train" (images/training) or "val" (images/validation).
        labels: the spec's label schema (injected); must not use instance edges.
        image_size: (H, W) of the items (injected).
        load_size: short side of the resize before cropping; None = official 286/256 margin in training.
        flip: random horizontal flips in training.
        preprocess: "resize_and_crop" (official), "fixed", "resize" or "none".
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
        preprocess: Preprocess = "resize_and_crop",
        max_samples: int | None = None,
        seed: int = 0,
    ) -> None:
        if labels.instance_edges:
            raise DatasetError(
                "ade20k has no instance maps but the spec's labels use instance edges; set labels.instance_edges: "
                "false (the official ADE20K models use none)"
            )
        base = require_dir(Path(root), "ade20k root", f"give the {FOLDER} folder")
        if (base / FOLDER).is_dir():
            base = base / FOLDER
        sub = SPLIT_FOLDERS.get(split, split)
        image_dir = require_dir(base / "images" / sub, "ade20k image folder", LAYOUT_FIX)
        label_dir = require_dir(base / "annotations" / sub, "ade20k annotation folder", LAYOUT_FIX)
        images = list_by_stem(image_dir, IMAGE_EXTENSIONS, "ade20k image")
        label_files = list_by_stem(label_dir, MAP_EXTENSIONS, "ade20k annotation")
        files = pair_by_stem(images, label_files, label_dir, fix=LAYOUT_FIX)
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
            source=f"ade20k at {base}",
        )
