"""COCO-Stuff in the layout of the official SPADE / CC-FPSE code.

Layout (`root` is the folder holding the six sub-folders)::

    root/
      train_img/    000000000009.jpg ...
      train_label/  000000000009.png ...   8-bit ids: 0..181 = 182 classes, 255 = unknown
      train_inst/   000000000009.png ...   instance maps (stuff labels with thing instances painted over)
      val_img/  val_label/  val_inst/

Files pair up by stem. The official setup uses 182 classes with a dontcare channel (255 -> 182) and
instance edges: `labels: {num_classes: 182, dontcare: true, instance_edges: true}`. Instance maps are
only read when the schema uses instance edges; they come from the official
`datasets/coco_generate_instance_map.py` run over the COCO annotations.
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
from semsyn.labels import LabelSchema
from semsyn.registry import DATASETS

__all__ = ["CocoStuff"]

LAYOUT_FIX = "root must hold train_img/, train_label/ (and train_inst/) and the val_* folders; see docs/data.md"


@DATASETS.register("coco-stuff")
class CocoStuff(PairedFileDataset):
    """COCO-Stuff (182 classes + unknown 255, instance maps), official folder layout.

    Args:
        root: folder holding `{split}_img`, `{split}_label` and `{split}_inst`.
        split: "train" or "val".
        labels: the spec's label schema (injected).
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
        base = require_dir(Path(root), "coco-stuff root", "give the folder that holds train_img/ and train_label/")
        image_dir = require_dir(base / f"{split}_img", "coco-stuff image folder", LAYOUT_FIX)
        label_dir = require_dir(base / f"{split}_label", "coco-stuff label folder", LAYOUT_FIX)
        images = list_by_stem(image_dir, IMAGE_EXTENSIONS, "coco-stuff image")
        label_files = list_by_stem(label_dir, MAP_EXTENSIONS, "coco-stuff label")
        instances = instance_dir = None
        if labels.instance_edges:
            instance_dir = require_dir(
                base / f"{split}_inst",
                "coco-stuff instance folder",
                "the spec uses instance edges (labels.instance_edges: true): make the instance maps with the "
                "official datasets/coco_generate_instance_map.py, or set labels.instance_edges: false",
            )
            instances = list_by_stem(instance_dir, MAP_EXTENSIONS, "coco-stuff instance")
        files = pair_by_stem(images, label_files, label_dir, instances, instance_dir, fix=LAYOUT_FIX)
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
            source=f"coco-stuff at {base}",
        )
