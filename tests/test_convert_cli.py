"""semsyn-convert official: folders and named files, opt.txt parsing, one-line errors, --push-to-hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import load_io

import semsyn
from semsyn.cli.convert import main
from semsyn.convert import read_options


def write_opt_txt(opt: dict, path: Path) -> None:
    """The official `opt.txt` layout: right-aligned names, values, `[default: x]` for changed options."""
    lines = ["----------------- Options ---------------"]
    for key, value in sorted(opt.items()):
        comment = "\t[default: 0]" if key == "label_nc" else ""
        lines.append(f"{key:>25}: {str(value):<30}{comment}")
    lines.append("----------------- End -------------------")
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture
def run_dir(official, tmp_path: Path) -> Path:
    src = official("spade_generator")
    folder = tmp_path / "official_run"
    folder.mkdir()
    shutil.copy(src / "checkpoint.pth", folder / "latest_net_G.pth")
    write_opt_txt(json.loads((src / "opt.json").read_text()), folder / "opt.txt")
    return folder


def test_opt_txt_parses_like_the_json(official, run_dir: Path) -> None:
    from_json = read_options(official("spade_generator") / "opt.json")
    from_txt = read_options(run_dir / "opt.txt")
    for key in ("label_nc", "crop_size", "norm_G", "contain_dontcare_label", "no_instance", "aspect_ratio", "netG"):
        assert from_txt[key] == from_json[key], key


def test_convert_an_official_run_folder(official, run_dir: Path, tmp_path: Path) -> None:
    assert main(["official", str(run_dir), "--out", str(tmp_path / "out"), "--name", "spade-fixture"]) == 0
    model = semsyn.create_model(f"local-dir:{tmp_path / 'out'}", pretrained=True)
    io = load_io(official("spade_generator"))
    got = model.synthesize(io["label"].long(), io["instance"].long())
    assert (got - io["fake_image"]).abs().max() <= 2e-5
    assert model.spec.name == "spade-fixture"


def test_missing_files_exit_2_with_one_line(tmp_path: Path, capsys) -> None:
    assert main(["official", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint found" in err[0] and "latest_net_G.pth" in err[0]


def test_opt_pkl_is_never_read(run_dir: Path, tmp_path: Path, capsys) -> None:
    (run_dir / "opt.pkl").write_bytes(b"not read")
    code = main(
        [
            "official",
            "--opt",
            str(run_dir / "opt.pkl"),
            "--generator",
            str(run_dir / "latest_net_G.pth"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "never unpickles" in capsys.readouterr().err


def test_pickled_code_is_refused(run_dir: Path, tmp_path: Path, capsys) -> None:
    torch.save({"net": _Evil()}, run_dir / "latest_net_G.pth")
    assert main(["official", str(run_dir), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "never unpickles code" in err and "latest_net_G.pth" in err


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_convert_and_push_in_one_step(official, run_dir: Path, tmp_path: Path, monkeypatch) -> None:
    import huggingface_hub.constants

    from semsyn.testing.hub_server import HubServer

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    with HubServer(tmp_path / "hub") as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
        args = [
            "official",
            str(run_dir),
            "--out",
            str(tmp_path / "out"),
            "--push-to-hub",
            "org/spade-fixture",
            "--license",
            "CC-BY-NC-SA-4.0",
            "--origin",
            "NVlabs/SPADE test fixture",
        ]
        assert main(args) == 0
        model = semsyn.create_model("hf-hub:org/spade-fixture", pretrained=True)
        io = load_io(official("spade_generator"))
        got = model.synthesize(io["label"].long(), io["instance"].long())
        assert (got - io["fake_image"]).abs().max() <= 2e-5
        card = (tmp_path / "out" / "README.md").read_text()
        assert "license: cc-by-nc-sa-4.0" in card and "NVlabs/SPADE test fixture" in card
