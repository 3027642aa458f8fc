"""Trainer hooks: progress bar, metrics log, TensorBoard, sample grids, evaluation, checkpoints, Hub push.

A hook observes the run (`before_train`, `after_step`, `after_train`, `close`) and keeps whatever state a
resumed run must restore in `state_dict` / `load_state_dict`. Hooks write files; they never change what
is trained (the EMA and the LR schedule are part of the training step, see `semsyn.training.trainer`).
Hooks with `main_only = True` run on rank 0 only.

Checkpoint folders live here too: `RUN_DIR/checkpoints/step_000123/` holding `model.safetensors`,
`state.pt` and, written last, the marker `complete.json`. A folder is built under a temporary name and
renamed into place, so a killed run leaves either a complete checkpoint or none.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from semsyn.checkpoint import atomic_write, atomic_write_text
from semsyn.data import colorize
from semsyn.training.checkpoints import (
    CHECKPOINTS_DIR,
    DELAY_ENV,
    MARKER,
    STATE_FILE,
    WEIGHTS_FILE,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
    remove_incomplete,
    write_checkpoint,
)
from semsyn.training.checkpoints import remove_tree as _remove_tree
from semsyn.training.checkpoints import step_name as _step_name

if TYPE_CHECKING:
    from semsyn.training.trainer import Trainer

__all__ = [
    "Hook",
    "ProgressHook",
    "MetricsHook",
    "TensorBoardHook",
    "SampleHook",
    "EvalHook",
    "CheckpointHook",
    "PushToHubHook",
    "CHECKPOINTS_DIR",
    "MARKER",
    "WEIGHTS_FILE",
    "STATE_FILE",
    "DELAY_ENV",
    "remove_incomplete",
    "write_checkpoint",
    "read_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
]

logger = logging.getLogger(__name__)


class Hook:
    """Base hook: every method is a no-op."""

    name = "hook"
    main_only = True

    def before_train(self, trainer: Trainer) -> None:
        """Called once before the first step (after a resume has restored the state)."""

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        """Called after every step; `trainer.step` counts the steps done, `logs` holds the step's loss terms."""

    def after_train(self, trainer: Trainer) -> None:
        """Called once when the run (or the requested part of it) has finished without error."""

    def close(self) -> None:
        """Release files and bars; called after `after_train` and when training fails."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to continue this hook exactly."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`."""


# -- hooks --------------------------------------------------------------------------------------------
def _format_logs(logs: Mapping[str, float]) -> str:
    return " ".join(f"{k} {v:.4g}" for k, v in logs.items())


class ProgressHook(Hook):
    """A tqdm bar with step, images/s, the loss terms and the ETA; shown only on a terminal."""

    name = "progress"

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None

    def before_train(self, trainer: Trainer) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=trainer.config.steps,
            initial=trainer.step,
            unit="step",
            dynamic_ncols=True,
            desc=trainer.spec.name or "train",
        )

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        if self._bar is None:
            return
        self._bar.update(1)
        rate = self._bar.format_dict.get("rate") or 0.0
        self._bar.set_postfix_str(f"{rate * trainer.config.batch_size:.1f} img/s {_format_logs(logs)}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class MetricsHook(Hook):
    """`metrics.jsonl`: every `every` steps one JSON line of the terms averaged since the last line.

    Each line has "step", "images_per_s", "lr_generator", "lr_discriminator" and every loss term. The
    same line is logged at info level. A resumed run first drops the lines past its checkpoint.
    """

    name = "metrics"

    def __init__(self, path: str | os.PathLike[str], every: int) -> None:
        self.path = Path(path)
        self.every = max(1, every)
        self._sums: dict[str, float] = {}
        self._count = 0
        self._step = 0
        self._clock: tuple[float, int] | None = None

    def before_train(self, trainer: Trainer) -> None:
        self._clock = (time.perf_counter(), trainer.step)

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        self._step = trainer.step
        for key, value in logs.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        if trainer.step % self.every and trainer.step != trainer.config.steps:
            return
        now = time.perf_counter()
        start, start_step = self._clock or (now, trainer.step)
        rate = (trainer.step - start_step) * trainer.config.batch_size / max(now - start, 1e-9)
        self._clock = (now, trainer.step)
        line: dict[str, Any] = {"step": trainer.step, "images_per_s": round(rate, 3)}
        line.update({f"lr_{k}": g.param_groups[0]["lr"] for k, g in trainer.optimizers.items()})
        line.update({k: v / self._count for k, v in self._sums.items()})
        self._sums, self._count = {}, 0
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")
        logger.info(
            "step %d/%d | %s | %.1f img/s",
            trainer.step,
            trainer.config.steps,
            _format_logs({k: v for k, v in line.items() if "/" in k}),
            rate,
        )

    def state_dict(self) -> dict[str, Any]:
        return {"step": self._step, "sums": dict(self._sums), "count": self._count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._step = int(state.get("step", 0))
        self._sums = dict(state.get("sums", {}))
        self._count = int(state.get("count", 0))
        if not self.path.is_file():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= self._step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a kill
        atomic_write_text(self.path, "".join(f"{k}\n" for k in kept))


class TensorBoardHook(Hook):
    """Scalars to TensorBoard every `every` steps, when the `tensorboard` package is installed (else nothing)."""

    name = "tensorboard"

    def __init__(self, log_dir: str | os.PathLike[str], every: int) -> None:
        self.log_dir = Path(log_dir)
        self.every = max(1, every)
        self._writer: Any = None

    def before_train(self, trainer: Trainer) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional dependency: `pip install semsyn[tensorboard]`
            logger.debug("tensorboard is not installed; no TensorBoard logs")
            return
        self._writer = SummaryWriter(str(self.log_dir), purge_step=trainer.step + 1 if trainer.step else None)

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        if self._writer is None or (trainer.step % self.every and trainer.step != trainer.config.steps):
            return
        for key, value in logs.items():
            self._writer.add_scalar(key, value, trainer.step)
        for key, opt in trainer.optimizers.items():
            self._writer.add_scalar(f"lr/{key}", opt.param_groups[0]["lr"], trainer.step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class SampleHook(Hook):
    """`samples/step_XXXXXX.png` every `every` steps: rows of label map (colourised) | generated | real.

    The images come from the same first items of the dataset every time, generated in eval mode (the
    EMA generator when there is one) with a fixed seed, so grids of different steps compare.
    """

    name = "samples"

    def __init__(self, folder: str | os.PathLike[str], every: int, count: int = 4) -> None:
        self.folder = Path(folder)
        self.every = every
        self.count = count

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        if self.every > 0 and trainer.step % self.every == 0:
            self.write(trainer)

    def write(self, trainer: Trainer) -> Path:
        """Write the grid of the current step and return its path."""
        from PIL import Image

        label, fake, real = trainer.sample_batch(self.count)
        from torchvision.utils import make_grid  # ~1 s to import: only when a grid is written

        tiles = [t for lab, f, r in zip(label, fake, real) for t in (_colorize(lab, trainer), f.float(), r.float())]
        grid = make_grid(torch.stack(tiles), nrow=3, padding=0)
        pixels = ((grid.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        path = self.folder / f"{_step_name(trainer.step)}.png"
        self.folder.mkdir(parents=True, exist_ok=True)

        atomic_write(path, lambda p: Image.fromarray(pixels).save(p, format="PNG"))
        return path


def _colorize(label: torch.Tensor, trainer: Trainer) -> torch.Tensor:
    """A (1, H, W) label map as a (3, H, W) image in [-1, 1], in the schema's palette (or the default one)."""
    schema = trainer.spec.labels
    return colorize(label.cpu(), schema.num_classes, schema.colors).float() / 127.5 - 1


class EvalHook(Hook):
    """Evaluation every `train.eval_every` steps and at the end: `semsyn.evaluate` on the val split of `data:`.

    The model is the one a run would publish (the EMA generator when there is one), evaluated in eval mode
    on `train.eval_num` val images with the metrics, segmenter and batch size of the `train.eval_*` fields;
    the training state (modes, RNGs) is left as it was. Each result is a line of `metrics.jsonl`
    (`{"step": N, "eval/miou": ...}`), an info log line and TensorBoard scalars.

    Args:
        every: steps between evaluations; None: `train.eval_every` of the trainer's spec (0 disables).
        evaluate: `evaluate(trainer) -> {metric: value}` to call instead of `semsyn.evaluate` (tests, custom
            metrics).
        path: the JSONL file; None: the run's metrics.jsonl.
    """

    name = "eval"

    def __init__(
        self,
        every: int | None = None,
        evaluate: Callable[[Trainer], Mapping[str, float]] | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.every = every
        self.evaluate = evaluate
        self.path = Path(path) if path is not None else None
        self._segmenter: Any = None
        self._last: int | None = None

    def before_train(self, trainer: Trainer) -> None:
        if self.every is None:
            self.every = trainer.config.eval_every
        if self.path is None:
            self.path = trainer.run_dir / "metrics.jsonl"
        if self.evaluate is None and self.every > 0:
            self.evaluate = self._default_evaluate

    def _default_evaluate(self, trainer: Trainer) -> Mapping[str, float]:
        import random

        import numpy as np

        from semsyn.evaluation import evaluate
        from semsyn.evaluation.segmenters import build_segmenter

        cfg = trainer.config
        device = trainer.dist.device
        wants_segmenter = cfg.eval_metrics is None or any(m != "fid" for m in cfg.eval_metrics)
        if self._segmenter is None and wants_segmenter:  # trained or loaded once per run, not per evaluation
            self._segmenter = build_segmenter(
                cfg.eval_segmenter, trainer.spec, device=device, **(cfg.eval_segmenter_params or {})
            )
        states = torch.get_rng_state(), np.random.get_state(), random.getstate()
        try:
            report = evaluate(
                trainer.final_model(),
                None,
                metrics=cfg.eval_metrics,
                segmenter=self._segmenter,
                num=cfg.eval_num,
                batch_size=cfg.eval_batch_size,
                device=device,
                seed=cfg.seed,
            )
        finally:
            torch.set_rng_state(states[0])
            np.random.set_state(states[1])
            random.setstate(states[2])
        return report.metrics

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        if self.evaluate is not None and self.every and self.every > 0 and trainer.step % self.every == 0:
            self.run(trainer)

    def after_train(self, trainer: Trainer) -> None:
        done = trainer.finished and self._last != trainer.step
        if self.evaluate is not None and self.every and self.every > 0 and done:
            self.run(trainer)

    def run(self, trainer: Trainer) -> dict[str, float]:
        """Evaluate now and log the numbers; returns them (keys prefixed "eval/")."""
        if self.evaluate is None:
            return {}
        start = time.perf_counter()
        results = {f"eval/{k}": float(v) for k, v in self.evaluate(trainer).items()}
        self._last = trainer.step
        logger.info("step %d eval (%.0f s) | %s", trainer.step, time.perf_counter() - start, _format_logs(results))
        if self.path is not None:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": trainer.step, **results}) + "\n")
        for hook in trainer.hooks:
            writer = getattr(hook, "_writer", None) if isinstance(hook, TensorBoardHook) else None
            if writer is not None:
                for key, value in results.items():
                    writer.add_scalar(key, value, trainer.step)
        return results

    def state_dict(self) -> dict[str, Any]:
        return {"last": self._last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._last = state.get("last")


class CheckpointHook(Hook):
    """Checkpoints every `every` steps and at the end; the final model folder when the run completes.

    Runs on every process (the RNG states of all of them are gathered); only rank 0 writes. Keeps the
    newest `keep` step checkpoints.
    """

    name = "checkpoint"
    main_only = False

    def __init__(self, every: int, keep: int) -> None:
        self.every = every
        self.keep = max(1, keep)
        self.last_saved: int | None = None

    def after_step(self, trainer: Trainer, logs: Mapping[str, float]) -> None:
        if self.every > 0 and trainer.step % self.every == 0:
            self.save(trainer)

    def after_train(self, trainer: Trainer) -> None:
        if self.last_saved != trainer.step:
            self.save(trainer)
        if trainer.finished and trainer.dist.is_main:
            trainer.save_final()

    def save(self, trainer: Trainer) -> None:
        """Write a checkpoint of the current step (a collective call: every process enters it)."""
        self.last_saved = trainer.step
        weights, state = trainer.weights(), trainer.state_dict()
        if not trainer.dist.is_main:
            return
        path = write_checkpoint(trainer.run_dir, trainer.step, weights, state, metadata=trainer.weights_metadata())
        logger.info("checkpoint %s", path)
        for _, old in list_checkpoints(trainer.run_dir)[: -self.keep]:
            _remove_tree(old)

    def state_dict(self) -> dict[str, Any]:
        return {"last_saved": self.last_saved}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_saved = state.get("last_saved")


class PushToHubHook(Hook):
    """At the end of a completed run, `model.push_to_hub(repo_id)` with the final model (EMA generator if any)."""

    name = "push"

    def __init__(self, repo_id: str) -> None:
        self.repo_id = repo_id

    def after_train(self, trainer: Trainer) -> None:
        if trainer.finished:
            commit = trainer.final_model().push_to_hub(self.repo_id)
            logger.info("pushed the final model to %s (%s)", self.repo_id, commit)
