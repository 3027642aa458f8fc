"""Segmentation scores of generated images: a confusion matrix, mIoU and pixel accuracy.

The field's protocol (SPADE, CC-FPSE): run a segmenter trained on the real images over the generated
ones and score its prediction against the label map the images were generated from. Pixels whose
label is the ignore index (255, "unknown", or the dontcare class) count nowhere. A class that occurs
neither in the labels nor in the predictions of the whole set has no IoU and is left out of the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ConfusionMatrix", "SegmentationScores"]

IGNORE_INDEX = 255


@dataclass(frozen=True)
class SegmentationScores:
    """mIoU, pixel accuracy and the per-class IoUs (None for a class absent from labels and predictions)."""

    miou: float
    pixel_accuracy: float
    class_iou: tuple[float | None, ...]


class ConfusionMatrix:
    """Accumulates a (num_classes, num_classes) confusion matrix: rows are labels, columns predictions.

    Args:
        num_classes: classes scored; label values outside 0..num_classes-1 are ignored.
        ignore_index: a label value that is never scored (besides every value out of range).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        # Labelled pixels predicted as no scored class (a segmenter class mapped to "ignore").
        self.missed = torch.zeros(num_classes, dtype=torch.int64)

    def update(self, prediction: torch.Tensor, label: torch.Tensor) -> None:
        """Add a batch: integer maps of the same number of pixels ((N, H, W) or (N, 1, H, W))."""
        pred = prediction.reshape(-1).to("cpu", torch.int64)
        lab = label.reshape(-1).to("cpu", torch.int64)
        if pred.numel() != lab.numel():
            raise ValueError(f"prediction has {pred.numel()} pixels but the label map {lab.numel()}")
        n = self.num_classes
        keep = (lab >= 0) & (lab < n) & (lab != self.ignore_index)
        # A prediction outside the scored classes (a segmenter class mapped to "ignore") is a miss:
        # it lands in no column, so it lowers recall but counts as no class's false positive.
        valid_pred = (pred >= 0) & (pred < n)
        hits = keep & valid_pred
        self.matrix += torch.bincount(lab[hits] * n + pred[hits], minlength=n * n).reshape(n, n)
        self.missed += torch.bincount(lab[keep & ~valid_pred], minlength=n)

    def merge(self, other: ConfusionMatrix) -> None:
        """Add another matrix of the same classes (e.g. from another process)."""
        self.matrix += other.matrix
        self.missed += other.missed

    def scores(self) -> SegmentationScores:
        """mIoU over the classes present in labels or predictions, and the pixel accuracy."""
        m = self.matrix.double()
        missed = self.missed.double()
        tp = m.diag()
        label_total = m.sum(1) + missed
        union = label_total + m.sum(0) - tp
        present = union > 0
        iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))
        total = label_total.sum()
        return SegmentationScores(
            miou=float(iou[present].mean()) if present.any() else 0.0,
            pixel_accuracy=float(tp.sum() / total) if total > 0 else 0.0,
            class_iou=tuple(float(v) if p else None for v, p in zip(iou.tolist(), present.tolist())),
        )
