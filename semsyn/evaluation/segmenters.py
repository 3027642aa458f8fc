"""Segmenters that score generated images: the registry entries and how an evaluation gets a ready one.

A segmenter is an `nn.Module` with `forward(image in [-1, 1] (N, 3, H, W)) -> logits (N, K, H, W)` that
does its own input normalisation, a `class_map` (None, or a (K,) int64 tensor mapping its K classes to the
dataset's class ids, 255 for "no dataset class") and optionally `features(image) -> (N, D)` for the
segmenter-feature Fréchet distance. A registered class may define a classmethod
`for_data(spec, *, device, **params)` that returns a ready instance for a spec's data (trained or loaded
from a cache); otherwise the evaluation calls the class with the user's parameters.

Shipped:
- `synthetic-unet`: a small U-Net for the built-in synthetic scenes, trained in a few minutes on CPU the
  first time and cached (keyed by the data section and the recipe). Trained with colour augmentation
  (per-channel gains, brightness, greyscale), so it must use texture, not only mean colour.
- `torchvision-segmentation`: any `torchvision.models.segmentation` architecture with weights from a
  local file (no download), ImageNet normalisation, and a class map to the dataset's ids.
The published numbers used DRN-D-105 (Cityscapes), DeepLab-v2 (COCO-Stuff) and UperNet-101 (ADE20K);
docs/evaluation.md says how to plug them in as plugins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from semsyn.errors import EvaluationError
from semsyn.registry import SEGMENTERS

__all__ = ["SyntheticUNet", "TorchvisionSegmenter", "build_segmenter", "color_augment"]

logger = logging.getLogger(__name__)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def color_augment(image: torch.Tensor, generator: torch.Generator, greyscale_p: float = 0.25) -> torch.Tensor:
    """Per-image colour jitter of images in [-1, 1]: per-channel gains, brightness, and sometimes greyscale.

    So a segmenter cannot tell classes apart by their mean colour alone and has to look at texture
    (a generator that paints flat palette colours must not score as well as one that paints the scene).
    """
    n = image.shape[0]
    x = (image + 1) / 2
    gains = torch.empty(n, 3, 1, 1).uniform_(0.75, 1.25, generator=generator)
    bright = torch.empty(n, 1, 1, 1).uniform_(0.7, 1.3, generator=generator)
    x = x * gains.to(x) * bright.to(x)
    grey = (torch.rand(n, 1, 1, 1, generator=generator) < greyscale_p).to(x)
    luma = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = grey * luma.expand_as(x) + (1 - grey) * x
    return x.clamp(0, 1) * 2 - 1


# -- synthetic-unet -----------------------------------------------------------------------------------
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


@SEGMENTERS.register("synthetic-unet", test_params={"num_classes": 3, "width": 4})
class SyntheticUNet(nn.Module):
    """A four-level U-Net (width w, 2w, 4w, 4w) for the synthetic scenes; images in [-1, 1] are its input.

    Args:
        num_classes: classes of the data (10 for `synthetic`, 20 for `synthetic-hard`).
        width: channels of the first level.
        train_steps: optimisation steps when `for_data` trains it (batch 16).
        train_images: rendered training scenes it cycles through (with fresh augmentation each time).
    """

    class_map: torch.Tensor | None = None

    def __init__(self, *, num_classes: int = 10, width: int = 16, train_steps: int = 1000, train_images: int = 2048):
        super().__init__()
        self.num_classes = num_classes
        self.train_steps = train_steps
        self.train_images = train_images
        self.width = w = width
        self.enc = nn.ModuleList([_block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)])
        self.dec = nn.ModuleList([_block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)])
        self.head = nn.Conv2d(w, num_classes, 1)

    def _encode(self, image: torch.Tensor) -> list[torch.Tensor]:
        skips, x = [], image
        for i, block in enumerate(self.enc):
            x = block(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        return skips

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = self._encode(image)
        x = skips[-1]
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        return self.head(x)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 8w): mean and standard deviation over space of the deepest level: what and how textured."""
        deep = self._encode(image)[-1]
        return torch.cat([deep.mean((2, 3)), deep.std((2, 3))], 1)

    @classmethod
    def for_data(cls, spec: Any, *, device: str | torch.device = "cpu", **params: Any) -> SyntheticUNet:
        """A trained instance for a spec's data: loaded from the cache, or trained (train split) and cached."""
        from semsyn.checkpoint import load_safetensors, save_safetensors
        from semsyn.evaluation.fid import cache_dir

        params.setdefault("num_classes", spec.labels.num_classes)
        with torch.random.fork_rng(devices=[]):  # the same initial weights in every process, whatever ran before
            torch.manual_seed(0)
            model = cls(**params)
        data = dict(spec.data.get("data") or {})
        data.pop("length", None)  # the training scenes are drawn here, whatever the run's dataset length
        # the effective parameters (defaults included), so a changed default never loads stale weights
        effective = {
            "num_classes": model.num_classes,
            "width": model.width,
            "train_steps": model.train_steps,
            "train_images": model.train_images,
        }
        record = {"recipe": 3, "data": data, "image_size": list(spec.image_size), "params": effective}
        key = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:20]
        path = cache_dir("segmenters") / f"synthetic-unet-{key}.safetensors"
        if path.is_file():
            model.load_state_dict(load_safetensors(path))
            logger.info("synthetic-unet: loaded %s", path)
        else:
            model.fit(spec, device=device)
            save_safetensors(model.state_dict(), path, metadata={"semsyn_segmenter": json.dumps(record, default=str)})
            logger.info("synthetic-unet: cached at %s", path)
        return model.to(device).eval()

    def fit(self, spec: Any, *, device: str | torch.device = "cpu", seed: int = 0) -> None:
        """Train on scenes of the spec's data (train split) with colour augmentation and flips."""
        from semsyn.data import build_dataset

        # a dataset with a length parameter is drawn to the size wanted; a file dataset is used as it is
        takes_length = "length" in _params_of(spec)
        dataset = (
            build_dataset(spec, "train", length=self.train_images) if takes_length else build_dataset(spec, "train")
        )
        count = min(len(dataset), self.train_images)
        start = time.perf_counter()
        items = [dataset[i] for i in range(count)]
        images = torch.stack([it["image"] for it in items])
        labels = torch.stack([it["label"][0] for it in items])
        logger.info(
            "synthetic-unet: %d training scenes rendered in %.0f s; training %d steps",
            count,
            time.perf_counter() - start,
            self.train_steps,
        )
        self.to(device).train()
        opt = torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=max(1, self.train_steps))
        g = torch.Generator().manual_seed(seed)
        for _ in range(self.train_steps):
            idx = torch.randint(0, count, (16,), generator=g)
            x, y = color_augment(images[idx], g), labels[idx]
            flip = torch.rand(16, generator=g) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            y = torch.where(flip.view(-1, 1, 1), y.flip(-1), y)
            loss = F.cross_entropy(self(x.to(device)), y.to(device), ignore_index=255)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        logger.info(
            "synthetic-unet: trained in %.0f s (last loss %.3f)", time.perf_counter() - start, float(loss.detach())
        )
        self.eval()


def _params_of(spec: Any) -> set[str]:
    import inspect

    from semsyn.registry import DATASETS

    obj = DATASETS.get(spec.data["data"]["name"])
    return set(inspect.signature(obj.__init__ if inspect.isclass(obj) else obj).parameters)


# -- torchvision adapter ------------------------------------------------------------------------------
@SEGMENTERS.register("torchvision-segmentation")
class TorchvisionSegmenter(nn.Module):
    """A `torchvision.models.segmentation` model with weights from a local file, as a semsyn segmenter.

    Args:
        arch: the torchvision builder, e.g. "deeplabv3_resnet50", "fcn_resnet50", "lraspp_mobilenet_v3_large".
        weights: a local state-dict file (.pth read with weights_only, or .safetensors) for that architecture.
        num_classes: the classes the weights predict.
        class_map: for each predicted class, the dataset's class id (255: no dataset class); None = identity.
        mean: input normalisation mean (RGB, images in [0, 1]); default ImageNet's.
        std: input normalisation standard deviation; default ImageNet's.
    """

    def __init__(
        self,
        *,
        arch: str = "deeplabv3_resnet50",
        weights: str,
        num_classes: int = 21,
        class_map: Sequence[int] | None = None,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        try:
            from torchvision.models import segmentation
        except ImportError:
            raise EvaluationError("torchvision-segmentation needs torchvision: pip install torchvision") from None
        builder = getattr(segmentation, arch, None)
        if builder is None or not callable(builder) or arch.startswith("_"):
            known = sorted(n for n in dir(segmentation) if "_" in n and n.islower() and not n.startswith("_"))
            raise EvaluationError(f"torchvision has no segmentation model {arch!r}; known: {', '.join(known)}")
        self.model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
        self._load(weights)
        self.model.eval()
        if class_map is not None and len(class_map) != num_classes:
            raise EvaluationError(
                f"class_map has {len(class_map)} entries but the segmenter predicts {num_classes} classes; give "
                "one dataset class id (or 255) per predicted class"
            )
        self.class_map = torch.as_tensor(class_map, dtype=torch.int64) if class_map is not None else None
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def _load(self, weights: str) -> None:
        from semsyn.checkpoint import load_strict

        state = _read_weights(weights)
        if getattr(self.model, "aux_classifier", None) is None:  # training-only head: scoring never uses it
            state = {k: v for k, v in state.items() if not k.startswith("aux_classifier.")}
        load_strict(self.model, state, f"segmenter weights {weights}")

    def _normalise(self, image: torch.Tensor) -> torch.Tensor:
        return ((image + 1) / 2 - self.mean.to(image)) / self.std.to(image)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        out = self.model(self._normalise(image))["out"]
        return F.interpolate(out, size=image.shape[-2:], mode="bilinear", align_corners=False)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, C): the backbone's deepest feature map ("out", or LR-ASPP's "high") averaged over space."""
        maps = self.model.backbone(self._normalise(image))
        return (maps["out"] if "out" in maps else maps["high"]).mean((2, 3))


def _read_weights(path: str) -> dict[str, torch.Tensor]:
    from semsyn.checkpoint import load_safetensors, torch_load

    if not os.path.isfile(path):
        raise EvaluationError(
            f"segmenter weights {path} do not exist; semsyn never downloads segmenter weights: save the "
            "model's state_dict to a local file and pass its path (weights=...)"
        )
    state = load_safetensors(path, verify=False) if path.endswith(".safetensors") else torch_load(path)
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    if not isinstance(state, dict):
        raise EvaluationError(f"segmenter weights {path} hold a {type(state).__name__}, not a state dict")
    return state


# -- getting a ready segmenter ------------------------------------------------------------------------
def default_segmenter(spec: Any) -> str | None:
    """The segmenter evaluations of a spec's data use when none is named (None: there is none to default to)."""
    data = (spec.data.get("data") or {}).get("name", "")
    return "synthetic-unet" if str(data).startswith("synthetic") else None


def build_segmenter(
    segmenter: str | nn.Module | None, spec: Any, *, device: str | torch.device = "cpu", **params: Any
) -> nn.Module:
    """A ready segmenter in eval mode on `device`: an instance as given, or a registered name built for `spec`.

    Raises:
        EvaluationError: no segmenter is named and the data has no default one, or it predicts other classes.
    """
    if segmenter is None:
        segmenter = default_segmenter(spec)
        if segmenter is None:
            data = (spec.data.get("data") or {}).get("name")
            raise EvaluationError(
                f"mIoU on {data!r} data needs a segmenter trained on it: pass --segmenter NAME "
                f"(registered: {', '.join(SEGMENTERS.names())}); see docs/evaluation.md"
            )
    if isinstance(segmenter, str):
        obj = SEGMENTERS.get(segmenter)
        module = obj.for_data(spec, device=device, **params) if hasattr(obj, "for_data") else obj(**params)
    else:
        module = segmenter
    module = module.to(device).eval()
    class_map = getattr(module, "class_map", None)
    classes = int(class_map.max()) + 1 if class_map is not None else getattr(module, "num_classes", None)
    if class_map is None and classes is not None and classes != spec.labels.num_classes:
        raise EvaluationError(
            f"segmenter {module.__class__.__name__} predicts {classes} classes but the data has "
            f"{spec.labels.num_classes}; give it a class_map or use one trained on this data"
        )
    return module


def predict(segmenter: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """Dataset class ids (N, H, W) predicted for images in [-1, 1] (255 where the class map says none)."""
    pred = segmenter(image).argmax(1)
    class_map = getattr(segmenter, "class_map", None)
    if class_map is not None:
        pred = class_map.to(pred.device)[pred]
    return pred


def flat_images(label: torch.Tensor, palette: Sequence[Sequence[int]]) -> torch.Tensor:
    """Label maps (N, 1, H, W) painted in flat palette colours: images (N, 3, H, W) in [-1, 1]."""
    table = torch.as_tensor(np.asarray(palette, dtype=np.float32) / 127.5 - 1)
    table = torch.cat([table, torch.zeros(1, 3)])
    ids = label[:, 0].clamp(0, len(palette)).long()
    ids = torch.where(label[:, 0] < len(palette), ids, torch.full_like(ids, len(palette)))
    return table[ids.cpu()].permute(0, 3, 1, 2)
