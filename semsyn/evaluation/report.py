"""The result of an evaluation: numbers, what they were measured on, a table and JSON."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["EvalReport"]


@dataclass
class EvalReport:
    """What `evaluate` measured.

    Args:
        model: the model's spec name.
        data: the dataset's registered name.
        split: the split evaluated.
        num: images evaluated.
        segmenter: the segmenter's class name (None without one).
        metrics: metric name -> value (miou, pixel_accuracy, miou_real, miou_flat, fid, segmenter_fd, ...).
        seconds: wall time of the evaluation.
    """

    model: str
    data: str
    split: str
    num: int
    segmenter: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def __getitem__(self, name: str) -> float:
        return self.metrics[name]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the report as JSON (atomically)."""
        from semsyn.checkpoint import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    def table(self) -> str:
        """A two-column text table of the metrics, with what was evaluated above it."""
        head = f"{self.model} on {self.data}/{self.split}, {self.num} images"
        if self.segmenter:
            head += f", segmenter {self.segmenter}"
        width = max([len(k) for k in self.metrics] + [6])
        rows = [f"  {k:<{width}}  {v:10.4f}" for k, v in self.metrics.items()]
        return "\n".join([head, *rows])
