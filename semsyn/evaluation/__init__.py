"""Evaluation: how good a model's images are (mIoU through a segmenter, FID, segmenter-feature distance).

`evaluate(model, dataset, ...)` is the one entry point (also `semsyn.evaluate`, CLI `semsyn-eval`, and the
trainer's `EvalHook`). Importing this package registers the metrics and the segmenters.
"""

from semsyn.evaluation import metrics as _metrics  # noqa: F401  (registers METRICS entries)
from semsyn.evaluation import segmenters as _segmenters  # noqa: F401  (registers SEGMENTERS entries)
from semsyn.evaluation.evaluate import evaluate
from semsyn.evaluation.fid import FeatureStats, frechet_distance
from semsyn.evaluation.miou import ConfusionMatrix
from semsyn.evaluation.report import EvalReport

__all__ = ["evaluate", "EvalReport", "ConfusionMatrix", "FeatureStats", "frechet_distance"]
