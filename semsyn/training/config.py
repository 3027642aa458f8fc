"""The `train:` section of a spec: every trainer setting, with the paper recipe as defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Trainer settings; each field is a key of the spec's `train:` section.

    Defaults are the SPADE / CC-FPSE recipe: TTUR (lr_g 1e-4, lr_d 4e-4, Adam betas (0, 0.9)),
    linear LR decay to 0 over the second half of the run.

    Args:
        steps: generator updates in the whole run.
        batch_size: images per step over all processes (split evenly across ranks).
        seed: seeds weights, data order and every random draw of the run.
        lr_g: generator (and encoder) learning rate.
        lr_d: discriminator learning rate.
        beta1: Adam beta1.
        beta2: Adam beta2.
        lr_decay_start_step: step from which both rates fall linearly to 0 at `steps`; None = steps // 2,
            and a value >= steps keeps them constant.
        d_steps_per_g: discriminator updates per generator update, each on its own batch (SPADE's
            D_steps_per_G: the generator phase uses the first).
        grad_accum_steps: micro-batches accumulated per update (batch_size is split across them).
        ema_halflife_images: half-life of the generator EMA in images; None disables the EMA.
        ema_calibration_images: training images (the dataset's first) from which the EMA generator's
            batch-norm running statistics are recomputed for its own weights before it is saved, sampled or
            evaluated (those copied from the trained generator fit the trained weights, not the average);
            0 keeps the copied ones. Costs that many generator forwards at each save; no effect without
            batch norms.
        amp: autocast dtype on CUDA ("bf16", "fp16") or "none"; ignored on CPU.
        sync_batchnorm: under DDP, convert the `syncbatch` norms to synchronised batch norms (torch's
            SyncBatchNorm on GPUs, an all-reduce stand-in on the CPU); `batch` norms stay per process.
        num_workers: data-loader worker processes.
        log_every: steps between metric log lines (metrics.jsonl, TensorBoard, the info log).
        sample_every: steps between sample grids (0 disables).
        checkpoint_every: steps between checkpoints (0: only at the end; there is always one at the end).
        keep_checkpoints: how many step checkpoints to keep.
        push_to_hub: a Hub repo id to publish the final model to, or None.
        init_from: a model source (name, hf-hub:, local-dir:) whose weights start the run (fine-tuning).
        d_fake: the discriminator phase's fake images: "regenerate" them with the just-updated generator
            (the official order) or "reuse" the generator phase's (one generator forward less per step).
        sample_images: label maps (the dataset's first items) shown in each sample grid.
        device: "cpu", "cuda", "cuda:1", ...; None = this process's GPU when there is one, else the CPU.
        eval_every: steps between evaluations (`semsyn.evaluate` on the val split of `data:`, with the
            EMA generator when there is one; the numbers go to metrics.jsonl and TensorBoard); 0 disables.
        eval_num: val images per evaluation.
        eval_metrics: metric names; None: mIoU and the segmenter-feature distance (plus FID when its
            weights are installed), as `semsyn-eval` chooses.
        eval_segmenter: a registered segmenter; None: the data's default (synthetic-unet for synthetic data).
        eval_segmenter_params: its constructor arguments (e.g. {weights: seg.pth} for torchvision-segmentation).
        eval_batch_size: images per evaluation forward pass.
    """

    steps: int = 1000
    batch_size: int = 8
    seed: int = 0
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    beta1: float = 0.0
    beta2: float = 0.9
    lr_decay_start_step: int | None = None
    d_steps_per_g: int = 1
    grad_accum_steps: int = 1
    ema_halflife_images: float | None = None
    ema_calibration_images: int = 256
    amp: Literal["none", "bf16", "fp16"] = "none"
    sync_batchnorm: bool = True
    num_workers: int = 0
    log_every: int = 10
    sample_every: int = 0
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    push_to_hub: str | None = None
    init_from: str | None = None
    d_fake: Literal["regenerate", "reuse"] = "regenerate"
    sample_images: int = 4
    device: str | None = None
    eval_every: int = 0
    eval_num: int = 64
    eval_metrics: list[str] | None = None
    eval_segmenter: str | None = None
    eval_segmenter_params: dict[str, Any] | None = None
    eval_batch_size: int = 16
