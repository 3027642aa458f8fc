"""semsyn.evaluation: the Fréchet distance, the confusion matrix, the statistics cache, semsyn-eval end to end,
the torchvision adapter and the FID path (random-weight stand-ins: nothing here downloads weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_support import quiet_cpu

import semsyn
from semsyn.evaluation import ConfusionMatrix, frechet_distance
from semsyn.evaluation.fid import FeatureStats, StatsAccumulator, inception_weights_path, stats_key

# A tiny synthetic SPADE and a segmenter trained for a handful of steps: fast stand-ins, not measurements.
TINY = {"generator.ngf": 4, "generator.cond_norm_params": {"hidden_channels": 8}}
SEG = ["--segmenter-param", "train_steps=2", "--segmenter-param", "train_images=8", "--segmenter-param", "width=4"]


@pytest.fixture(autouse=True)
def _one_thread_no_onednn():
    # tiny convs: a second thread and oneDNN's per-shape kernel compilation only cost time (test_train_support)
    with quiet_cpu():
        yield


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEMSYN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    spec = semsyn.load_spec("spade-synthetic").with_overrides([f"{k}={json.dumps(v)}" for k, v in TINY.items()])
    from semsyn.builder import build_model

    folder = tmp_path / "model"
    build_model(spec).save_pretrained(folder)
    return folder


def _stats(features: np.ndarray) -> FeatureStats:
    acc = StatsAccumulator()
    acc.update(torch.from_numpy(features))
    return acc.stats()


def test_frechet_distance_agrees_with_scipy() -> None:
    from scipy import linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8)) @ rng.normal(size=(8, 8))
    b = rng.normal(0.3, 1.5, size=(150, 8)) @ rng.normal(size=(8, 8))
    sa, sb = _stats(a), _stats(b)
    np.testing.assert_allclose(sa.sigma, np.cov(a, rowvar=False), rtol=1e-9, atol=1e-9)
    covmean = linalg.sqrtm(sa.sigma @ sb.sigma).real
    diff = sa.mu - sb.mu
    expected = diff @ diff + np.trace(sa.sigma) + np.trace(sb.sigma) - 2 * np.trace(covmean)
    assert frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(sa, sa) == pytest.approx(0.0, abs=1e-6)


def test_confusion_matrix_scores_and_ignores() -> None:
    cm = ConfusionMatrix(3)
    label = torch.tensor([[0, 0, 1, 1, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    cm.update(pred, label)
    scores = cm.scores()
    # class 0: tp 1, fn 1, fp 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 0, fn 1 -> 0
    assert scores.class_iou == pytest.approx((1 / 3, 2 / 3, 0.0))
    assert scores.miou == pytest.approx(1 / 3)
    assert scores.pixel_accuracy == pytest.approx(3 / 5)


def test_stats_key_changes_with_the_files(tmp_path: Path) -> None:
    from semsyn.data import SampleFiles

    image, label = tmp_path / "a.png", tmp_path / "a_label.png"
    image.write_bytes(b"1")
    label.write_bytes(b"2")

    class Files:
        files = [SampleFiles(image, label)]

    section = {"name": "folder", "root": str(tmp_path)}
    before = stats_key(section, Files(), "val", 4, "f")
    assert stats_key(section, Files(), "val", 4, "f") == before
    image.write_bytes(b"changed")
    assert stats_key(section, Files(), "val", 4, "f") != before
    assert stats_key(section, Files(), "train", 4, "f") != stats_key(section, Files(), "val", 4, "f")


def test_missing_inception_weights_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEMSYN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(semsyn.EvaluationError, match=r"weights-inception-2015-12-05-6726825d\.pth.*hub"):
        inception_weights_path()


def test_semsyn_eval_end_to_end(tiny_model: Path, cache: Path, tmp_path: Path) -> None:
    from semsyn.cli.eval import main

    out = tmp_path / "report.json"
    args = [f"local-dir:{tiny_model}", "--num", "6", "--batch-size", "3", "--device", "cpu", "--out", str(out)]
    metrics = ["--metrics", "miou,miou-real,miou-flat,segmenter-fd"]
    assert main(args + metrics + SEG) == 0
    report = json.loads(out.read_text())
    assert report["num"] == 6 and report["split"] == "val" and report["segmenter"] == "SyntheticUNet"
    for key in ("miou", "pixel_accuracy", "miou_real", "miou_flat"):
        assert 0.0 <= report["metrics"][key] <= 1.0
    assert report["metrics"]["segmenter_fd"] > 0
    assert len(list((cache / "segmenters").glob("*.safetensors"))) == 1
    stats = list((cache / "fid-stats").glob("segmenter_fd-*.safetensors"))
    assert len(stats) == 1
    # the second run reuses the cached segmenter and statistics and gives the same numbers
    mtime = stats[0].stat().st_mtime_ns
    assert main(args + metrics + SEG) == 0
    assert json.loads(out.read_text())["metrics"] == pytest.approx(report["metrics"])
    assert stats[0].stat().st_mtime_ns == mtime


def test_semsyn_eval_reports_user_errors(tiny_model: Path, cache: Path, capsys: pytest.CaptureFixture) -> None:
    from semsyn.cli.eval import main

    assert main([f"local-dir:{tiny_model}", "--metrics", "mIoU", "--num", "2"] + SEG) == 2
    assert "unknown metric 'mIoU'" in capsys.readouterr().err


def test_torchvision_segmenter_adapter(tiny_model: Path, cache: Path, tmp_path: Path) -> None:
    """A torchvision LR-ASPP with random weights saved to a local file stands in for a real segmenter."""
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    torch.manual_seed(0)
    weights = tmp_path / "seg.pth"
    torch.save(lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=12).state_dict(), weights)
    model = semsyn.create_model(f"local-dir:{tiny_model}", pretrained=True)
    class_map = list(range(10)) + [255, 255]  # two predicted classes the data does not have
    params = {"arch": "lraspp_mobilenet_v3_large", "weights": str(weights), "num_classes": 12, "class_map": class_map}
    report = semsyn.evaluate(
        model,
        None,
        metrics=["miou", "segmenter-fd"],
        segmenter="torchvision-segmentation",
        segmenter_params=params,
        num=4,
        batch_size=4,
    )
    assert 0.0 <= report["miou"] <= 1.0 and report["segmenter_fd"] >= 0
    with pytest.raises(semsyn.EvaluationError, match="class_map has 3 entries"):
        semsyn.evaluate(
            model,
            None,
            metrics=["miou"],
            segmenter="torchvision-segmentation",
            segmenter_params={**params, "class_map": [0, 1, 2]},
            num=2,
        )


def test_fid_through_torch_fidelity_with_stand_in_weights(
    tiny_model: Path, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real FID path (torch-fidelity's Inception), on a random-weight stand-in file made here."""
    tf = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    monkeypatch.setattr(tf, "load_state_dict_from_url", lambda *a, **k: None)
    monkeypatch.setattr(tf.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    torch.manual_seed(0)
    random_net = tf.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    monkeypatch.undo()
    weights = tmp_path / "inception.pth"
    torch.save(random_net.state_dict(), weights)
    model = semsyn.create_model(f"local-dir:{tiny_model}", pretrained=True)
    stats = tmp_path / "val-stats.safetensors"
    report = semsyn.evaluate(
        model, None, metrics=["fid"], num=3, batch_size=3, fid_stats=str(stats), inception_weights=str(weights)
    )
    assert report["fid"] > 0 and stats.is_file()


def test_segmenter_cache_is_keyed_by_its_effective_parameters(cache: Path) -> None:
    from semsyn.evaluation.segmenters import SyntheticUNet

    spec = semsyn.load_spec("spade-synthetic")
    small = SyntheticUNet.for_data(spec, width=4, train_steps=1, train_images=4)
    assert SyntheticUNet.for_data(spec, width=4, train_steps=1, train_images=4).head.weight.equal(small.head.weight)
    wider = SyntheticUNet.for_data(spec, width=6, train_steps=1, train_images=4)
    assert wider.head.weight.shape[1] == 6
    assert len(list((cache / "segmenters").glob("*.safetensors"))) == 2


def test_segmenter_trains_the_same_network_whatever_the_global_rng(cache: Path, monkeypatch) -> None:
    from semsyn.evaluation.segmenters import SyntheticUNet

    spec = semsyn.load_spec("spade-synthetic")
    torch.manual_seed(1)
    first = SyntheticUNet.for_data(spec, width=4, train_steps=2, train_images=4)
    monkeypatch.setenv("SEMSYN_CACHE", str(cache / "elsewhere"))  # no cached copy: trained again
    torch.manual_seed(2)
    second = SyntheticUNet.for_data(spec, width=4, train_steps=2, train_images=4)
    assert len(list((cache / "elsewhere" / "segmenters").glob("*.safetensors"))) == 1
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
