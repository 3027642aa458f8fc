"""Shared test helpers: where the official parity fixtures live, and how to skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "official"


def official_fixture(name: str) -> Path:
    """The folder of one official fixture; skips outside the team, fails under CI when it is missing."""
    path = OFFICIAL / name
    if not path.is_dir():
        message = f"official parity fixtures not found at {path} (../shared/reference/official beside the checkout)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must have them")
        pytest.skip(message)
    return path


@pytest.fixture
def official():
    """`official("spade_generator")` -> the fixture folder (skip or fail as above)."""
    return official_fixture


def load_io(folder: Path) -> dict:
    """The tensors of a fixture's io.safetensors."""
    from safetensors.torch import load_file

    return load_file(str(folder / "io.safetensors"))
