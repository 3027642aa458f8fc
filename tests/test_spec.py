"""Specs: loading, validation against constructor signatures, overrides, flat round trip, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import semsyn
from semsyn.errors import SpecError
from semsyn.spec import parse_overrides

GOOD = """\
schema: 1
name: tiny
labels: {num_classes: 4, dontcare: true, instance_edges: true}
image_size: [64, 64]
generator: {name: spade, ngf: 4}
discriminator: {name: patchgan-multiscale, ndf: 4}
losses: {gan: {name: hinge}, feature_matching: {weight: 10.0}}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_fills_defaults_and_label_channels(tmp_path: Path) -> None:
    spec = semsyn.load_spec(write(tmp_path, GOOD))
    assert spec.data["generator"]["num_upsampling_layers"] == "normal"
    assert spec.labels.label_channels == 6
    assert spec.data["losses"]["feature_matching"]["name"] == "feature-matching"


def test_unknown_component_names_file_line_and_close_match(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("name: spade,", "name: spaed,"))
    with pytest.raises(SpecError, match=rf"{path}:5: field 'generator.name'.*unknown generator 'spaed'.*'spade'"):
        semsyn.load_spec(path)


def test_unknown_parameter_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ngf: 4", "ngff: 4"))
    with pytest.raises(SpecError, match=r"spec.yaml:5: field 'generator.ngff'.*no parameter 'ngff'.*'ngf'"):
        semsyn.load_spec(path)


def test_mistyped_parameter_names_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ngf: 4", "ngf: four"))
    with pytest.raises(SpecError, match=r"generator.ngf'.*'four' is not a valid int"):
        semsyn.load_spec(path)


def test_literal_choice_is_checked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ngf: 4", "ngf: 4, num_upsampling_layers: many"))
    with pytest.raises(SpecError, match=r"'many' is not a valid 'normal' \| 'more' \| 'most'"):
        semsyn.load_spec(path)


def test_block_names_are_validated_against_their_registry(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("ngf: 4", "ngf: 4, cond_norm: spaed"))
    with pytest.raises(SpecError, match=r"generator.cond_norm'.*unknown cond-norm 'spaed'.*'spade'"):
        semsyn.load_spec(path)


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "train: {steps: [1, 2\n")
    with pytest.raises(SpecError, match=r"spec.yaml:\d+: malformed YAML"):
        semsyn.load_spec(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        semsyn.load_spec(tmp_path / "nope.yaml")


def test_unknown_section_suggests(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"unknown section 'generater'.*'generator'"):
        semsyn.load_spec(write(tmp_path, GOOD + "generater: {name: spade}\n"))


def test_injected_parameter_cannot_be_set(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="label_channels is set by semsyn"):
        semsyn.load_spec(write(tmp_path, GOOD.replace("ngf: 4", "ngf: 4, label_channels: 3")))


def test_unknown_name_without_file_suggests_models() -> None:
    with pytest.raises(SpecError, match=r"no spec named 'spade-cocoo'.*'spade-coco'"):
        semsyn.load_spec("spade-cocoo")


def test_overrides_parse_yaml_scalars() -> None:
    assert parse_overrides(["train.steps=100", "generator.ngf=8", "name=x"]) == {
        "train": {"steps": 100},
        "generator": {"ngf": 8},
        "name": "x",
    }


def test_exponent_floats_without_a_dot_are_numbers_in_overrides_and_files(tmp_path: Path) -> None:
    # YAML 1.1 (PyYAML's default) reads 4e-4 as the string '4e-4'; semsyn reads YAML 1.2 floats.
    assert parse_overrides(["train.lr_g=4e-4", "train.lr_d=1E+2", "name=1e", "x.y=0x10"]) == {
        "train": {"lr_g": 4e-4, "lr_d": 100.0},
        "name": "1e",
        "x": {"y": 16},
    }
    spec = semsyn.load_spec(write(tmp_path, GOOD + "train: {lr_g: 2e-4, steps: 10}\n"))
    assert spec.data["train"]["lr_g"] == 2e-4
    assert spec.with_overrides(["train.lr_d=5e-4"]).data["train"]["lr_d"] == 5e-4


def test_bad_override_form() -> None:
    with pytest.raises(SpecError, match="section.field=value"):
        parse_overrides(["train.steps"])


def test_overrides_are_validated(tmp_path: Path) -> None:
    spec = semsyn.load_spec(write(tmp_path, GOOD))
    assert spec.with_overrides(["generator.ngf=8"]).data["generator"]["ngf"] == 8
    with pytest.raises(SpecError, match="no parameter 'ngg'"):
        spec.with_overrides(["generator.ngg=8"])


def test_resolved_spec_dumps_flat_and_loads_back_identical(tmp_path: Path) -> None:
    base = write(tmp_path, GOOD, "base.yaml")
    child = write(tmp_path, "base: base.yaml\nname: child\ngenerator: {ngf: 8}\ntrain: {steps: 3}\n", "child.yaml")
    resolved = semsyn.load_spec(child).resolved()
    assert "base" not in resolved.data and resolved.data["generator"]["ngf"] == 8
    assert resolved.data["train"]["lr_g"] == 1e-4
    dumped = resolved.dump(tmp_path / "resolved.yaml")
    assert "base:" not in dumped
    assert semsyn.load_spec(tmp_path / "resolved.yaml") == resolved
    assert base.exists()


def test_every_hub_config_loads_and_is_listed() -> None:
    names = semsyn.list_models()
    assert {"spade-coco", "spade-synthetic"} <= set(names)
    for name in names:
        assert semsyn.load_spec(name).name == name
