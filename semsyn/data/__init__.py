"""Datasets: the official layouts (COCO-Stuff, Cityscapes, ADE20K), a generic folder, and procedural scenes.

Importing this package registers every dataset in `semsyn.DATASETS` (the core imports it on the first
registry lookup). Build the dataset of a spec with `build_dataset(spec, split)`, batch items with
`collate`, and colour label maps for viewing with `colorize`. See docs/data.md for the layouts.
"""

from semsyn.data import ade20k, cityscapes, coco_stuff, folder, synthetic  # noqa: F401  (registers datasets)
from semsyn.data.ade20k import ADE20K
from semsyn.data.base import PairedFileDataset, SampleFiles, build_dataset, collate, colorize, default_palette
from semsyn.data.cityscapes import Cityscapes
from semsyn.data.coco_stuff import CocoStuff
from semsyn.data.folder import ImageLabelFolder
from semsyn.data.synthetic import CLASS_NAMES, PALETTE, SyntheticScenes

__all__ = [
    "build_dataset",
    "collate",
    "colorize",
    "default_palette",
    "PairedFileDataset",
    "SampleFiles",
    "CocoStuff",
    "Cityscapes",
    "ADE20K",
    "ImageLabelFolder",
    "SyntheticScenes",
    "CLASS_NAMES",
    "PALETTE",
]
