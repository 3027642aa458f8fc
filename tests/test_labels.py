"""Label maps -> semantics, exactly as the official preprocessing; bad labels fail before any model runs."""

from __future__ import annotations

import pytest
import torch

from semsyn.errors import LabelError
from semsyn.labels import LabelSchema, instance_edges, semantics

SCHEMA = LabelSchema(num_classes=3, dontcare=True, instance_edges=True)


def test_one_hot_with_dontcare_maps_255() -> None:
    label = torch.tensor([[[0, 2], [255, 1]]])
    sem = semantics(label, LabelSchema(num_classes=3, dontcare=True))
    assert sem.shape == (1, 4, 2, 2)
    assert sem[0, 3, 1, 0] == 1 and sem[0, :, 1, 0].sum() == 1
    assert sem[0, 2, 0, 1] == 1


def test_instance_edges_mark_both_pixels_of_a_differing_pair() -> None:
    inst = torch.tensor([[[[1, 1, 2], [1, 1, 2], [1, 1, 1]]]])
    edges = instance_edges(inst)[0, 0].int().tolist()
    assert edges == [[0, 1, 1], [0, 1, 1], [0, 0, 1]]


def test_semantics_appends_edge_channel() -> None:
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    inst = torch.zeros(1, 4, 4, dtype=torch.long)
    inst[0, :, 2:] = 5
    sem = semantics(label, SCHEMA, inst)
    assert sem.shape == (1, SCHEMA.label_channels, 4, 4)
    assert sem[0, -1].sum() == 8


def test_value_outside_schema_names_value_position_and_schema() -> None:
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, 2, 3] = 7
    with pytest.raises(LabelError, match=r"value 7 at \(n, 1, y, x\) = \(0, 0, 2, 3\).*classes 0\.\.2"):
        semantics(label, SCHEMA, label)


def test_255_without_dontcare_is_refused_with_fix() -> None:
    with pytest.raises(LabelError, match="dontcare: true"):
        semantics(torch.full((1, 2, 2), 255), LabelSchema(num_classes=3))


def test_float_label_is_refused() -> None:
    with pytest.raises(LabelError, match="integers"):
        semantics(torch.zeros(1, 2, 2), LabelSchema(num_classes=3))


def test_missing_instance_map_is_refused() -> None:
    with pytest.raises(LabelError, match="instance map"):
        semantics(torch.zeros(1, 2, 2, dtype=torch.long), SCHEMA)


def test_class_names_and_colors_come_from_the_spec_the_naming_or_a_default() -> None:
    from semsyn.labels import default_palette, register_naming

    listed = LabelSchema(num_classes=2, names=["road", "sky"], palette=((1, 2, 3), (4, 5, 6)))
    assert listed.class_names == ("road", "sky")
    assert listed.colors == ((1, 2, 3), (4, 5, 6))
    register_naming("test-two", ["a", "b"], [[9, 9, 9], [8, 8, 8]])
    named = LabelSchema(num_classes=2, names="test-two")
    assert named.class_names == ("a", "b") and named.colors == ((9, 9, 9), (8, 8, 8))
    # A naming of another length does not apply: defaults instead of a wrong table.
    unnamed = LabelSchema(num_classes=3, names="test-two")
    assert unnamed.class_names == ("class 0", "class 1", "class 2")
    assert unnamed.colors == tuple(tuple(c) for c in default_palette(3).tolist())
