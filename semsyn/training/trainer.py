"""The trainer: any registered generator x discriminator x losses, from one spec, on one or many processes.

One step is a short linear sequence of named phases, as in SPADE (`pix2pix_trainer.py`):

1. **generator phase**: z from the encoder's reparameterised output when the model has an encoder
   (eps drawn from the run's `torch.Generator`); `fake = G(semantics, z)`; the discriminator on fake and
   real concatenated along the batch (as the official code does); the generator's loss terms: the GAN
   term (`gan(fake, True, for_discriminator=False)`), feature matching (fake vs real features),
   perceptual (fake vs real image) and KL (only with an encoder); each multiplied by its spec weight.
2. **discriminator phase**, `d_steps_per_g` times on fresh batches: fake regenerated under `no_grad`
   with the updated generator (`d_fake: regenerate`, the official order) or reused from phase 1
   (`d_fake: reuse`); `gan(fake, False) + gan(real, True)`.
3. the LR schedule and the generator EMA advance.

The EMA and the LR schedule are part of the step, not hooks: they change what is trained, and a resumed
run must restore them exactly with the weights. Everything that only observes the run (logs, samples,
checkpoints, evaluation, Hub push) is a hook (`semsyn.training.hooks`).

The same code runs on the CPU, on one GPU and under torchrun: `semsyn.training.distributed` supplies the
process group, DDP wrappers and the sharded sampler, and degrades to no-ops on one process.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from semsyn.checkpoint import load_strict, prefixed_state, read_metadata, split_prefixed
from semsyn.contracts import DiscriminatorOutput, LossContext, call_generator
from semsyn.errors import DatasetError, SpecError, TrainingError
from semsyn.labels import semantics as make_semantics
from semsyn.model import SynthesisModel, build_model
from semsyn.provenance import METADATA_KEY, Provenance, trained
from semsyn.registry import NORMS
from semsyn.spec import Spec
from semsyn.training import distributed as D
from semsyn.training.checkpoints import (
    WEIGHTS_FILE,
    latest_checkpoint,
    list_checkpoints,
    read_checkpoint,
    remove_incomplete,
)
from semsyn.training.config import TrainConfig
from semsyn.training.data import _Collate, _Failure, _GuardedDataset, _preserved_rng, build_train_dataset
from semsyn.training.ema import GeneratorEMA
from semsyn.training.hooks import (
    CheckpointHook,
    EvalHook,
    Hook,
    MetricsHook,
    ProgressHook,
    PushToHubHook,
    SampleHook,
    TensorBoardHook,
)
from semsyn.training.losses import build_terms, evaluate_terms
from semsyn.training.optim import build_optimizers, build_schedulers

__all__ = ["Trainer", "ROLES", "STATE_FORMAT"]

logger = logging.getLogger(__name__)
ROLES = ("gan", "feature-matching", "perceptual", "kl")
STATE_FORMAT = 1
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _parent_of(checkpoint: Path) -> tuple[str, Provenance] | None:
    """The parent (source, record) a checkpoint's provenance record names, or None."""
    record = read_metadata(checkpoint / WEIGHTS_FILE).get(METADATA_KEY)
    parent = dict(Provenance.from_json(record).parent or {}) if record else {}
    source = parent.pop("source", None)
    return (source, Provenance.from_json(json.dumps(parent))) if source else None


def _split(out: DiscriminatorOutput, n: int) -> tuple[DiscriminatorOutput, DiscriminatorOutput]:
    """The fake (first n) and real halves of a discriminator output on a concatenated batch."""
    fake = DiscriminatorOutput([t[:n] for t in out.logits], [[f[:n] for f in fs] for fs in out.features])
    real = DiscriminatorOutput([t[n:] for t in out.logits], [[f[n:] for f in fs] for fs in out.features])
    return fake, real


# -- the trainer --------------------------------------------------------------------------------------
class Trainer:
    """Trains the networks of a spec with its `losses:`, `data:` and `train:` sections, writing to `run_dir`.

    Args:
        spec: a validated spec with generator, discriminator, losses and data sections (`train:` optional).
        run_dir: the run folder (spec.yaml, metrics.jsonl, samples/, checkpoints/, final/).
        resume: continue from the newest complete checkpoint in `run_dir` (from step 0 when there is none).
        hooks: replaces the default hooks (progress, metrics, TensorBoard, samples, eval, checkpoint, push).
        extra_hooks: added after the default hooks.
    """

    def __init__(
        self,
        spec: Spec,
        run_dir: str | os.PathLike[str],
        *,
        resume: bool = False,
        hooks: Sequence[Hook] | None = None,
        extra_hooks: Sequence[Hook] = (),
    ) -> None:
        self.spec = spec.resolved()
        self.config: TrainConfig = self.spec.train_config()
        self.run_dir = Path(run_dir)
        self.dist = D.init_distributed(self.config.device)
        self._check_spec()
        self.step = 0
        self.samples_seen = 0
        self._prepare_run_dir(resume)
        self._checkpoint = latest_checkpoint(self.run_dir) if resume else None
        self._build_networks()
        self._build_losses()
        self.optimizers = build_optimizers(self.config, self.generator, self.discriminator, self.encoder)
        self.schedulers = build_schedulers(self.config, self.optimizers)
        amp_on = self.config.amp != "none" and self.dist.device.type == "cuda"
        self._amp = (AMP_DTYPES.get(self.config.amp, torch.bfloat16), amp_on)
        self.scalers = {
            k: torch.amp.GradScaler(self.dist.device.type, enabled=amp_on and self.config.amp == "fp16")
            for k in self.optimizers
        }
        self.ema = (
            GeneratorEMA(self.spec, self.generator, self.config.ema_halflife_images)
            if self.config.ema_halflife_images is not None
            else None
        )
        self.dataset = _GuardedDataset(build_train_dataset(self.spec))
        if len(self.dataset) == 0:
            raise DatasetError(f"{self.spec.where('data')}: the dataset {self.spec.data['data']['name']!r} is empty")
        self.rng = torch.Generator(device=self.dist.device).manual_seed(self.config.seed * 65537 + self.dist.rank + 1)
        self._seed_globals(self.config.seed * 65537 + self.dist.rank)
        self._batches: Iterator[Any] | None = None
        self._sample_items: Any = None
        self._ema_calibrated_at: int | None = None
        all_hooks = list(self.default_hooks() if hooks is None else hooks) + list(extra_hooks)
        self.hooks = [h for h in all_hooks if self.dist.is_main or not h.main_only]
        if resume:
            self._resume()

    # -- set-up -----------------------------------------------------------------------------------
    def _check_spec(self) -> None:
        spec, cfg, w = self.spec, self.config, self.spec.where
        for section, example in (
            ("data", "data: {name: synthetic}"),
            ("discriminator", "discriminator: {name: patchgan-multiscale}"),
            ("losses", "losses: {gan: {name: hinge}}"),
        ):
            if not spec.data.get(section):
                raise SpecError(f"{w(section)}: training needs a {section} section, e.g. {example}")
        for key in ("steps", "batch_size", "d_steps_per_g", "grad_accum_steps"):
            if getattr(cfg, key) < 1:
                raise SpecError(f"{w('train', key)}: {key} must be at least 1, got {getattr(cfg, key)}")
        if cfg.batch_size % (self.dist.world_size * cfg.grad_accum_steps):
            raise SpecError(
                f"{w('train', 'batch_size')}: batch_size {cfg.batch_size} must be a multiple of the number of "
                f"processes ({self.dist.world_size}) x train.grad_accum_steps ({cfg.grad_accum_steps})"
            )
        if cfg.ema_halflife_images is not None and cfg.ema_halflife_images <= 0:
            raise SpecError(f"{w('train', 'ema_halflife_images')}: must be positive, or null to disable the EMA")
        if cfg.ema_calibration_images < 0:
            raise SpecError(f"{w('train', 'ema_calibration_images')}: must be 0 (off) or a number of images")

    def _prepare_run_dir(self, resume: bool) -> None:
        if resume and not (self.run_dir / "spec.yaml").is_file():
            raise TrainingError(f"--resume {self.run_dir}: not a run folder (it has no spec.yaml); check the path")
        done = list_checkpoints(self.run_dir)
        if not resume and done:
            raise TrainingError(
                f"{self.run_dir} already holds a run (checkpoint {done[-1][1].name}); continue it with "
                f"--resume {self.run_dir}, or choose another --out"
            )
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_incomplete(self.run_dir)
            self.spec.dump(self.run_dir / "spec.yaml")
        D.barrier(self.dist)

    def _build_networks(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)  # the same initial weights on every process
        model = build_model(self.spec, with_discriminator=True)
        # The weights' origin: a fine-tune names its parent's record, a run from scratch none.
        self.parent: tuple[str, Provenance] | None = None
        if cfg.init_from and self._checkpoint is not None:
            # A resumed run's checkpoint holds newer weights, and its record names the parent: no download.
            self.parent = _parent_of(self._checkpoint)
        elif cfg.init_from:
            source = SynthesisModel.from_pretrained(cfg.init_from, with_discriminator=True)
            self.parent = (source.loaded_from or cfg.init_from, source.provenance)
            model.load_weights(
                source.weights(source.trained_parts), f"train.init_from {cfg.init_from!r}", warn_untrained=False
            )
            logger.info("starting from the weights of %s (%s)", cfg.init_from, ", ".join(sorted(source.trained_parts)))
        if self.dist.distributed and cfg.sync_batchnorm:
            sync_class = NORMS.get("syncbatch")
            for part in model.parts:
                D.convert_sync_batchnorm(getattr(model, part), sync_class, self.dist.device)
        model.to(self.dist.device).train()
        self.generator: nn.Module = model.generator
        self.encoder: nn.Module | None = model.encoder
        self.discriminator: nn.Module = model.discriminator
        self.G = D.wrap_ddp(self.generator, self.dist)
        self.E = D.wrap_ddp(self.encoder, self.dist)
        self.D = D.wrap_ddp(self.discriminator, self.dist)
        first = next(self.generator.parameters())
        self._dtype = first.dtype

    def _build_losses(self) -> None:
        self.terms = build_terms(self.spec, has_encoder=self.encoder is not None, device=self.dist.device)
        self._needs_real_features = any("d_real" in term.needs for term in self.terms)

    def _seed_globals(self, seed: int) -> None:
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)

    def default_hooks(self) -> list[Hook]:
        """Progress bar, metrics.jsonl, TensorBoard, sample grids, the evaluation slot, checkpoints, Hub push."""
        cfg, run = self.config, self.run_dir
        hooks: list[Hook] = [
            ProgressHook(),
            MetricsHook(run / "metrics.jsonl", cfg.log_every),
            TensorBoardHook(run / "tensorboard", cfg.log_every),
            SampleHook(run / "samples", cfg.sample_every, cfg.sample_images),
            EvalHook(),
            CheckpointHook(cfg.checkpoint_every, cfg.keep_checkpoints),
        ]
        if cfg.push_to_hub:
            hooks.append(PushToHubHook(cfg.push_to_hub))
        return hooks

    # -- data -------------------------------------------------------------------------------------
    def _loader(self) -> torch.utils.data.DataLoader:
        cfg = self.config
        sampler = D.ShardedBatchSampler(
            len(self.dataset),
            cfg.batch_size,
            world_size=self.dist.world_size,
            rank=self.dist.rank,
            accum=cfg.grad_accum_steps,
            seed=cfg.seed,
            samples_seen=self.samples_seen,
        )
        return torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            collate_fn=_Collate(self.spec.labels, self.spec.image_size),
            pin_memory=self.dist.device.type == "cuda",
            persistent_workers=cfg.num_workers > 0,
            generator=torch.Generator().manual_seed(cfg.seed + self.step),
        )

    def _to_device(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """A collated batch -> (semantics, real image) on the model's device and dtype."""
        if isinstance(batch, _Failure):
            batch.reraise()
        device = self.dist.device
        label = batch["label"].to(device, non_blocking=True)
        instance = batch.get("instance")
        if instance is None and self.spec.labels.instance_edges:
            instance = label
        sem = make_semantics(
            label, self.spec.labels, None if instance is None else instance.to(device), dtype=self._dtype
        )
        return sem, batch["image"].to(device=device, dtype=self._dtype, non_blocking=True)

    def _next_batch(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The next global batch: this process's micro-batches."""
        if self._batches is None:
            self._batches = iter(self._loader())
        micro = [self._to_device(next(self._batches)) for _ in range(self.config.grad_accum_steps)]
        self.samples_seen += self.config.batch_size
        return micro

    # -- the step ---------------------------------------------------------------------------------
    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.dist.device.type, dtype=self._amp[0], enabled=self._amp[1])

    def _reparameterize(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=self.rng, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def _discriminate(
        self, disc: nn.Module, fake: torch.Tensor, real: torch.Tensor | None, sem: torch.Tensor
    ) -> tuple[DiscriminatorOutput, DiscriminatorOutput | None]:
        if real is None:
            return disc(fake, sem), None
        # parity: SPADE runs D once on fake and real concatenated along the batch.
        return _split(disc(torch.cat([fake, real]), torch.cat([sem, sem])), fake.shape[0])

    def _generator_losses(self, sem: torch.Tensor, real: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        mu = logvar = z = None
        if self.E is not None:
            mu, logvar = self.E(real, sem)
            z = self._reparameterize(mu, logvar)
        fake = call_generator(self.G, sem, z, generator=self.rng)
        # The raw discriminator: its weights get no gradient here, and its DDP wrapper must not expect one.
        fake_out, real_out = self._discriminate(
            self.discriminator, fake, real if self._needs_real_features else None, sem
        )
        ctx = LossContext("generator", sem, real, fake, fake_out, real_out, mu, logvar, self.step)
        return evaluate_terms(self.terms, ctx, "G"), fake

    def _check_terms(self, terms: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """Loss values averaged over processes; a non-finite one stops the run on every process."""
        values = D.all_reduce_mean(torch.stack([t.detach().float() for t in terms.values()]), self.dist).tolist()
        for name, value in zip(terms, values):
            if not np.isfinite(value):
                last = latest_checkpoint(self.run_dir)
                raise TrainingError(
                    f"non-finite loss at step {self.step + 1}: term {name!r} = {value}; training stopped, the last "
                    f"complete checkpoint ({last or 'none yet'}) is intact. Lower train.lr_g / train.lr_d or the "
                    "term's weight, or check the data, then resume"
                )
        return dict(zip(terms, values))

    def _generator_phase(
        self, micro: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[dict[str, float], list[torch.Tensor]]:
        opt, scaler = self.optimizers["generator"], self.scalers["generator"]
        opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        fakes = []
        self.discriminator.requires_grad_(False)
        try:
            for i, (sem, real) in enumerate(micro):
                with D.no_sync([self.G, self.E], skip=i < len(micro) - 1):
                    with self._autocast():
                        terms, fake = self._generator_losses(sem, real)
                    for k, v in self._check_terms(terms).items():
                        logs[k] = logs.get(k, 0.0) + v / len(micro)
                    scaler.scale(sum(terms.values()) / len(micro)).backward()
                if self.config.d_fake == "reuse":
                    fakes.append(fake.detach())
        finally:
            self.discriminator.requires_grad_(True)
        scaler.step(opt)
        scaler.update()
        return logs, fakes

    @torch.no_grad()
    def _regenerate(self, sem: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            z = self._reparameterize(*self.encoder(real, sem)) if self.encoder is not None else None
            return call_generator(self.generator, sem, z, generator=self.rng)

    def _discriminator_phase(
        self, micro: list[tuple[torch.Tensor, torch.Tensor]], fakes: list[torch.Tensor] | None
    ) -> dict[str, float]:
        opt, scaler = self.optimizers["discriminator"], self.scalers["discriminator"]
        opt.zero_grad(set_to_none=True)
        logs: dict[str, float] = {}
        for i, (sem, real) in enumerate(micro):
            fake = fakes[i] if fakes is not None else self._regenerate(sem, real)
            with D.no_sync([self.D], skip=i < len(micro) - 1):
                with self._autocast():
                    fake_out, real_out = self._discriminate(self.D, fake, real, sem)
                    ctx = LossContext("discriminator", sem, real, fake, fake_out, real_out, step=self.step)
                    terms = evaluate_terms(self.terms, ctx, "D")
                for k, v in self._check_terms(terms).items():
                    logs[k] = logs.get(k, 0.0) + v / len(micro)
                scaler.scale(sum(terms.values()) / len(micro)).backward()
        scaler.step(opt)
        scaler.update()
        return logs

    def train_step(self) -> dict[str, float]:
        """One generator update and `d_steps_per_g` discriminator updates; returns the named loss terms."""
        cfg = self.config
        batches = [self._next_batch() for _ in range(cfg.d_steps_per_g)]
        logs, fakes = self._generator_phase(batches[0])
        for i, batch in enumerate(batches):
            d_logs = self._discriminator_phase(batch, fakes if i == 0 and fakes else None)
            for k, v in d_logs.items():
                logs[k] = logs.get(k, 0.0) + v / cfg.d_steps_per_g
        for scheduler in self.schedulers.values():
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.generator, cfg.batch_size)
        self.step += 1
        return logs

    # -- the run ----------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether every step of the run is done."""
        return self.step >= self.config.steps

    def fit(self, stop_at: int | None = None) -> None:
        """Train until `train.steps` (or until step `stop_at`, checkpointing there so the run can resume)."""
        end = self.config.steps if stop_at is None else min(stop_at, self.config.steps)
        try:
            for hook in self.hooks:
                hook.before_train(self)
            while self.step < end:
                logs = self.train_step()
                for hook in self.hooks:
                    hook.after_step(self, logs)
            for hook in self.hooks:
                hook.after_train(self)
        finally:
            for hook in self.hooks:
                hook.close()
        D.barrier(self.dist)

    def _ema_generator(self) -> nn.Module:
        """The EMA generator, its batch-norm statistics recomputed for its weights at this step (once per step)."""
        assert self.ema is not None
        count = min(self.config.ema_calibration_images, len(self.dataset))
        if count and self._ema_calibrated_at != self.step:
            # the batch the trained generator's norms saw: the global micro-batch when they are synchronised
            cfg = self.config
            size = cfg.batch_size // cfg.grad_accum_steps
            if not (cfg.sync_batchnorm and self.dist.world_size > 1):
                size //= self.dist.world_size
            size = max(1, size)
            collate = _Collate(self.spec.labels, self.spec.image_size)

            def batches() -> Iterator[tuple[torch.Tensor, None]]:
                for start in range(0, count, size):
                    with _preserved_rng():
                        items = [self.dataset[i] for i in range(start, min(start + size, count))]
                    yield self._to_device(collate(items))[0], None

            rng = torch.Generator(device=self.dist.device).manual_seed(self.config.seed)
            self.ema.calibrate_norms(batches(), rng)
            self._ema_calibrated_at = self.step
        return self.ema.module

    @torch.no_grad()
    def sample_batch(self, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(label, generated, real) for the first `count` dataset items, on the CPU; training state unchanged.

        Generated in eval mode by the EMA generator when there is one (else the trained one), z = the
        encoder's mean when there is an encoder, and the run's seed for any other draw.
        """
        if self._sample_items is None:
            with _preserved_rng():
                items = [self.dataset[i] for i in range(min(count, len(self.dataset)))]
            self._sample_items = _Collate(self.spec.labels, self.spec.image_size)(items)
        sem, real = self._to_device(self._sample_items)
        nets = [self._ema_generator() if self.ema is not None else self.generator, self.encoder]
        modes = [n.training if n is not None else False for n in nets]
        for n in nets:
            if n is not None:
                n.eval()
        try:
            z = self.encoder(real, sem)[0] if self.encoder is not None else None
            rng = torch.Generator(device=self.dist.device).manual_seed(self.config.seed)
            fake = call_generator(nets[0], sem, z, generator=rng)
        finally:
            for n, mode in zip(nets, modes):
                if n is not None:
                    n.train(mode)
        return self._sample_items["label"], fake.float().cpu(), real.float().cpu()

    def provenance(self) -> Provenance:
        """The record of the weights this run has made so far: trained from scratch, or fine-tuned from a parent."""
        parts = [p for p in ("generator", "encoder", "discriminator") if getattr(self, p) is not None]
        dataset = (self.spec.data.get("data") or {}).get("name")
        if self.parent is None:
            return trained(self.spec.name, self.step, dataset, parts)
        source, record = self.parent
        return record.fine_tuned(source, spec=self.spec.name, steps=self.step, dataset=dataset, parts=parts)

    def final_model(self) -> SynthesisModel:
        """The trained networks as a `SynthesisModel` (the EMA generator when the EMA is on), with their provenance."""
        generator = self._ema_generator() if self.ema is not None else self.generator
        model = SynthesisModel(self.spec, generator, self.encoder, self.discriminator, provenance=self.provenance())
        model.trained_parts = set(model.parts)
        return model

    def save_final(self) -> Path:
        """Write `RUN_DIR/final/` with `save_pretrained` (spec.yaml, model.safetensors, model card), atomically."""
        out = self.run_dir / "final"
        tmp = self.run_dir / f".tmp-final-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        self.final_model().save_pretrained(tmp, source=f"local-dir:{out.resolve()}")
        if out.exists():
            old = self.run_dir / f".old-final-{os.getpid()}"
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
        logger.info("final model: %s", out)
        return out

    # -- state ------------------------------------------------------------------------------------
    def _networks(self) -> dict[str, nn.Module | None]:
        return {
            "generator": self.generator,
            "encoder": self.encoder,
            "discriminator": self.discriminator,
            "ema": self.ema.module if self.ema is not None else None,
        }

    def weights(self) -> dict[str, torch.Tensor]:
        """Every network's weights: `generator.`, `encoder.`, `discriminator.` and `ema.` (the EMA generator)."""
        if self.ema is not None:
            self._ema_generator()  # its batch-norm statistics, for its own weights
        return prefixed_state(self._networks())

    def weights_metadata(self) -> dict[str, str]:
        """What a checkpoint's weights file records besides the tensors: the run's provenance."""
        return {METADATA_KEY: self.provenance().to_json()}

    def _rng_state(self) -> dict[str, Any]:
        _, keys, pos, has_gauss, cached = np.random.get_state()
        version, mt, gauss = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },
            "python": {"version": version, "state": list(mt), "gauss": gauss},
            "run": self.rng.get_state(),
        }

    def _set_rng_state(self, state: Mapping[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        if state["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        npy = state["numpy"]
        np.random.set_state(
            ("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"])
        )
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
        self.rng.set_state(state["run"])

    def state_dict(self) -> dict[str, Any]:
        """Everything but the weights that an exact resume needs (a collective call under DDP)."""
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "world_size": self.dist.world_size,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": D.gather_objects(self._rng_state(), self.dist),
            "sampler": {"samples_seen": self.samples_seen, "dataset_len": len(self.dataset)},
            "hooks": {h.name: h.state_dict() for h in self.hooks},
        }

    def _load_weights(self, weights: Mapping[str, torch.Tensor], where: str) -> None:
        groups = split_prefixed(weights, ("generator", "encoder", "discriminator", "ema"), where)
        for part, module in self._networks().items():
            if module is None:
                continue
            if part not in groups:
                raise TrainingError(f"{where} holds no {part} weights; it was written by a run with another spec")
            load_strict(module, groups[part], f"{where} ({part})")

    def _resume(self) -> None:
        path = self._checkpoint
        if path is None:
            logger.info("%s holds no complete checkpoint: starting from step 0", self.run_dir)
            for hook in self.hooks:
                hook.load_state_dict({})  # forget what a killed first attempt logged
            return
        weights, state = read_checkpoint(path)
        if state.get("format") != STATE_FORMAT:
            raise TrainingError(f"{path}: trainer state format {state.get('format')!r} is not {STATE_FORMAT}")
        self._load_weights(weights, str(path / "model.safetensors"))
        for key, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        for key, sched in self.schedulers.items():
            # The spec's schedule and rates win (a resumed run may be lengthened): only the position is restored.
            saved = {
                **state["schedulers"][key],
                "base_lrs": list(sched.base_lrs),
                "lr_lambdas": [None] * len(sched.lr_lambdas),
            }
            sched.load_state_dict(saved)
            for group, base, factor in zip(sched.optimizer.param_groups, sched.base_lrs, sched.lr_lambdas):
                group["lr"] = base * factor(sched.last_epoch)
        for key, scaler in self.scalers.items():
            scaler.load_state_dict(state["scalers"][key])
        self.step, self.samples_seen = int(state["step"]), int(state["sampler"]["samples_seen"])
        if state["sampler"]["dataset_len"] != len(self.dataset):
            logger.warning(
                "the dataset had %d items and has %d: the data order differs from the interrupted run",
                state["sampler"]["dataset_len"],
                len(self.dataset),
            )
        if len(state["rng"]) == self.dist.world_size:
            self._set_rng_state(state["rng"][self.dist.rank])
        else:
            logger.warning(
                "the run had %d processes and has %d: random draws are reseeded, not resumed",
                len(state["rng"]),
                self.dist.world_size,
            )
            self._seed_globals(self.config.seed * 65537 + self.dist.rank + self.step)
            self.rng.manual_seed(self.config.seed * 65537 + self.dist.rank + self.step + 1)
        for hook in self.hooks:
            hook.load_state_dict(state["hooks"].get(hook.name, {}))
        logger.info("resumed %s at step %d%s", path, self.step, " (the run had finished)" if self.finished else "")
