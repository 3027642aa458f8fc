"""create_model, list_models, model folders and the SynthesisModel API."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import semsyn
from semsyn.errors import CheckpointError, HubError, LabelError, SemsynError

ROOT = Path(__file__).resolve().parents[1]
TINY = """\
schema: 1
name: tiny
labels: {num_classes: 3, dontcare: true, instance_edges: true}
image_size: [64, 64]
generator: {name: spade, ngf: 2, norm: instance}
discriminator: {name: patchgan-multiscale, ndf: 4, num_d: 1}
"""
LABEL = (torch.arange(64 * 64).reshape(1, 64, 64) // 7) % 4


@pytest.fixture
def spec_path(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_create_model_from_spec_is_in_eval_mode_and_synthesizes(spec_path: Path) -> None:
    model = semsyn.create_model(str(spec_path))
    assert not model.training and model.discriminator is None and model.encoder is None
    image = model.synthesize(LABEL, seed=0)
    assert image.shape == (1, 3, 64, 64) and image.abs().max() <= 1


def test_list_models_lists_every_hub_config() -> None:
    yamls = sorted(p.stem for p in (ROOT / "hub_configs").glob("*.yaml"))
    assert semsyn.list_models() == yamls
    assert semsyn.list_models("spade-*") == [n for n in yamls if n.startswith("spade-")]


def test_list_models_from_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import semsyn; print(semsyn.list_models())"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0 and "spade-coco" in out.stdout


def test_overrides_patch_spec_fields(spec_path: Path) -> None:
    model = semsyn.create_model(str(spec_path), generator={"ngf": 4})
    assert model.spec.data["generator"]["ngf"] == 4


def test_save_pretrained_and_local_dir_round_trip(spec_path: Path, tmp_path: Path) -> None:
    model = semsyn.create_model(str(spec_path), with_discriminator=True)
    folder = model.save_pretrained(tmp_path / "folder")
    assert {p.name for p in folder.iterdir()} >= {"spec.yaml", "model.safetensors", "README.md"}
    loaded = semsyn.create_model(f"local-dir:{folder}", pretrained=True, with_discriminator=True)
    assert sorted(loaded.trained_parts) == ["discriminator", "generator"]
    assert torch.equal(loaded.synthesize(LABEL, seed=1), model.synthesize(LABEL, seed=1))


def test_folder_with_a_subset_reports_untrained_parts(spec_path: Path, tmp_path: Path) -> None:
    model = semsyn.create_model(str(spec_path), with_discriminator=True)
    folder = model.save_pretrained(tmp_path / "donly", parts=["discriminator"])
    loaded = semsyn.create_model(f"local-dir:{folder}", pretrained=True, with_discriminator=True)
    assert loaded.untrained_parts == ["generator"] and loaded.trained_parts == {"discriminator"}


def test_mismatched_weights_list_keys(spec_path: Path, tmp_path: Path) -> None:
    folder = semsyn.create_model(str(spec_path)).save_pretrained(tmp_path / "f")
    text = (folder / "spec.yaml").read_text().replace("ngf: 2", "ngf: 4")
    (folder / "spec.yaml").write_text(text)
    with pytest.raises(
        CheckpointError,
        match=r"\(generator\).*shape mismatches: fc\.weight \(32, 5, 3, 3\) vs model \(64, 5, 3, 3\).*in all\)",
    ):
        semsyn.create_model(f"local-dir:{folder}", pretrained=True)


def test_pretrained_from_a_bare_spec_file_is_refused(spec_path: Path) -> None:
    with pytest.raises(HubError, match="holds no weights.*local-dir"):
        semsyn.create_model(str(spec_path), pretrained=True)


def test_bad_label_is_refused_before_the_model_runs(spec_path: Path) -> None:
    model = semsyn.create_model(str(spec_path))
    bad = LABEL.clone()
    bad[0, 5, 6] = 9
    with pytest.raises(LabelError, match=r"value 9 at \(n, 1, y, x\) = \(0, 0, 5, 6\)"):
        model.synthesize(bad)


def test_size_needs_a_resolution_free_generator(spec_path: Path) -> None:
    with pytest.raises(SemsynError, match="renders at its built size"):
        semsyn.create_model(str(spec_path)).synthesize(LABEL, size=(128, 128))


def test_seed_makes_z_draws_reproducible(tmp_path: Path) -> None:
    path = tmp_path / "vae.yaml"
    path.write_text(TINY.replace("norm: instance}", "norm: instance, use_vae: true}"))
    model = semsyn.create_model(str(path))
    a, b, c = (model.synthesize(LABEL, seed=s) for s in (3, 3, 4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.slow
def test_wheel_ships_hub_configs(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("semsyn-*.whl"))).namelist()
    for yaml in (ROOT / "hub_configs").glob("*.yaml"):
        assert f"semsyn/hub_configs/{yaml.name}" in names
    assert "semsyn/py.typed" in names and "semsyn_models/spade.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
