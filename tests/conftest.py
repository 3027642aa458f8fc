"""Shared test helpers: where the official parity fixtures live, and how to skip when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from semsyn.testing.hub_server import HubServer

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


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A Hub-compatible server on 127.0.0.1 the huggingface_hub client talks to (endpoint, cache, no Xet)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    server = HubServer(tmp_path / "hub-storage").start()
    monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    yield server
    server.stop()
