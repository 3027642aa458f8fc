"""The shipped class names and palettes: counts, known ids, lazy loading, and how a schema uses them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from semsyn.labels import NAMINGS, LabelSchema, default_palette, get_naming

COCO = LabelSchema(num_classes=182, dontcare=True, instance_edges=True, names="coco-stuff")
CITYSCAPES = LabelSchema(num_classes=35, dontcare=False, instance_edges=True, names="cityscapes")
ADE20K = LabelSchema(num_classes=150, dontcare=True, instance_edges=False, names="ade20k")


def test_coco_stuff_names_follow_the_official_ids_minus_one() -> None:
    names = COCO.class_names
    assert len(names) == 182 and len(set(names)) == 182
    assert names[0] == "person" and names[90] == "hair brush"  # ids 1 and 91: the last thing slot
    assert names[91] == "banner" and names[181] == "wood"  # ids 92 and 182: first and last stuff
    assert names[11] == "street sign" and names[65] == "mirror"  # unannotated slots keep official names
    assert names[156] == "sky-other" and names[168] == "tree"


def test_coco_stuff_colours_are_the_official_visualiser_map_and_unknown_is_black() -> None:
    assert COCO.colors[:3] == ((128, 0, 0), (0, 128, 0), (128, 128, 0))  # ids 1, 2, 3 bit-interleaved
    assert COCO.colors == tuple(map(tuple, default_palette(182).tolist()))
    assert len(set(COCO.colors)) == 182
    assert COCO.channel_names[182] == "unknown" and COCO.channel_colors[182] == (0, 0, 0)


def test_cityscapes_ids_names_and_colours() -> None:
    names, colours = CITYSCAPES.class_names, CITYSCAPES.colors
    assert len(names) == len(colours) == 35
    assert (names[7], colours[7]) == ("road", (128, 64, 128))
    assert (names[26], colours[26]) == ("car", (0, 0, 142))
    assert (names[23], colours[23]) == ("sky", (70, 130, 180))
    assert (names[24], colours[24]) == ("person", (220, 20, 60))
    assert (names[33], colours[33]) == ("bicycle", (119, 11, 32))
    assert names[0] == "unlabeled" and names[34] == "license plate"
    assert CITYSCAPES.channel_colors == colours  # no dontcare channel


def test_ade20k_is_unshifted_with_flag_on_the_dontcare_channel() -> None:
    names, colours = ADE20K.class_names, ADE20K.colors
    assert len(names) == len(colours) == 150
    assert (names[0], colours[0]) == ("other", (0, 0, 0))
    assert (names[1], colours[1]) == ("wall", (120, 120, 120))
    assert (names[3], colours[3]) == ("sky", (6, 230, 230))
    assert (names[13], colours[13]) == ("person", (150, 5, 61))
    assert names[149] == "clock"
    assert ADE20K.channel_names[150] == "flag" and ADE20K.channel_colors[150] == (92, 0, 255)
    assert len(ADE20K.channel_colors) == ADE20K.one_hot_channels == 151


def test_every_hub_config_names_a_shipped_naming_that_fits_its_schema() -> None:
    from semsyn.factory import list_models
    from semsyn.spec import load_spec

    unnamed = set()
    for name in list_models():
        labels = load_spec(name).labels
        if labels.names is None:
            unnamed.add(name)
            continue
        assert isinstance(labels.names, str) and get_naming(labels.names) is not None, name
        assert not labels.class_names[0].startswith("class "), name
        assert len(labels.channel_colors) == labels.one_hot_channels, name
    # SMIS's DeepFashion part labels have no published table of names; every other named model has one.
    assert unnamed == {"groupdnet-deepfashion"}


def test_a_registered_naming_wins_over_the_shipped_one(monkeypatch: pytest.MonkeyPatch) -> None:
    get_naming("cityscapes")  # the shipped tables are in NAMINGS from here on
    monkeypatch.setitem(NAMINGS, "cityscapes", (tuple(f"c{i}" for i in range(35)), None))
    assert CITYSCAPES.class_names[7] == "c7"
    assert CITYSCAPES.colors == tuple(map(tuple, default_palette(35).tolist()))


def test_names_come_without_importing_any_dataset_module() -> None:
    code = (
        "import sys; from semsyn.labels import LabelSchema; "
        "s = LabelSchema(num_classes=35, names='cityscapes'); "
        "assert s.class_names[26] == 'car', s.class_names[26]; "
        "assert not [m for m in sys.modules if m.startswith('semsyn.data')], sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_naming_of_the_wrong_length_is_not_used() -> None:
    odd = LabelSchema(num_classes=20, names="cityscapes")
    assert odd.class_names[0] == "class 0" and odd.colors == tuple(map(tuple, default_palette(20).tolist()))
