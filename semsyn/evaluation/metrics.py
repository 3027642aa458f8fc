"""The registered metrics: each sees every evaluated batch and returns named numbers at the end.

A metric class is built as `Metric(context)` (an `EvalContext`: device, segmenter, dataset facts, the
statistics cache), then `update(batch)` per batch and `compute() -> {name: value}` once. Batches carry
the label maps, the real and the generated images, and memoise the segmenter's predictions and features
so that several metrics share one forward pass.

| name            | reports                                   | needs                                   |
|-----------------|-------------------------------------------|-----------------------------------------|
| `miou`          | miou, pixel_accuracy (generated images)   | a segmenter                             |
| `miou-real`     | miou_real, pixel_accuracy_real            | a segmenter (its upper bound)           |
| `miou-flat`     | miou_flat (flat palette-colour blocks)    | a segmenter and a palette               |
| `fid`           | fid (Inception, torch-fidelity)           | `semsyn[eval]` and the Inception weights |
| `segmenter-fd`  | segmenter_fd (the segmenter's features)   | a segmenter with `features()`           |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semsyn.errors import EvaluationError
from semsyn.evaluation.fid import (
    FeatureStats,
    InceptionFeatures,
    StatsAccumulator,
    cache_dir,
    frechet_distance,
    load_stats,
    save_stats,
    stats_key,
)
from semsyn.evaluation.miou import ConfusionMatrix
from semsyn.evaluation.segmenters import flat_images, predict
from semsyn.registry import METRICS

__all__ = ["EvalContext", "EvalBatch", "MiouMetric", "FidMetric", "SegmenterFdMetric"]

logger = logging.getLogger(__name__)


@dataclass
class EvalContext:
    """What metrics share: the device, the segmenter, facts of the data, where statistics are cached.

    Args:
        device: where networks run.
        num_classes: classes of the label schema (the confusion matrix's size).
        palette: class colours for `miou-flat` (None: that metric cannot run).
        segmenter: a ready segmenter, or None.
        segmenter_key: identifies the segmenter's weights in feature-statistics cache keys.
        data_section: the spec's `data:` section (cache keys).
        dataset: the evaluated dataset (cache keys).
        split: the evaluated split.
        num: images evaluated.
        fid_stats: the real-image Inception statistics file; None: the cache folder.
        inception_weights: a local Inception weights file; None: see `fid.inception_weights_path`.
    """

    device: torch.device
    num_classes: int
    palette: Any = None
    segmenter: nn.Module | None = None
    segmenter_key: str = ""
    data_section: Any = None
    dataset: Any = None
    split: str = "val"
    num: int = 0
    fid_stats: str | Path | None = None
    inception_weights: str | Path | None = None

    def need_segmenter(self, metric: str) -> nn.Module:
        if self.segmenter is None:
            raise EvaluationError(f"metric {metric!r} needs a segmenter; pass --segmenter NAME")
        return self.segmenter


@dataclass
class EvalBatch:
    """One evaluated batch: label (N, 1, H, W) int64, real and fake images (N, 3, H, W) in [-1, 1], on device."""

    label: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor
    _memo: dict[str, torch.Tensor] = field(default_factory=dict)

    def memo(self, key: str, compute: Any) -> torch.Tensor:
        """`compute()` once per batch under `key` (segmenter outputs shared by several metrics)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class _Metric:
    def __init__(self, context: EvalContext) -> None:
        self.context = context

    def update(self, batch: EvalBatch) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


@METRICS.register("miou")
class MiouMetric(_Metric):
    """The segmenter's mIoU and pixel accuracy on the generated images, against their label maps."""

    source = "fake"
    suffix = ""

    def __init__(self, context: EvalContext) -> None:
        super().__init__(context)
        self.segmenter = context.need_segmenter(type(self).__name__)
        self.matrix = ConfusionMatrix(context.num_classes)

    def images(self, batch: EvalBatch) -> torch.Tensor:
        return batch.fake

    def update(self, batch: EvalBatch) -> None:
        pred = batch.memo(f"pred/{self.source}", lambda: predict(self.segmenter, self.images(batch)))
        self.matrix.update(pred, batch.label)

    def compute(self) -> dict[str, float]:
        scores = self.matrix.scores()
        return {f"miou{self.suffix}": scores.miou, f"pixel_accuracy{self.suffix}": scores.pixel_accuracy}


@METRICS.register("miou-real")
class MiouRealMetric(MiouMetric):
    """The segmenter's mIoU on the real images: the ceiling generated images are compared with."""

    source = "real"
    suffix = "_real"

    def images(self, batch: EvalBatch) -> torch.Tensor:
        return batch.real


@METRICS.register("miou-flat")
class MiouFlatMetric(MiouMetric):
    """The segmenter's mIoU on flat blocks of each class's palette colour: what no texture at all scores."""

    source = "flat"
    suffix = "_flat"

    def __init__(self, context: EvalContext) -> None:
        super().__init__(context)
        if context.palette is None:
            raise EvaluationError("metric 'miou-flat' needs a palette: set labels.palette in the spec")

    def images(self, batch: EvalBatch) -> torch.Tensor:
        return flat_images(batch.label.cpu(), self.context.palette).to(batch.real)

    def compute(self) -> dict[str, float]:
        return {"miou_flat": self.matrix.scores().miou}


class _FrechetMetric(_Metric):
    """Fréchet distance between generated and real features; the real statistics are cached."""

    output = ""

    def features(self, batch: EvalBatch, which: str) -> torch.Tensor:
        raise NotImplementedError

    def feature_key(self) -> str:
        raise NotImplementedError

    def stats_file(self, key: str) -> Path:
        return cache_dir("fid-stats") / f"{self.output}-{key}.safetensors"

    def __init__(self, context: EvalContext) -> None:
        super().__init__(context)
        self.fake = StatsAccumulator()
        self.real = StatsAccumulator()
        self.key = ""
        self.cached: FeatureStats | None = None

    def _prepare(self) -> None:
        c = self.context
        self.key = stats_key(c.data_section, c.dataset, c.split, c.num, self.feature_key())
        self.cached = load_stats(self.stats_file(self.key), self.key)
        if self.cached is not None:
            logger.info("%s: real statistics from %s", self.output, self.stats_file(self.key))

    def update(self, batch: EvalBatch) -> None:
        self.fake.update(self.features(batch, "fake"))
        if self.cached is None:
            self.real.update(self.features(batch, "real"))

    def compute(self) -> dict[str, float]:
        real = self.cached
        if real is None:
            real = self.real.stats()
            save_stats(self.stats_file(self.key), real, self.key)
        return {self.output: frechet_distance(self.fake.stats(), real)}


@METRICS.register("fid")
class FidMetric(_FrechetMetric):
    """FID: the Fréchet distance of torch-fidelity's TF-compatible Inception pool features."""

    output = "fid"

    def __init__(self, context: EvalContext) -> None:
        super().__init__(context)
        self.net = InceptionFeatures(context.inception_weights).to(context.device)
        self._prepare()

    def feature_key(self) -> str:
        return self.net.key

    def stats_file(self, key: str) -> Path:
        if self.context.fid_stats is not None:
            return Path(self.context.fid_stats)
        return super().stats_file(key)

    def features(self, batch: EvalBatch, which: str) -> torch.Tensor:
        return self.net(batch.fake if which == "fake" else batch.real)


@METRICS.register("segmenter-fd")
class SegmenterFdMetric(_FrechetMetric):
    """The Fréchet distance in the segmenter's features: offline, and it keeps ranking where mIoU saturates."""

    output = "segmenter_fd"

    def __init__(self, context: EvalContext) -> None:
        super().__init__(context)
        self.segmenter = context.need_segmenter("segmenter-fd")
        if not hasattr(self.segmenter, "features"):
            raise EvaluationError(
                f"metric 'segmenter-fd' needs a segmenter with features(); {type(self.segmenter).__name__} has none"
            )
        self._prepare()

    def feature_key(self) -> str:
        return f"segmenter:{self.context.segmenter_key}"

    def features(self, batch: EvalBatch, which: str) -> torch.Tensor:
        images = batch.fake if which == "fake" else batch.real
        return batch.memo(f"feat/{which}", lambda: self.segmenter.features(images))
