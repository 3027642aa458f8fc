"""Fréchet distances: the field's FID (Inception features through torch-fidelity) and the same distance in
any other feature space (the synthetic segmenter's, which works offline and does not saturate).

FID features come from torch-fidelity's `FeatureExtractorInceptionV3` ("inception-v3-compat", the 2048-d
pool features of the TensorFlow Inception graph the field's numbers were computed with), never from an
Inception written here. Its weights cannot be downloaded by semsyn: they are read from a local file
(`--inception-weights`, `SEMSYN_INCEPTION_WEIGHTS`) or from torch's hub cache, where torch-fidelity itself
keeps them; without them a single `EvaluationError` says which file to get and where to put it.

The distance is computed here (float64 numpy, through a symmetric eigen-decomposition) so that the
segmenter-feature distance needs no optional package; a test checks it against scipy's `sqrtm`.

Real-image statistics are cached in a safetensors file whose metadata holds the key of what produced
them (dataset section, split, sample count, file list and mtimes, feature extractor): a file whose key
differs is recomputed, so a changed dataset never reuses stale statistics.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semsyn.errors import EvaluationError

__all__ = [
    "FeatureStats",
    "StatsAccumulator",
    "frechet_distance",
    "InceptionFeatures",
    "INCEPTION_WEIGHTS_FILE",
    "inception_weights_path",
    "stats_key",
    "load_stats",
    "save_stats",
    "cache_dir",
]

logger = logging.getLogger(__name__)

# The file torch-fidelity downloads (torch_fidelity.feature_extractor_inceptionv3.URL_INCEPTION_V3).
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
WEIGHTS_ENV = "SEMSYN_INCEPTION_WEIGHTS"
CACHE_ENV = "SEMSYN_CACHE"


def cache_dir(kind: str) -> Path:
    """`$SEMSYN_CACHE/<kind>` (default `~/.cache/semsyn/<kind>`): FID statistics, trained segmenters."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "semsyn")
    return Path(root) / kind


@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,) and covariance (D, D) of a feature set, float64, and how many samples made them."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int


class StatsAccumulator:
    """Running sums of features (float64) so statistics never need every feature in memory at once."""

    def __init__(self) -> None:
        self._sum: np.ndarray | None = None
        self._outer: np.ndarray | None = None
        self.count = 0

    def update(self, features: torch.Tensor) -> None:
        """Add a batch of features (N, D)."""
        f = features.detach().to("cpu", torch.float64).reshape(features.shape[0], -1).numpy()
        if self._sum is None:
            self._sum = np.zeros(f.shape[1])
            self._outer = np.zeros((f.shape[1], f.shape[1]))
        self._sum += f.sum(0)
        self._outer += f.T @ f
        self.count += f.shape[0]

    def stats(self) -> FeatureStats:
        """Mean and unbiased covariance of everything added (at least 2 samples)."""
        if self._sum is None or self.count < 2:
            raise EvaluationError(f"a Fréchet distance needs at least 2 images, got {self.count}; raise --num")
        mu = self._sum / self.count
        sigma = (self._outer - self.count * np.outer(mu, mu)) / (self.count - 1)
        return FeatureStats(mu, (sigma + sigma.T) / 2, self.count)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2), for two Gaussians fitted to features.

    tr((S_a S_b)^1/2) is taken as the trace of the square root of the symmetric PSD matrix
    S_a^1/2 S_b S_a^1/2 (the same eigenvalues), which stays real where `sqrtm` of the product may not.
    """
    if a.mu.shape != b.mu.shape:
        raise EvaluationError(
            f"feature statistics of different sizes ({a.mu.shape[0]} and {b.mu.shape[0]}); they come from "
            "different feature extractors: delete the cached statistics file and rerun"
        )
    root = _sqrt_psd(a.sigma)
    middle = root @ b.sigma @ root
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * trace_sqrt)


# -- Inception features -------------------------------------------------------------------------------
def inception_weights_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The local Inception weights: `explicit`, `$SEMSYN_INCEPTION_WEIGHTS`, or torch's hub cache.

    Raises:
        EvaluationError: none of them holds the file; the message names the file, its URL and where to put it.
    """
    chosen = explicit or os.environ.get(WEIGHTS_ENV)
    if chosen:
        path = Path(chosen)
        if path.is_file():
            return path
        raise EvaluationError(
            f"Inception weights file {path} does not exist; download {INCEPTION_WEIGHTS_URL} "
            f"({INCEPTION_WEIGHTS_FILE}) on a machine with internet and copy it there"
        )
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE
    if cached.is_file():
        return cached
    raise EvaluationError(
        f"FID needs the Inception weights {INCEPTION_WEIGHTS_FILE}, which are not in torch's hub cache "
        f"({cached}) and cannot be downloaded here; fetch {INCEPTION_WEIGHTS_URL} elsewhere and put it at "
        f"{cached}, or pass --inception-weights FILE (or set {WEIGHTS_ENV}); or drop fid from the metrics"
    )


class InceptionFeatures(nn.Module):
    """The field's FID features: torch-fidelity's TF-compatible InceptionV3 pool3 (2048-d).

    Args:
        weights: a local weights file; default: see `inception_weights_path`.

    `forward(image in [-1, 1] (N, 3, H, W)) -> (N, 2048)`; images are quantised to uint8 first, as the
    reference implementation reads PNG files, and resized to 299x299 inside the extractor.
    """

    name = "inception-v3-compat"

    def __init__(self, weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError:
            raise EvaluationError(
                "FID needs the optional package torch-fidelity: pip install 'semsyn[eval]' "
                "(or drop fid from the metrics)"
            ) from None
        path = inception_weights_path(weights)
        from semsyn.checkpoint import torch_load

        # torch-fidelity reads the file with weights_only=False; a weights_only read first refuses pickled code.
        torch_load(path)
        self.extractor = FeatureExtractorInceptionV3(self.name, ["2048"], feature_extractor_weights_path=str(path))
        self.extractor.eval().requires_grad_(False)

    @property
    def key(self) -> str:
        """What identifies these features in a statistics cache key."""
        return f"torch-fidelity:{self.name}:2048"

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        pixels = ((image.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return self.extractor(pixels)[0].reshape(image.shape[0], -1)


# -- the statistics cache -----------------------------------------------------------------------------
def _file_fingerprint(dataset: Any) -> list[Any] | None:
    """(path, size, mtime) of every file of a file dataset, or None for a dataset that has no files."""
    files = getattr(dataset, "files", None)
    if not files:
        return None
    out = []
    for sample in files:
        for path in (getattr(sample, "image", None), getattr(sample, "label", None)):
            if path is None:
                continue
            st = Path(path).stat()
            out.append([str(path), st.st_size, st.st_mtime_ns])
    return out


def stats_key(data_section: Mapping[str, Any] | None, dataset: Any, split: str, num: int, features: str) -> str:
    """A hash of everything that defines a set of real-image statistics.

    Args:
        data_section: the spec's `data:` section (or None for a dataset built by hand; its repr is used).
        dataset: the dataset (its files' paths, sizes and mtimes enter the key when it has `files`).
        split: the split evaluated.
        num: how many images entered the statistics.
        features: the feature extractor's key.
    """
    record = {
        "data": dict(data_section) if data_section is not None else repr(dataset),
        "image_size": list(getattr(dataset, "image_size", ()) or ()),
        "split": split,
        "num": num,
        "features": features,
        "files": _file_fingerprint(dataset),
    }
    text = json.dumps(record, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def load_stats(path: str | os.PathLike[str], key: str) -> FeatureStats | None:
    """The statistics stored at `path` if they were made under `key`; None when absent or stale."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            if meta.get("semsyn_stats_key") != key:
                logger.info(
                    "statistics %s were made from other data (key %s, now %s): recomputing",
                    path,
                    meta.get("semsyn_stats_key"),
                    key,
                )
                return None
            mu, sigma = fh.get_tensor("mu"), fh.get_tensor("sigma")
    except (SafetensorError, OSError) as exc:
        logger.warning("cannot read statistics %s (%s): recomputing", path, exc)
        return None
    return FeatureStats(mu.numpy(), sigma.numpy(), int(meta.get("count", 0)))


def save_stats(path: str | os.PathLike[str], stats: FeatureStats, key: str) -> Path:
    """Write statistics and their key to a safetensors file (atomically)."""
    from semsyn.checkpoint import save_safetensors

    tensors = {
        "mu": torch.from_numpy(np.ascontiguousarray(stats.mu)),
        "sigma": torch.from_numpy(np.ascontiguousarray(stats.sigma)),
    }
    return save_safetensors(tensors, path, metadata={"semsyn_stats_key": key, "count": str(stats.count)})
