"""The trainer's data plumbing: worker-safe error carrying, item checks, collation, the train dataset.

A dataset's user errors raised in a loader worker travel to the main process as `_Failure`s and are
raised there as one-line `SemsynError`s; every item is checked against the spec's label schema and
image size before it is stacked.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

import semsyn.errors as errors
from semsyn.data import build_dataset
from semsyn.errors import DatasetError, SemsynError
from semsyn.labels import check_labels
from semsyn.spec import Spec

__all__ = ["Failure", "GuardedDataset", "Collate", "check_item", "build_train_dataset", "preserved_rng"]


class _Failure:
    """A user error raised while loading data in a worker, carried to the main process as one message."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        self.message = message

    def reraise(self) -> None:
        raise getattr(errors, self.kind, DatasetError)(self.message)


class _GuardedDataset(torch.utils.data.Dataset):
    """Loads `(epoch, index)` keys and turns a dataset's user errors into `_Failure`s.

    The epoch reaches datasets with per-epoch augmentation (`set_epoch`) in the process that loads the
    item; a worker's traceback must not become the one-line message of a user error.
    """

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self._set_epoch = getattr(dataset, "set_epoch", None)
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> Any:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        if self._set_epoch is not None and epoch != self._epoch:
            self._set_epoch(epoch)
            self._epoch = epoch
        try:
            item = dict(self.dataset[index])
        except SemsynError as exc:
            return _Failure(type(exc).__name__, str(exc))
        except OSError as exc:
            where = exc.filename or f"item {index} of the dataset"
            return _Failure("DatasetError", f"{where}: cannot be read ({exc.strerror or exc}); fix or remove the file")
        item.setdefault("path", f"item {index} of the dataset")
        return item


def _check_item(item: Mapping[str, Any], schema: Any, size: tuple[int, int]) -> None:
    path = item["path"]
    label, image = item.get("label"), item.get("image")
    if not isinstance(label, torch.Tensor) or not isinstance(image, torch.Tensor):
        raise DatasetError(f"{path}: a dataset item needs 'label' and 'image' tensors, got keys {sorted(item)}")
    if tuple(label.shape[-2:]) != tuple(image.shape[-2:]):
        raise DatasetError(
            f"{path}: the label map is {tuple(label.shape[-2:])} but the image is {tuple(image.shape[-2:])} "
            "(height, width); they must have the same size"
        )
    if tuple(image.shape) != (3, *size):
        raise DatasetError(
            f"{path}: image has shape {tuple(image.shape)}, expected (3, {size[0]}, {size[1]}) "
            "from the spec's image_size; resize the data or change image_size"
        )
    check_labels(label.reshape(1, 1, *label.shape[-2:]), schema, where=f"label map {path}")


class _Collate:
    """Checks every item (shapes, label values) and stacks them; runs in the loader's workers."""

    def __init__(self, schema: Any, size: tuple[int, int]) -> None:
        self.schema = schema
        self.size = size

    def __call__(self, items: list[Any]) -> Any:
        failure = next((it for it in items if isinstance(it, _Failure)), None)
        if failure is not None:
            return failure
        try:
            for item in items:
                _check_item(item, self.schema, self.size)
        except SemsynError as exc:
            return _Failure(type(exc).__name__, str(exc))
        out = {key: torch.stack([it[key].reshape(-1, *self.size) for it in items]) for key in ("label", "image")}
        if all(isinstance(it.get("instance"), torch.Tensor) for it in items):
            out["instance"] = torch.stack([it["instance"].reshape(1, *self.size) for it in items])
        out["path"] = [it["path"] for it in items]
        return out


def build_train_dataset(spec: Spec) -> Any:
    """The spec's `data:` dataset (train split), through `semsyn.data.build_dataset` when available."""
    return build_dataset(spec, "train")


@contextmanager
def _preserved_rng() -> Iterator[None]:
    """Run a block without moving the global torch, numpy and python RNGs (sampling must not change training)."""
    states = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


# Public names (the underscored ones are kept for code that imported them from the trainer).
Failure = _Failure
GuardedDataset = _GuardedDataset
Collate = _Collate
check_item = _check_item
preserved_rng = _preserved_rng
