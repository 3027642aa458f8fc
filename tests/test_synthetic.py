"""The procedural `synthetic` dataset: pure function of (seed, index), plausible scenes, instance maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import semsyn
from semsyn.builder import build_component
from semsyn.data.synthetic import CLASS_NAMES, PALETTE, SCHEMA, SyntheticScenes
from semsyn.errors import DatasetError
from semsyn.labels import LabelSchema, semantics

SKY, CLOUD, MOUNTAIN, WATER, GRASS, TREE, ROCK, SAND, ROAD, SNOW = range(10)


def test_class_names_are_the_fixed_ten_in_order() -> None:
    assert CLASS_NAMES == ("sky", "cloud", "mountain", "water", "grass", "tree", "rock", "sand", "road", "snow")
    assert len(PALETTE) == 10 and all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in PALETTE)


def test_same_seed_and_index_give_identical_tensors() -> None:
    a = SyntheticScenes(image_size=(32, 32), seed=5)[7]
    b = SyntheticScenes(image_size=(32, 32), seed=5)[7]
    for key in ("image", "label", "instance"):
        assert torch.equal(a[key], b[key])


def test_other_index_seed_or_split_give_other_samples() -> None:
    base = SyntheticScenes(image_size=(32, 32), seed=5)[7]["image"]
    assert not torch.equal(base, SyntheticScenes(image_size=(32, 32), seed=5)[8]["image"])
    assert not torch.equal(base, SyntheticScenes(image_size=(32, 32), seed=6)[7]["image"])
    assert not torch.equal(base, SyntheticScenes(image_size=(32, 32), seed=5, split="val")[7]["image"])


def test_samples_ignore_and_keep_the_global_rngs() -> None:
    ds = SyntheticScenes(image_size=(16, 16))
    np.random.seed(1)
    torch.manual_seed(1)
    first = ds[3]["image"]
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state()
    np.random.seed(2)
    torch.manual_seed(2)
    assert torch.equal(first, ds[3]["image"])
    np.random.seed(1)
    torch.manual_seed(1)
    ds[3]
    assert np.array_equal(np.random.get_state()[1], np_state) and torch.equal(torch.get_rng_state(), torch_state)


def test_items_have_contract_dtypes_shapes_and_ranges() -> None:
    item = SyntheticScenes(image_size=(24, 40))[0]
    assert item["image"].shape == (3, 24, 40) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 24, 40) and item["label"].dtype == torch.int64
    assert item["instance"].shape == (1, 24, 40) and item["instance"].dtype == torch.int64
    assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0
    assert int(item["label"].min()) >= 0 and int(item["label"].max()) <= 9
    assert isinstance(item["path"], str)


def test_every_class_appears_within_a_few_dozen_samples() -> None:
    ds = SyntheticScenes(image_size=(64, 64))
    seen = set()
    for i in range(48):
        seen |= set(ds[i]["label"].unique().tolist())
    assert seen == set(range(10))


def test_any_aspect_ratio_works_and_feeds_semantics() -> None:
    item = SyntheticScenes(image_size=(48, 80))[2]
    assert item["image"].shape == (3, 48, 80)
    sem = semantics(item["label"][None], SCHEMA, item["instance"][None])
    assert sem.shape == (1, SCHEMA.label_channels, 48, 80)


def test_layout_keeps_sky_on_top_and_ground_at_the_bottom() -> None:
    ds = SyntheticScenes(image_size=(64, 64))
    for i in range(24):
        label = ds[i]["label"][0]
        assert not set(label[0].tolist()) & {WATER, GRASS, SAND, ROAD}
        assert not set(label[-1].tolist()) & {SKY, CLOUD, MOUNTAIN}


def test_each_instance_id_covers_one_class_and_stuff_ids_are_per_class() -> None:
    ds = SyntheticScenes(image_size=(64, 64))
    for i in range(16):
        label, instance = ds[i]["label"][0], ds[i]["instance"][0]
        for iid in instance.unique().tolist():
            assert len(label[instance == iid].unique()) == 1
        for cls in (SKY, MOUNTAIN, WATER, GRASS, SAND, ROAD):
            assert set(instance[label == cls].unique().tolist()) <= {cls + 1}


def test_separate_blobs_get_separate_instance_ids() -> None:
    ds = SyntheticScenes(image_size=(64, 64))
    most = max(len(ds[i]["instance"][ds[i]["label"] == TREE].unique()) for i in range(16))
    assert most >= 2


def test_images_differ_in_style_for_the_same_class() -> None:
    ds = SyntheticScenes(image_size=(32, 32))
    sky_means = {
        tuple((ds[i]["image"][:, ds[i]["label"][0] == SKY]).mean(1).round(decimals=2).tolist()) for i in range(6)
    }
    assert len(sky_means) == 6


def test_wrong_class_count_is_a_dataset_error() -> None:
    with pytest.raises(DatasetError, match=r"10 classes .* num_classes 12; use labels: \{num_classes: 10"):
        SyntheticScenes(labels=LabelSchema(num_classes=12), image_size=(16, 16))


def test_index_past_the_end_raises_index_error() -> None:
    ds = SyntheticScenes(image_size=(16, 16), length=3)
    assert len(ds) == 3
    with pytest.raises(IndexError):
        ds[3]


def test_registry_builds_it_with_the_injected_schema_and_size() -> None:
    ds = build_component(semsyn.DATASETS, {"name": "synthetic", "length": 4}, SCHEMA, (20, 36))
    assert isinstance(ds, SyntheticScenes) and len(ds) == 4 and ds[0]["image"].shape == (3, 20, 36)
