"""File datasets: the official layouts, pairing, label checks, paired seeded transforms, batching, colours.

Every test builds a tiny fake tree of the layout in tmp_path with PIL (16x16 and 24x32 files).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import semsyn
from semsyn.data import build_dataset, collate, colorize, default_palette
from semsyn.data.ade20k import ADE20K
from semsyn.data.cityscapes import Cityscapes
from semsyn.data.coco_stuff import CocoStuff
from semsyn.data.folder import ImageLabelFolder
from semsyn.data.transforms import PREPROCESS_MODES, apply_map, plan_transform
from semsyn.errors import DatasetError, SpecError
from semsyn.labels import LabelSchema
from semsyn.registry import GENERATORS

COCO = LabelSchema(num_classes=182, dontcare=True, instance_edges=True)
CITY = LabelSchema(num_classes=35, dontcare=False, instance_edges=True)
ADE = LabelSchema(num_classes=150, dontcare=True, instance_edges=False)
PLAIN = LabelSchema(num_classes=8, dontcare=False, instance_edges=False)


def save(path: Path, array: np.ndarray) -> Path:
    """Write an array as an image file (uint8 -> L or RGB, uint16 -> 16-bit grey), creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def flat_image(value: int, size: tuple[int, int] = (16, 16)) -> np.ndarray:
    """A uniform RGB image whose red channel encodes `value` (so pairing can be checked after loading)."""
    image = np.zeros((*size, 3), np.uint8)
    image[..., 0] = value
    return image


def flat_map(value: int, size: tuple[int, int] = (16, 16), dtype: type = np.uint8) -> np.ndarray:
    return np.full(size, value, dtype)


def make_coco(root: Path, stems: tuple[str, ...] = ("b", "a"), split: str = "train") -> Path:
    """COCO-Stuff tree: item with stem s has red = 40 * (its index + 1), label index + 1, instance 100 + index."""
    for index, stem in enumerate(stems):
        save(root / f"{split}_img" / f"{stem}.jpg", flat_image(40 * (index + 1)))
        label = flat_map(index + 1)
        label[:4, :4] = 255
        save(root / f"{split}_label" / f"{stem}.png", label)
        save(root / f"{split}_inst" / f"{stem}.png", flat_map(100 + index))
    return root


def make_cityscapes(root: Path, split: str = "train") -> Path:
    """Cityscapes tree: two cities, 16-bit instance ids above 255 (thing ids are label * 1000 + k)."""
    for city, frame, label_id in (("aachen", "000000_000019", 26), ("bremen", "000001_000019", 24)):
        name = f"{city}_{frame}"
        save(root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png", flat_image(label_id * 5, (24, 32)))
        save(root / "gtFine" / split / city / f"{name}_gtFine_labelIds.png", flat_map(label_id, (24, 32)))
        instance = flat_map(label_id * 1000 + 1, (24, 32), np.uint16)
        instance[:, 16:] = label_id * 1000 + 2
        save(root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png", instance)
    return root


def make_ade(root: Path) -> Path:
    """ADEChallengeData2016 tree: one training image whose label holds 0 ("other") and 150."""
    base = root / "ADEChallengeData2016"
    label = flat_map(0)
    label[:, 8:] = 150
    save(base / "images" / "training" / "ADE_train_00000001.jpg", flat_image(90))
    save(base / "annotations" / "training" / "ADE_train_00000001.png", label)
    save(base / "images" / "validation" / "ADE_val_00000001.jpg", flat_image(30))
    save(base / "annotations" / "validation" / "ADE_val_00000001.png", flat_map(7))
    return root


def make_folder(root: Path, stems: tuple[str, ...] = ("zeta", "alpha", "mid"), instances: bool = False) -> Path:
    """Generic tree: jpg images, png labels (value = index + 1), optional instances."""
    for index, stem in enumerate(stems):
        save(root / "images" / f"{stem}.jpg", flat_image(40 * (index + 1)))
        save(root / "labels" / f"{stem}.png", flat_map(index + 1))
        if instances:
            save(root / "instances" / f"{stem}.png", flat_map(50 + index))
    return root


def make_halves(root: Path) -> Path:
    """Folder tree with one left/right asymmetric item: left dark + class 1 + id 7, right bright + class 2 + id 9."""
    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 255
    label = flat_map(1)
    label[:, 8:] = 2
    instance = flat_map(7)
    instance[:, 8:] = 9
    save(root / "images" / "x.png", image)
    save(root / "labels" / "x.png", label)
    save(root / "instances" / "x.png", instance)
    return root


def red_index(item: dict) -> int:
    """Which fake item an image is, from its red channel (JPEG keeps a flat colour within a few levels)."""
    red = (float(item["image"][0].mean()) + 1) * 127.5
    return round(red / 40) - 1


# -- registry and layouts ---------------------------------------------------------------------------


def test_every_layout_is_registered() -> None:
    assert {"coco-stuff", "cityscapes", "ade20k", "folder", "synthetic"} <= set(semsyn.DATASETS.names())


def test_coco_item_has_documented_keys_shapes_dtypes_and_ranges(tmp_path: Path) -> None:
    ds = CocoStuff(str(make_coco(tmp_path)), labels=COCO, image_size=(8, 8))
    item = ds[0]
    assert set(item) == {"image", "label", "instance", "path"}
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 8, 8) and item["label"].dtype == torch.int64
    assert item["instance"].shape == (1, 8, 8) and item["instance"].dtype == torch.int64
    assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0


def test_coco_pairs_files_by_stem_in_sorted_order(tmp_path: Path) -> None:
    ds = CocoStuff(str(make_coco(tmp_path, stems=("b", "a"))), labels=COCO, image_size=(16, 16), split="train")
    assert [Path(ds[i]["path"]).stem for i in range(2)] == ["a", "b"]
    for i in range(2):
        item = ds[i]
        index = red_index(item)
        assert int(item["label"].min()) == index + 1 and int(item["instance"].max()) == 100 + index


def test_coco_unknown_255_becomes_the_dontcare_class(tmp_path: Path) -> None:
    ds = CocoStuff(str(make_coco(tmp_path, ("a",), "val")), labels=COCO, image_size=(16, 16), split="val")
    assert set(ds[0]["label"].unique().tolist()) == {1, 182}


def test_coco_without_instance_folder_names_the_folder_and_fix(tmp_path: Path) -> None:
    make_coco(tmp_path)
    for path in (tmp_path / "train_inst").iterdir():
        path.unlink()
    (tmp_path / "train_inst").rmdir()
    with pytest.raises(DatasetError, match=r"train_inst does not exist.*coco_generate_instance_map"):
        CocoStuff(str(tmp_path), labels=COCO, image_size=(16, 16))


def test_coco_skips_instances_when_schema_has_no_edges(tmp_path: Path) -> None:
    schema = LabelSchema(num_classes=182, dontcare=True, instance_edges=False)
    ds = CocoStuff(str(make_coco(tmp_path)), labels=schema, image_size=(16, 16))
    assert "instance" not in ds[0]


def test_cityscapes_reads_16bit_instance_ids_as_stored(tmp_path: Path) -> None:
    ds = Cityscapes(str(make_cityscapes(tmp_path)), labels=CITY, image_size=(12, 16), flip=False)
    item = ds[0]
    assert Path(item["path"]).parent.name == "aachen"
    assert set(item["label"].unique().tolist()) == {26}
    assert set(item["instance"].unique().tolist()) == {26001, 26002}
    assert item["image"].shape == (3, 12, 16)


def test_cityscapes_missing_label_names_the_expected_file(tmp_path: Path) -> None:
    make_cityscapes(tmp_path)
    missing = tmp_path / "gtFine/train/bremen/bremen_000001_000019_gtFine_labelIds.png"
    missing.unlink()
    with pytest.raises(DatasetError, match=r"bremen_000001_000019_leftImg8bit\.png has no label file.*labelIds\.png"):
        Cityscapes(str(tmp_path), labels=CITY, image_size=(12, 16))


def test_ade20k_labels_are_not_shifted(tmp_path: Path) -> None:
    ds = ADE20K(str(make_ade(tmp_path)), labels=ADE, image_size=(16, 16), flip=False, preprocess="fixed")
    label = ds[0]["label"][0]
    assert int(label[0, 0]) == 0 and int(label[0, 15]) == 150


def test_ade20k_accepts_the_challenge_folder_itself_and_maps_val_to_validation(tmp_path: Path) -> None:
    root = make_ade(tmp_path) / "ADEChallengeData2016"
    ds = ADE20K(str(root), split="val", labels=ADE, image_size=(16, 16))
    assert Path(ds[0]["path"]).name == "ADE_val_00000001.jpg"


def test_ade20k_refuses_instance_edges(tmp_path: Path) -> None:
    schema = LabelSchema(num_classes=150, dontcare=True, instance_edges=True)
    with pytest.raises(DatasetError, match="instance_edges: false"):
        ADE20K(str(make_ade(tmp_path)), labels=schema, image_size=(16, 16))


def test_folder_matches_images_and_labels_by_stem(tmp_path: Path) -> None:
    stems = ("zeta", "alpha", "mid")
    ds = ImageLabelFolder(str(make_folder(tmp_path, stems)), labels=PLAIN, image_size=(16, 16))
    for i in range(3):
        item = ds[i]
        assert int(item["label"].max()) == stems.index(Path(item["path"]).stem) + 1 == red_index(item) + 1


def test_folder_reads_optional_instances_when_schema_uses_edges(tmp_path: Path) -> None:
    schema = LabelSchema(num_classes=8, instance_edges=True)
    ds = ImageLabelFolder(str(make_folder(tmp_path, instances=True)), labels=schema, image_size=(16, 16))
    assert int(ds[0]["instance"].max()) == 51  # "alpha" sorts first and was written second


def test_folder_prefers_the_split_subfolder(tmp_path: Path) -> None:
    make_folder(tmp_path / "train", ("a", "b"))
    make_folder(tmp_path / "val", ("c",))
    assert len(ImageLabelFolder(str(tmp_path), split="val", labels=PLAIN, image_size=(16, 16))) == 1


def test_max_samples_keeps_the_first_items(tmp_path: Path) -> None:
    ds = ImageLabelFolder(str(make_folder(tmp_path)), labels=PLAIN, image_size=(16, 16), max_samples=2)
    assert [Path(ds[i]["path"]).stem for i in range(len(ds))] == ["alpha", "mid"]


# -- errors -----------------------------------------------------------------------------------------


def test_missing_root_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"folder dataset root .*nowhere does not exist"):
        ImageLabelFolder(str(tmp_path / "nowhere"), labels=PLAIN, image_size=(16, 16))


def test_empty_image_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    save(tmp_path / "labels" / "a.png", flat_map(1))
    with pytest.raises(DatasetError, match=r"image folder .*images holds no jpg/jpeg/png"):
        ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))


def test_missing_label_names_the_image_and_the_expected_file(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "labels" / "mid.png").unlink()
    with pytest.raises(DatasetError, match=r"image .*mid\.jpg has no label file \(expected .*labels/mid\.png\)"):
        ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))


def test_jpeg_label_is_flagged_as_lossy(tmp_path: Path) -> None:
    make_folder(tmp_path)
    (tmp_path / "labels" / "mid.png").unlink()
    save(tmp_path / "labels" / "mid.jpg", flat_map(3))
    with pytest.raises(DatasetError, match=r"mid\.jpg exists but label maps must be lossless PNG"):
        ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))


def test_size_mismatch_names_both_files(tmp_path: Path) -> None:
    make_folder(tmp_path, ("a",))
    save(tmp_path / "labels" / "a.png", flat_map(1, (24, 32)))
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))
    with pytest.raises(DatasetError, match=r"labels/a\.png is 24x32 \(HxW\) but its image .*a\.jpg is 16x16"):
        ds[0]


def test_label_value_outside_schema_names_file_value_and_schema(tmp_path: Path) -> None:
    make_folder(tmp_path, ("a",))
    label = flat_map(1)
    label[3, 5] = 9
    save(tmp_path / "labels" / "a.png", label)
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))
    with pytest.raises(DatasetError, match=r"labels/a\.png holds value 9 at \(y, x\) = \(3, 5\).*classes 0\.\.7"):
        ds[0]


def test_unknown_255_without_dontcare_suggests_the_fix(tmp_path: Path) -> None:
    make_folder(tmp_path, ("a",))
    save(tmp_path / "labels" / "a.png", flat_map(255))
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))
    with pytest.raises(DatasetError, match=r"value 255 .*set labels\.dontcare: true"):
        ds[0]


def test_colour_label_file_is_rejected(tmp_path: Path) -> None:
    make_folder(tmp_path, ("a",))
    save(tmp_path / "labels" / "a.png", flat_image(1))
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(16, 16))
    with pytest.raises(DatasetError, match=r"labels/a\.png has image mode 'RGB'.*class ids"):
        ds[0]


def test_load_size_below_image_size_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="load_size 8 is smaller than the image size's short side 16"):
        ImageLabelFolder(str(make_folder(tmp_path)), labels=PLAIN, image_size=(16, 16), load_size=8)


def test_preprocess_none_refuses_files_smaller_than_image_size(tmp_path: Path) -> None:
    ds = ImageLabelFolder(str(make_folder(tmp_path)), labels=PLAIN, image_size=(24, 24), preprocess="none")
    with pytest.raises(DatasetError, match=r"alpha\.jpg: size 16x16 .* smaller than image_size 24x24"):
        ds[0]


# -- transforms and seeded augmentation ----------------------------------------------------------------


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_every_preprocess_mode_gives_image_size(tmp_path: Path, mode: str) -> None:
    save(tmp_path / "images" / "a.png", flat_image(10, (24, 32)))
    save(tmp_path / "labels" / "a.png", flat_map(1, (24, 32)))
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(12, 20), preprocess=mode)
    item = ds[0]
    assert item["image"].shape == (3, 12, 20) and item["label"].shape == (1, 12, 20)


def test_flip_is_shared_by_image_label_and_instance(tmp_path: Path) -> None:
    schema = LabelSchema(num_classes=8, instance_edges=True)
    ds = ImageLabelFolder(str(make_halves(tmp_path)), labels=schema, image_size=(16, 16), preprocess="fixed")
    flipped = []
    for epoch in range(12):
        ds.set_epoch(epoch)
        item = ds[0]
        left_bright = bool(item["image"][:, :, 0].mean() > 0)
        flipped.append(left_bright)
        assert int(item["label"][0, 0, 0]) == (2 if left_bright else 1)
        assert int(item["instance"][0, 0, 0]) == (9 if left_bright else 7)
    assert any(flipped) and not all(flipped)


def test_augmentation_is_a_function_of_seed_epoch_and_index(tmp_path: Path) -> None:
    make_halves(tmp_path)
    build = lambda: ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(12, 12), seed=3)  # noqa: E731
    first, second = build(), build()
    first.set_epoch(4)
    second.set_epoch(4)
    assert torch.equal(first[0]["image"], second[0]["image"])
    crops = set()
    for epoch in range(8):
        first.set_epoch(epoch)
        crops.add(first[0]["image"].numpy().tobytes())
    assert len(crops) > 1


def test_val_split_centre_crops_without_flipping(tmp_path: Path) -> None:
    make_folder(tmp_path / "val", ("a",))
    save(tmp_path / "val" / "labels" / "a.png", np.tile(np.arange(16, dtype=np.uint8) % 8, (16, 1)))
    ds = ImageLabelFolder(str(tmp_path), split="val", labels=PLAIN, image_size=(8, 8), preprocess="none")
    outputs = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        outputs.add(tuple(ds[0]["label"][0, 0].tolist()))
    assert outputs == {(4, 5, 6, 7, 0, 1, 2, 3)}


def test_labels_resize_nearest_while_images_resample_smoothly(tmp_path: Path) -> None:
    make_halves(tmp_path)
    ds = ImageLabelFolder(str(tmp_path), labels=PLAIN, image_size=(40, 40), preprocess="fixed", flip=False)
    item = ds[0]
    assert set(item["label"].unique().tolist()) == {1, 2}
    assert len(item["image"][0, 0].unique()) > 2  # bicubic invents in-between shades at the edge


def test_map_resize_matches_pil_nearest_for_8_and_16_bit_maps() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 200, (23, 37)).astype(np.uint8)
    plan = plan_transform((23, 37), (9, 13), preprocess="fixed", load_size=None, flip=False, train=False, rng=None)
    expected = np.asarray(Image.fromarray(values).resize((13, 9), Image.NEAREST))
    assert np.array_equal(apply_map(values, plan), expected)
    assert np.array_equal(apply_map(values.astype(np.uint16) * 300, plan), expected.astype(np.int64) * 300)


# -- building, batching, colours ------------------------------------------------------------------------


class _NoGenerator:
    """A stand-in generator so a spec validates without any model family installed."""

    def __init__(self) -> None:
        pass


@pytest.fixture
def spec_with():
    """`spec_with(data_section)` -> a Spec using a throwaway generator registered for this test only."""
    GENERATORS.register("test-data-no-generator")(_NoGenerator)

    def make(data: dict | None, labels: dict | None = None) -> semsyn.Spec:
        spec = {
            "labels": labels or {"num_classes": 8, "dontcare": False, "instance_edges": False},
            "image_size": [16, 16],
            "generator": {"name": "test-data-no-generator"},
        }
        if data is not None:
            spec["data"] = data
        return semsyn.Spec.from_dict(spec)

    yield make
    GENERATORS.unregister("test-data-no-generator")


def test_build_dataset_injects_schema_size_and_split(tmp_path: Path, spec_with) -> None:
    make_folder(tmp_path / "val", ("only",))
    make_folder(tmp_path / "train", ("a", "b"))
    ds = build_dataset(spec_with({"name": "folder", "root": str(tmp_path)}), split="val")
    assert isinstance(ds, ImageLabelFolder) and ds.split == "val" and len(ds) == 1
    assert ds.labels.num_classes == 8 and ds[0]["image"].shape == (3, 16, 16)


def test_build_dataset_overrides_are_validated(tmp_path: Path, spec_with) -> None:
    spec = spec_with({"name": "folder", "root": str(make_folder(tmp_path))})
    assert len(build_dataset(spec, max_samples=1)) == 1
    with pytest.raises(SpecError, match="has no parameter 'max_sample'.*max_samples"):
        build_dataset(spec, max_sample=1)


def test_build_dataset_without_data_section_says_what_to_add(spec_with) -> None:
    with pytest.raises(SpecError, match=r"no data section; add one, e.g. data: \{name: synthetic\}"):
        build_dataset(spec_with(None))


def test_collate_stacks_tensors_and_lists_paths(tmp_path: Path) -> None:
    ds = ImageLabelFolder(str(make_folder(tmp_path)), labels=PLAIN, image_size=(8, 8))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["image"].shape == (3, 3, 8, 8) and batch["label"].shape == (3, 1, 8, 8)
    assert isinstance(batch["path"], list) and len(batch["path"]) == 3


def test_collate_refuses_items_with_different_keys() -> None:
    a = {"label": torch.zeros(1, 2, 2), "instance": torch.zeros(1, 2, 2), "path": "a.png"}
    b = {"label": torch.zeros(1, 2, 2), "path": "b.png"}
    with pytest.raises(DatasetError, match=r"differ in keys \['instance'\] \(item b\.png"):
        collate([a, b])


def test_default_palette_is_distinct_and_never_black() -> None:
    palette = default_palette(182)
    assert palette.shape == (182, 3) and palette.dtype == np.uint8
    assert len({tuple(c) for c in palette.tolist()}) == 182 and (palette.sum(1) > 0).all()


def test_colorize_numpy_gives_channels_last_with_unknown_black() -> None:
    label = np.array([[0, 1], [2, 255]])
    rgb = colorize(label, 3, palette=[(10, 20, 30), (40, 50, 60), (70, 80, 90)])
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 1].tolist() == [40, 50, 60] and rgb[1, 1].tolist() == [0, 0, 0]


def test_colorize_torch_batch_gives_channels_first() -> None:
    label = torch.randint(0, 5, (2, 1, 4, 6))
    rgb = colorize(label, 5)
    assert rgb.shape == (2, 3, 4, 6) and rgb.dtype == torch.uint8
    assert rgb[1, :, 2, 3].tolist() == default_palette(5)[int(label[1, 0, 2, 3])].tolist()
