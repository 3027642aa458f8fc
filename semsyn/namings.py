"""The class names and palettes semsyn ships: what `labels.names: coco-stuff | cityscapes | ade20k | synthetic` means.

These are public standard tables, indexed by the value a label map holds as the official SPADE-family
code reads it (see `semsyn/data/*.py` for each dataset's numbering):

* ``coco-stuff``: 182 ids 0..181 = COCO-Stuff's 1-based ids 1..182 minus one (cocostuff `labels.txt`),
  unknown = 255. The 11 thing ids COCO never annotated (street sign, hat, shoe, eye glasses, plate, mirror,
  window, desk, door, blender, hair brush) keep their slots and official names. Colours: the colour map the
  official SPADE visualiser paints COCO-Stuff with (`default_palette` below, bit-interleaved ids),
  since COCO-Stuff itself publishes no fixed palette.
* ``cityscapes``: the 34 label ids 0..33 of cityscapesScripts `labels.py` with their names and colours, and
  slot 34 for "license plate" (id -1 there), whose colour SPADE's 35-entry Cityscapes map also puts at 34.
* ``ade20k``: ADEChallengeData2016 values unshifted, as the official models see them: 0 = "other"
  (unlabelled, black) and 1..150 = the 150 classes of `objectInfo150` (first name of each) with the
  scene-parsing benchmark's `color150` palette. The official schema has `num_classes: 150` plus dontcare, so
  "flag" (150) sits on the dontcare channel: the table holds 151 entries and `LabelSchema` gives the first
  150 as `class_names` and the last as the dontcare channel's name.
* ``synthetic``: the built-in procedural scenes (`semsyn.data.synthetic` takes its names and mean colours from here).

Colours are not always unique in the official tables (Cityscapes ids 0-4 are all black, pole and polegroup
share a grey, car and license plate a blue; ADE20K's road and skyscraper share (140, 140, 140)); decoding a
colour map gives such a colour the lowest id that has it.

Nothing here is imported eagerly: `semsyn.labels` loads this module the first time a schema asks for a
naming it does not know yet, so no dataset module is needed to name classes.
"""

from __future__ import annotations

import numpy as np

__all__ = ["default_palette", "BUILTIN_NAMINGS", "COCO_STUFF_NAMES", "CITYSCAPES", "ADE20K", "SYNTHETIC"]


def default_palette(num_classes: int) -> np.ndarray:
    """Distinct colours for any number of classes: uint8 (num_classes, 3), never black.

    Bit-interleaved (the PASCAL VOC scheme) over ids 1..num_classes, so black stays free for unknown.
    """
    ids = np.arange(1, num_classes + 1, dtype=np.int64)
    palette = np.zeros((num_classes, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= ((ids >> (3 * bit + channel)) & 1) << (7 - bit)
    return palette.astype(np.uint8)


Naming = tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]

# cocostuff labels.txt ids 1..182, in order; index = label value.
COCO_STUFF_NAMES: tuple[str, ...] = (
    # things 1..91
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep",
    "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack", "umbrella", "shoe", "eye glasses",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite", "baseball bat",
    "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle", "plate", "wine glass", "cup", "fork",
    "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza",
    "donut", "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven",
    "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush", "hair brush",
    # stuff 92..182
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage", "cardboard", "carpet",
    "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter", "cupboard", "curtain", "desk-stuff",
    "dirt", "door-stuff", "fence", "floor-marble", "floor-other", "floor-stone", "floor-tile", "floor-wood",
    "flower", "fog", "food-other", "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house",
    "leaves", "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other", "towel",
    "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)  # fmt: skip

# cityscapesScripts labels.py: (name, colour) at index = label id; slot 34 = license plate (id -1 there).
CITYSCAPES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("unlabeled", (0, 0, 0)),
    ("ego vehicle", (0, 0, 0)),
    ("rectification border", (0, 0, 0)),
    ("out of roi", (0, 0, 0)),
    ("static", (0, 0, 0)),
    ("dynamic", (111, 74, 0)),
    ("ground", (81, 0, 81)),
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("parking", (250, 170, 160)),
    ("rail track", (230, 150, 140)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("guard rail", (180, 165, 180)),
    ("bridge", (150, 100, 100)),
    ("tunnel", (150, 120, 90)),
    ("pole", (153, 153, 153)),
    ("polegroup", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("caravan", (0, 0, 90)),
    ("trailer", (0, 0, 110)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
    ("license plate", (0, 0, 142)),
)

# ADEChallengeData2016 values 0..150: "other" then objectInfo150 in order, with the color150 palette.
ADE20K: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("other", (0, 0, 0)),
    ("wall", (120, 120, 120)), ("building", (180, 120, 120)), ("sky", (6, 230, 230)), ("floor", (80, 50, 50)),
    ("tree", (4, 200, 3)), ("ceiling", (120, 120, 80)), ("road", (140, 140, 140)), ("bed", (204, 5, 255)),
    ("windowpane", (230, 230, 230)), ("grass", (4, 250, 7)), ("cabinet", (224, 5, 255)),
    ("sidewalk", (235, 255, 7)), ("person", (150, 5, 61)), ("earth", (120, 120, 70)), ("door", (8, 255, 51)),
    ("table", (255, 6, 82)), ("mountain", (143, 255, 140)), ("plant", (204, 255, 4)), ("curtain", (255, 51, 7)),
    ("chair", (204, 70, 3)), ("car", (0, 102, 200)), ("water", (61, 230, 250)), ("painting", (255, 6, 51)),
    ("sofa", (11, 102, 255)), ("shelf", (255, 7, 71)), ("house", (255, 9, 224)), ("sea", (9, 7, 230)),
    ("mirror", (220, 220, 220)), ("rug", (255, 9, 92)), ("field", (112, 9, 255)), ("armchair", (8, 255, 214)),
    ("seat", (7, 255, 224)), ("fence", (255, 184, 6)), ("desk", (10, 255, 71)), ("rock", (255, 41, 10)),
    ("wardrobe", (7, 255, 255)), ("lamp", (224, 255, 8)), ("bathtub", (102, 8, 255)), ("railing", (255, 61, 6)),
    ("cushion", (255, 194, 7)), ("base", (255, 122, 8)), ("box", (0, 255, 20)), ("column", (255, 8, 41)),
    ("signboard", (255, 5, 153)), ("chest of drawers", (6, 51, 255)), ("counter", (235, 12, 255)),
    ("sand", (160, 150, 20)), ("sink", (0, 163, 255)), ("skyscraper", (140, 140, 140)),
    ("fireplace", (250, 10, 15)), ("refrigerator", (20, 255, 0)), ("grandstand", (31, 255, 0)),
    ("path", (255, 31, 0)), ("stairs", (255, 224, 0)), ("runway", (153, 255, 0)), ("case", (0, 0, 255)),
    ("pool table", (255, 71, 0)), ("pillow", (0, 235, 255)), ("screen door", (0, 173, 255)),
    ("stairway", (31, 0, 255)), ("river", (11, 200, 200)), ("bridge", (255, 82, 0)), ("bookcase", (0, 255, 245)),
    ("blind", (0, 61, 255)), ("coffee table", (0, 255, 112)), ("toilet", (0, 255, 133)), ("flower", (255, 0, 0)),
    ("book", (255, 163, 0)), ("hill", (255, 102, 0)), ("bench", (194, 255, 0)), ("countertop", (0, 143, 255)),
    ("stove", (51, 255, 0)), ("palm", (0, 82, 255)), ("kitchen island", (0, 255, 41)), ("computer", (0, 255, 173)),
    ("swivel chair", (10, 0, 255)), ("boat", (173, 255, 0)), ("bar", (0, 255, 153)),
    ("arcade machine", (255, 92, 0)), ("hovel", (255, 0, 255)), ("bus", (255, 0, 245)), ("towel", (255, 0, 102)),
    ("light", (255, 173, 0)), ("truck", (255, 0, 20)), ("tower", (255, 184, 184)), ("chandelier", (0, 31, 255)),
    ("awning", (0, 255, 61)), ("streetlight", (0, 71, 255)), ("booth", (255, 0, 204)),
    ("television receiver", (0, 255, 194)), ("airplane", (0, 255, 82)), ("dirt track", (0, 10, 255)),
    ("apparel", (0, 112, 255)), ("pole", (51, 0, 255)), ("land", (0, 194, 255)), ("bannister", (0, 122, 255)),
    ("escalator", (0, 255, 163)), ("ottoman", (255, 153, 0)), ("bottle", (0, 255, 10)), ("buffet", (255, 112, 0)),
    ("poster", (143, 255, 0)), ("stage", (82, 0, 255)), ("van", (163, 255, 0)), ("ship", (255, 235, 0)),
    ("fountain", (8, 184, 170)), ("conveyer belt", (133, 0, 255)), ("canopy", (0, 255, 92)),
    ("washer", (184, 0, 255)), ("plaything", (255, 0, 31)), ("swimming pool", (0, 184, 255)),
    ("stool", (0, 214, 255)), ("barrel", (255, 0, 112)), ("basket", (92, 255, 0)), ("waterfall", (0, 224, 255)),
    ("tent", (112, 224, 255)), ("bag", (70, 184, 160)), ("minibike", (163, 0, 255)), ("cradle", (153, 0, 255)),
    ("oven", (71, 255, 0)), ("ball", (255, 0, 163)), ("food", (255, 204, 0)), ("step", (255, 0, 143)),
    ("tank", (0, 255, 235)), ("trade name", (133, 255, 0)), ("microwave", (255, 0, 235)), ("pot", (245, 0, 255)),
    ("animal", (255, 0, 122)), ("bicycle", (255, 245, 0)), ("lake", (10, 190, 212)), ("dishwasher", (214, 255, 0)),
    ("screen", (0, 204, 255)), ("blanket", (20, 0, 255)), ("sculpture", (255, 255, 0)), ("hood", (0, 153, 255)),
    ("sconce", (0, 41, 255)), ("vase", (0, 255, 204)), ("traffic light", (41, 0, 255)), ("tray", (41, 255, 0)),
    ("ashcan", (173, 0, 255)), ("fan", (0, 245, 255)), ("pier", (71, 0, 255)), ("crt screen", (122, 0, 255)),
    ("plate", (0, 255, 184)), ("monitor", (0, 92, 255)), ("bulletin board", (184, 255, 0)),
    ("shower", (0, 133, 255)), ("radiator", (255, 214, 0)), ("glass", (25, 194, 194)), ("clock", (102, 255, 0)),
    ("flag", (92, 0, 255)),
)  # fmt: skip

# semsyn.data.synthetic's classes and mean colours (that module renders its scenes from this table).
SYNTHETIC: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("sky", (110, 170, 230)),
    ("cloud", (215, 220, 232)),
    ("mountain", (112, 100, 122)),
    ("water", (35, 85, 150)),
    ("grass", (95, 160, 55)),
    ("tree", (30, 85, 35)),
    ("rock", (128, 122, 110)),
    ("sand", (215, 195, 140)),
    ("road", (66, 66, 72)),
    ("snow", (246, 248, 255)),
)


def _split(table: tuple[tuple[str, tuple[int, int, int]], ...]) -> Naming:
    return tuple(name for name, _ in table), tuple(colour for _, colour in table)


BUILTIN_NAMINGS: dict[str, Naming] = {
    "coco-stuff": (
        COCO_STUFF_NAMES,
        tuple((int(r), int(g), int(b)) for r, g, b in default_palette(len(COCO_STUFF_NAMES)).tolist()),
    ),
    "cityscapes": _split(CITYSCAPES),
    "ade20k": _split(ADE20K),
    "synthetic": _split(SYNTHETIC),
}
