"""semsyn-synthesize: label PNGs (files, folders, globs; ids or palette colours) in, image PNGs out.

Models are tiny random-weight SPADE stand-ins (ngf 2, 32-64 px) built from a spec: the tests check files,
names, batching, seeding and errors, not image quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import semsyn
from semsyn.cli.synthesize import main
from semsyn.images import label_colors

SPEC = """\
schema: 1
labels: {num_classes: 3, dontcare: true, instance_edges: false}
image_size: [64, 64]
generator: {name: spade, ngf: 2, norm: instance, cond_norm_params: {hidden_channels: 4}}
"""
# A latent model: each seed gives another image.
VAE_SPEC = """\
schema: 1
labels: {num_classes: 3, dontcare: false, instance_edges: true, names: [road, grass, sky]}
image_size: [64, 64]
generator: {name: spade, ngf: 2, norm: instance, use_vae: true, z_dim: 8, cond_norm_params: {hidden_channels: 4}}
encoder: {name: spade-conv, ndf: 2, z_dim: 8}
"""


def _save_model(tmp_path: Path, spec: str, name: str) -> Path:
    (tmp_path / f"{name}.yaml").write_text(spec)
    return semsyn.create_model(str(tmp_path / f"{name}.yaml")).save_pretrained(tmp_path / name)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread, and far faster when the cores are shared (no spin-waits)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _save_model(tmp_path, SPEC, "model")


@pytest.fixture
def vae(tmp_path: Path) -> Path:
    return _save_model(tmp_path, VAE_SPEC, "vae")


def _label(h: int, w: int, seed: int, classes: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, (h // 8, w // 8)).repeat(8, 0).repeat(8, 1).astype(np.uint8)


def _write_label(path: Path, h: int = 64, w: int = 64, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_label(h, w, seed), mode="L").save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("semsyn-synthesize")]
    assert len(err) == 1
    return err[0]


# -- one file, as before ----------------------------------------------------------------------------


def test_label_png_to_image_png(folder: Path, tmp_path: Path) -> None:
    label = (np.arange(64 * 64).reshape(64, 64) // 300 % 3).astype(np.uint8)
    label[:4] = 255
    Image.fromarray(label, mode="L").save(tmp_path / "label.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "label.png"), "--out", str(tmp_path / "out.png")]) == 0
    out = Image.open(tmp_path / "out.png")
    assert out.size == (64, 64) and out.mode == "RGB"


def test_label_value_outside_schema_exits_2_naming_file_and_position(folder: Path, tmp_path: Path, capsys) -> None:
    values = np.zeros((64, 64), np.uint8)
    values[5, 9] = 7
    Image.fromarray(values, mode="L").save(tmp_path / "bad.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "bad.png"), "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "value 7" in line and "bad.png" in line and "(5, 9)" in line
    assert not (tmp_path / "o").exists()


def test_a_two_channel_image_is_not_a_label_map(folder: Path, tmp_path: Path, capsys) -> None:
    Image.new("LA", (64, 64)).save(tmp_path / "la.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "la.png"), "--out", str(tmp_path / "o.png")]) == 2
    line = _one_error_line(capsys)
    assert "la.png" in line and "LA image" in line


# -- colour maps ------------------------------------------------------------------------------------


def test_colour_map_gives_the_same_image_as_the_id_map(folder: Path, tmp_path: Path) -> None:
    schema = semsyn.create_model(f"local-dir:{folder}").labels
    ids = np.kron(np.random.default_rng(1).integers(0, 3, (8, 8)), np.ones((8, 8), np.int64)).astype(np.uint8)
    ids[:8, :8] = 255
    Image.fromarray(ids, mode="L").save(tmp_path / "ids.png")
    colours = label_colors(torch.from_numpy(ids.astype(np.int64)), schema)[0]
    Image.fromarray(((colours + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()).save(tmp_path / "rgb.png")
    for name in ("ids", "rgb"):
        assert (
            main([f"local-dir:{folder}", str(tmp_path / f"{name}.png"), "--out", str(tmp_path / f"{name}-out.png")])
            == 0
        )
    assert np.array_equal(_pixels(tmp_path / "ids-out.png"), _pixels(tmp_path / "rgb-out.png"))


def test_colour_outside_the_palette_exits_2_naming_file_colour_and_position(
    folder: Path, tmp_path: Path, capsys
) -> None:
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[10, 20] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "rgb.png"), "--out", str(tmp_path / "o.png")]) == 2
    line = _one_error_line(capsys)
    assert "rgb.png" in line and "(1, 2, 3)" in line and "(10, 20)" in line


# -- bulk -------------------------------------------------------------------------------------------


def test_folder_and_glob_inputs_with_odd_sizes_and_several_samples(vae: Path, tmp_path: Path) -> None:
    for i in range(3):
        _write_label(tmp_path / "maps" / f"m{i}.png", seed=i)
    _write_label(tmp_path / "other" / "wide.png", 64, 96, seed=9)  # a size of its own: a batch of its own
    out = tmp_path / "out"
    argv = [f"local-dir:{vae}", str(tmp_path / "maps"), str(tmp_path / "other" / "*.png"), "--out", str(out)]
    assert main([*argv, "--batch-size", "2", "--num", "2"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{stem}_s{k}.png" for stem in ("m0", "m1", "m2", "wide") for k in (0, 1))
    assert Image.open(out / "wide_s1.png").size == (64, 64)  # SPADE renders its built size
    assert not np.array_equal(_pixels(out / "m0_s0.png"), _pixels(out / "m0_s1.png"))


def test_a_maps_images_do_not_depend_on_its_batch(vae: Path, tmp_path: Path) -> None:
    a = _write_label(tmp_path / "maps" / "a.png", seed=1)
    _write_label(tmp_path / "maps" / "b.png", seed=2)
    source = f"local-dir:{vae}"
    assert main([source, str(a), "--out", str(tmp_path / "alone"), "--num", "2", "--seed", "5"]) == 0
    argv = [source, str(tmp_path / "maps"), "--out", str(tmp_path / "batched"), "--num", "2", "--seed", "5"]
    assert main([*argv, "--batch-size", "2"]) == 0
    for k in (0, 1):
        diff = np.abs(_pixels(tmp_path / "alone" / f"a_s{k}.png") - _pixels(tmp_path / "batched" / f"a_s{k}.png"))
        assert diff.max() <= 1  # batched convolutions may round differently
    # ...and sample k is what the Python API gives for seed + k.
    model = semsyn.create_model(source, pretrained=True)
    label = torch.from_numpy(np.asarray(Image.open(a), dtype=np.int64))[None]
    expected = ((model.synthesize(label, seed=6)[0].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
    assert np.abs(_pixels(tmp_path / "batched" / "a_s1.png") - expected).max() <= 1


class _NoisyGenerator(torch.nn.Module):
    """A plugin-style generator whose draws come from `generator=` in a way the CLI cannot split per sample."""

    def __init__(self, label_channels: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(label_channels, 3, 1)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator=None) -> torch.Tensor:
        noise = torch.rand(semantics.shape[0], 3, 1, 1, generator=generator, device=semantics.device)
        return torch.tanh(self.conv(semantics) + 2 * noise)


def test_a_generator_with_unsplittable_draws_is_still_seeded_per_map(monkeypatch, tmp_path: Path) -> None:
    from semsyn.registry import GENERATORS, Entry

    GENERATORS.names()  # load the plugins before patching the registry
    monkeypatch.setitem(GENERATORS._entries, "test-noisy", Entry("test-noisy", _NoisyGenerator, {}))
    noisy = _save_model(tmp_path, SPEC.replace(SPEC.splitlines()[3], "generator: {name: test-noisy}"), "noisy")
    _write_label(tmp_path / "maps" / "a.png", seed=1)
    b = _write_label(tmp_path / "maps" / "b.png", seed=2)  # second in its batch: a shared draw differs
    argv = ["--num", "2", "--batch-size", "2"]
    assert main([f"local-dir:{noisy}", str(b), "--out", str(tmp_path / "alone"), *argv]) == 0
    assert main([f"local-dir:{noisy}", str(tmp_path / "maps"), "--out", str(tmp_path / "batched"), *argv]) == 0
    for k in (0, 1):
        assert np.array_equal(
            _pixels(tmp_path / "alone" / f"b_s{k}.png"), _pixels(tmp_path / "batched" / f"b_s{k}.png")
        )
    assert not np.array_equal(_pixels(tmp_path / "batched" / "b_s0.png"), _pixels(tmp_path / "batched" / "b_s1.png"))


def test_grid_puts_the_label_colours_beside_the_image(folder: Path, tmp_path: Path) -> None:
    ids = np.zeros((64, 64), np.uint8)
    ids[:, 32:] = 2
    Image.fromarray(ids, mode="L").save(tmp_path / "l.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "l.png"), "--out", str(tmp_path / "g"), "--grid"]) == 0
    grid = _pixels(tmp_path / "g" / "l.png")
    assert grid.shape == (64, 128, 3)
    colours = semsyn.create_model(f"local-dir:{folder}").labels.colors
    assert tuple(grid[0, 0]) == colours[0] and tuple(grid[0, 40]) == colours[2]


def test_instance_maps_pair_by_name_and_a_missing_one_names_the_label(vae: Path, tmp_path: Path, capsys) -> None:
    for stem in ("x", "y"):
        _write_label(tmp_path / "labels" / f"{stem}.png")
        (tmp_path / "inst").mkdir(exist_ok=True)
        Image.fromarray((np.arange(64 * 64).reshape(64, 64) // 96).astype(np.uint16)).save(
            tmp_path / "inst" / f"{stem}.png"
        )
    source, labels = f"local-dir:{vae}", str(tmp_path / "labels")
    assert main([source, labels, "--instance", str(tmp_path / "inst"), "--out", str(tmp_path / "o1")]) == 0
    assert main([source, labels, "--out", str(tmp_path / "o2")]) == 0  # no instances: the label map serves
    # The instance map's edges reach the generator: with it the image differs from the one without.
    assert not np.array_equal(_pixels(tmp_path / "o1" / "x.png"), _pixels(tmp_path / "o2" / "x.png"))
    (tmp_path / "inst" / "y.png").unlink()
    assert main([source, labels, "--instance", str(tmp_path / "inst" / "*.png"), "--out", str(tmp_path / "o3")]) == 2
    line = _one_error_line(capsys)
    assert "y.png" in line and "no instance map" in line


def test_bfloat16_on_cpu_writes_images_close_to_float32(folder: Path, tmp_path: Path) -> None:
    label = _write_label(tmp_path / "l.png", 64, 64)
    for dtype in ("float32", "bfloat16"):
        assert main([f"local-dir:{folder}", str(label), "--out", str(tmp_path / f"{dtype}.png"), "--dtype", dtype]) == 0
    diff = np.abs(_pixels(tmp_path / "float32.png") - _pixels(tmp_path / "bfloat16.png"))
    assert diff.mean() < 8


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--size", "64x96"], "renders at its built size"),
        (["--size", "big"], "HEIGHTxWIDTH"),
        (["--num", "0"], "--num"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nonsense"], "--device"),
        (["--style-label", "x.png"], "--style"),
    ],
)
def test_bad_flags_exit_2_with_one_line(folder: Path, tmp_path: Path, capsys, extra, expected) -> None:
    label = _write_label(tmp_path / "l.png", 64, 64)
    assert main([f"local-dir:{folder}", str(label), "--out", str(tmp_path / "o"), *extra]) == 2
    assert expected in _one_error_line(capsys)


def test_inputs_that_match_nothing_or_clash_exit_2_naming_them(folder: Path, tmp_path: Path, capsys) -> None:
    source = f"local-dir:{folder}"
    assert main([source, str(tmp_path / "none" / "*.png"), "--out", str(tmp_path / "o")]) == 2
    assert "none/*.png" in _one_error_line(capsys)
    _write_label(tmp_path / "a" / "same.png")
    _write_label(tmp_path / "b" / "same.png")
    assert main([source, str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert "a/same.png" in line and "b/same.png" in line


def test_out_file_name_with_many_inputs_exits_2(folder: Path, tmp_path: Path, capsys) -> None:
    _write_label(tmp_path / "maps" / "a.png")
    _write_label(tmp_path / "maps" / "b.png")
    assert main([f"local-dir:{folder}", str(tmp_path / "maps"), "--out", str(tmp_path / "x.png")]) == 2
    assert "give a folder" in _one_error_line(capsys)


# -- style (needs SynthesisModel.encode_style from the groupdnet branch) ------------------------------


def test_style_image_is_encoded_and_changes_the_image(vae: Path, tmp_path: Path) -> None:
    label = _write_label(tmp_path / "l.png")
    rng = np.random.default_rng(0)
    for name in ("dark", "bright"):
        pixels = rng.integers(0, 60, (64, 64, 3)) + (0 if name == "dark" else 190)
        Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / f"{name}.jpg")
        argv = [f"local-dir:{vae}", str(label), "--out", str(tmp_path / f"{name}.png"), "--style"]
        assert main([*argv, str(tmp_path / f"{name}.jpg"), "--style-label", str(label)]) == 0
    assert not np.array_equal(_pixels(tmp_path / "dark.png"), _pixels(tmp_path / "bright.png"))
    # Without --style-label the style image is encoded with each input map.
    argv = [f"local-dir:{vae}", str(label), "--out", str(tmp_path / "each.png"), "--style", str(tmp_path / "dark.jpg")]
    assert main(argv) == 0 and (tmp_path / "each.png").is_file()
