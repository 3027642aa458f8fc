"""Registry behaviour: registration, clashes, lookups with close matches, listing."""

from __future__ import annotations

import pytest

import semsyn
from semsyn.errors import RegistryError
from semsyn.registry import Registry


def test_register_and_get_returns_the_object() -> None:
    reg = Registry("widget", "test contract")

    @reg.register("my-widget")
    class Widget:
        pass

    assert reg.get("my-widget") is Widget
    assert "my-widget" in reg.names()


def test_duplicate_name_names_both_definitions() -> None:
    reg = Registry("widget", "test contract")

    @reg.register("dup")
    class First:
        pass

    with pytest.raises(RegistryError, match=r"registered twice.*First.*Second"):

        @reg.register("dup")
        class Second:
            pass


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(RegistryError, match=r"unknown norm 'instanse'.*did you mean 'instance'"):
        semsyn.NORMS.get("instanse")


def test_names_must_be_kebab_case() -> None:
    reg = Registry("widget", "test contract")
    with pytest.raises(RegistryError, match="kebab-case"):
        reg.register("My_Widget")


def test_list_components_by_kind_and_pattern() -> None:
    assert "spade" in semsyn.list_components("cond-norm")
    assert semsyn.list_components("norm", "sync*") == ["syncbatch"]
    assert "norm/instance" in semsyn.list_components()


def test_list_components_unknown_kind() -> None:
    with pytest.raises(semsyn.SemsynError, match=r"unknown component kind 'generators'.*'generator'"):
        semsyn.list_components("generators")


def test_registry_docstring_states_contract() -> None:
    assert "forward(x, semantics)" in semsyn.COND_NORMS.__doc__
