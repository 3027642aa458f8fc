"""`evaluate(model, dataset, ...)`: synthesize a split's label maps with fixed seeds and score the images.

The one code path behind `semsyn-eval`, the trainer's `EvalHook` and `semsyn.evaluate`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from semsyn.errors import EvaluationError
from semsyn.evaluation.metrics import EvalBatch, EvalContext
from semsyn.evaluation.report import EvalReport
from semsyn.registry import METRICS

__all__ = ["evaluate", "default_metrics", "resolve_data"]

logger = logging.getLogger(__name__)
SEGMENTER_METRICS = ("miou", "miou-real", "miou-flat", "segmenter-fd")


def default_metrics(has_segmenter: bool) -> list[str]:
    """mIoU and the segmenter-feature distance when there is a segmenter, plus FID when its weights are here."""
    from semsyn.evaluation.fid import inception_weights_path

    names = ["miou", "segmenter-fd"] if has_segmenter else []
    try:
        import torch_fidelity  # noqa: F401

        inception_weights_path()
        names.append("fid")
    except (ImportError, EvaluationError) as exc:
        logger.info("FID skipped: %s", str(exc).split(";")[0])
    return names


def resolve_data(model: Any, data: Any, split: str) -> tuple[Any, Any, Any]:
    """(spec, dataset, data section) from a dataset object, a spec / its name or path, or None.

    None takes the model's own spec `data:` section (a model trained by semsyn records it). A dataset
    object has no data section (None): its repr and files key the statistics cache.
    """
    from semsyn.data import build_dataset
    from semsyn.spec import Spec, load_spec

    if data is None or isinstance(data, (str, Spec)):
        spec = model.spec if data is None else (load_spec(data) if isinstance(data, str) else data)
        if not spec.data.get("data"):
            where = "the model's spec" if data is None else f"{data}"
            raise EvaluationError(f"{where} has no data section; pass --data SPEC_OR_NAME with one")
        # the model's label schema and size win: the data must be rendered as the model was trained
        spec = model.spec.with_overrides({"data": spec.data["data"]}) if data is not None else spec
        return spec, build_dataset(spec, split), spec.data["data"]
    return model.spec, data, None


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode for the block, then each submodule's training flag as it was (the trainer's live networks)."""
    modes = {m: m.training for m in module.modules()}
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode


def _segmenter_key(segmenter: nn.Module) -> str:
    digest = hashlib.sha256(type(segmenter).__qualname__.encode())
    for name, tensor in sorted(segmenter.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def evaluate(
    model: Any,
    dataset: Any = None,
    *,
    metrics: Sequence[str] | None = None,
    segmenter: str | nn.Module | None = None,
    segmenter_params: dict[str, Any] | None = None,
    split: str = "val",
    num: int | None = None,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    seed: int = 0,
    fid_stats: str | None = None,
    inception_weights: str | None = None,
    progress: bool = False,
) -> EvalReport:
    """Synthesize the first `num` label maps of a split (seed `seed + i` for batch i) and score the images.

    Args:
        model: a `SynthesisModel`.
        dataset: a dataset object, a spec (or its name / YAML path) whose `data:` section names one, or None for
            the model's own spec's data.
        metrics: registered metric names; None: mIoU and segmenter-fd when a segmenter exists for the data, plus
            FID when torch-fidelity and the Inception weights are installed.
        segmenter: a registered segmenter name or a ready module; None: the data's default (synthetic-unet for
            the synthetic scenes).
        segmenter_params: keyword arguments of the registered segmenter.
        split: the split of a dataset built from a spec.
        num: images to evaluate; None: the whole split.
        batch_size: images per forward pass.
        device: where to run; None: the model's device.
        seed: the first batch's synthesis seed.
        fid_stats: real-image Inception statistics file (made when missing or stale).
        inception_weights: a local Inception weights file.
        progress: show a progress bar.

    Returns:
        An `EvalReport` (metrics, images, seconds).
    """
    start = time.perf_counter()
    spec, data, data_section = resolve_data(model, dataset, split)
    count = len(data) if num is None else min(int(num), len(data))
    if count < 1:
        raise EvaluationError(f"nothing to evaluate: the {split} split has {len(data)} items and num is {num}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    wanted = list(metrics) if metrics is not None else None
    needs_seg = wanted is None or any(m in SEGMENTER_METRICS for m in wanted)
    seg = None
    if needs_seg:
        from semsyn.evaluation.segmenters import build_segmenter, default_segmenter

        if segmenter is not None or default_segmenter(spec) is not None or wanted is not None:
            seg = build_segmenter(segmenter, spec, device=dev, **(segmenter_params or {}))
    if wanted is None:
        wanted = default_metrics(seg is not None)
    if not wanted:
        raise EvaluationError("no metric can run: name a --segmenter, or install semsyn[eval] and the FID weights")
    context = EvalContext(
        device=dev,
        num_classes=spec.labels.num_classes,
        palette=spec.labels.palette,
        segmenter=seg,
        segmenter_key=_segmenter_key(seg) if seg is not None else "",
        data_section=data_section,
        dataset=data,
        split=split,
        num=count,
        fid_stats=fid_stats,
        inception_weights=inception_weights,
    )
    scorers = [METRICS.get(name)(context) for name in wanted]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=count, unit="img", desc="evaluate", dynamic_ncols=True)
    from semsyn.data import collate

    with _eval_mode(model), torch.no_grad():
        for index, first in enumerate(range(0, count, batch_size)):
            items = collate([data[i] for i in range(first, min(first + batch_size, count))])
            label = items["label"]
            fake = model.synthesize(label, items.get("instance"), seed=seed + index)
            batch = EvalBatch(label.to(dev), items["image"].to(dev), fake.float().to(dev))
            for scorer in scorers:
                scorer.update(batch)
            if bar is not None:
                bar.update(label.shape[0])
    if bar is not None:
        bar.close()
    results: dict[str, float] = {}
    for scorer in scorers:
        results.update(scorer.compute())
    return EvalReport(
        model=spec.name or "model",
        data=str(data_section["name"]) if data_section else type(data).__name__,
        split=split,
        num=count,
        segmenter=type(seg).__name__ if seg is not None else None,
        metrics=results,
        seconds=time.perf_counter() - start,
    )
