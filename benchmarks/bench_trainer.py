"""Trainer overhead: a `Trainer` step against the bare forward/backward/optimizer steps of the same models.

Both loops train the same spec's networks on the same batch size in the same process, in interleaved
rounds (so a machine's load drift hits both alike); the figure is the median step time of each over the
rounds during which other processes used under `--max-other` cores (benchmarks/_common.py). The
bare loop does exactly the trainer's arithmetic (G phase with the discriminator frozen, D phase on a
regenerated fake, Adam steps) on tensors already in memory; the trainer adds the data loader (items
pre-rendered in memory, so no decoding is counted), label checks and one-hot, the NaN check, the LR
schedule, the loss bookkeeping and its hooks (metrics every `log_every` steps). Target: <= 10% (exit 1
when missed).

    .venv/bin/python benchmarks/bench_trainer.py [--spec spade-synthetic] [--batch 4] [--steps 10]
        [--rounds 5] [--ema] [--threads 1] [--set generator.ngf=4 ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

import semsyn
from semsyn.builder import build_losses, build_model
from semsyn.cli.common import add_set_argument
from semsyn.contracts import LossContext
from semsyn.data import build_dataset
from semsyn.registry import DATASETS
from semsyn.training.optim import adam
from semsyn.training.trainer import Trainer

from _common import Timer, write_json

TARGET_OVERHEAD = 0.10


@DATASETS.register("bench-in-memory")
class InMemory(torch.utils.data.Dataset):
    """The spec's real dataset rendered once into memory (so the benchmark times the trainer, not the data)."""

    items: list = []

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def _total(losses, ctx: LossContext) -> torch.Tensor:
    """The weighted sum of every term's compute(ctx) in one phase."""
    total = 0
    for w, m in losses:
        value = m.compute(ctx)
        values = [] if value is None else list(value.values()) if isinstance(value, dict) else [value]
        total = total + w * sum(values)
    return total


def bare_step(nets, losses, opts, sem, real) -> None:
    """The trainer's arithmetic with nothing around it."""
    gen, disc = nets
    opts[0].zero_grad(set_to_none=True)
    disc.requires_grad_(False)
    fake = gen(sem)
    out = disc(torch.cat([fake, real]), torch.cat([sem, sem]))
    n = fake.shape[0]
    fake_out = semsyn.DiscriminatorOutput([t[:n] for t in out.logits], [[f[:n] for f in fs] for fs in out.features])
    real_out = semsyn.DiscriminatorOutput([t[n:] for t in out.logits], [[f[n:] for f in fs] for fs in out.features])
    loss = _total(losses, LossContext("generator", sem, real, fake, fake_out, real_out))
    loss.backward()
    disc.requires_grad_(True)
    opts[0].step()
    opts[1].zero_grad(set_to_none=True)
    with torch.no_grad():
        fake = gen(sem)
    out = disc(torch.cat([fake, real]), torch.cat([sem, sem]))
    fake_out = semsyn.DiscriminatorOutput([t[:n] for t in out.logits], [])
    real_out = semsyn.DiscriminatorOutput([t[n:] for t in out.logits], [])
    d_loss = _total(losses, LossContext("discriminator", sem, real, fake, fake_out, real_out))
    d_loss.backward()
    opts[1].step()


def steps(fn, n: int):
    """A job running fn n times."""

    def job() -> None:
        for _ in range(n):
            fn()

    return job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="spade-synthetic")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="steps per round and loop")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-other", type=float, default=0.2, help="discard rounds where others used more cores")
    parser.add_argument("--ema", action="store_true", help="turn the generator EMA on in the trainer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    add_set_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    # the bare loop regenerates the D phase's fake (the official order): the trainer must do the same work,
    # whatever the spec says (a spec with `d_fake: reuse` would skip one generator forward)
    overrides = [
        f"train.batch_size={args.batch}",
        "train.steps=100000",
        "train.log_every=10",
        "train.device=cpu",
        "train.d_fake=regenerate",
    ]
    if args.ema:
        overrides.append("train.ema_halflife_images=10000")
    spec = semsyn.load_spec(args.spec, overrides=overrides + args.overrides)
    source = build_dataset(spec, "train")
    InMemory.items = [source[i] for i in range(64)]
    spec = spec.with_overrides({"data": {"name": "bench-in-memory"}})

    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(spec, Path(tmp) / "run")
        torch.manual_seed(0)
        model = build_model(spec, with_discriminator=True).train()
        nets = (model.generator, model.discriminator)
        losses = [(w, m) for w, m in build_losses(spec).values() if w]
        cfg = spec.train_config()
        # The trainer's own Adam (fused where torch has it), so the loops differ only by the trainer.
        opts = [adam(list(n.parameters()), lr, (cfg.beta1, cfg.beta2)) for n, lr in zip(nets, (cfg.lr_g, cfg.lr_d))]
        batch = [InMemory.items[i] for i in range(args.batch)]
        sem = model.semantics(torch.stack([b["label"] for b in batch]), torch.stack([b["instance"] for b in batch]))
        real = torch.stack([b["image"] for b in batch])

        def trainer_step() -> None:
            logs = trainer.train_step()
            for hook in trainer.hooks:
                hook.after_step(trainer, logs)

        for hook in trainer.hooks:
            hook.before_train(trainer)
        trainer_step()  # warm-up: first calls allocate and pick kernels
        bare_step(nets, losses, opts, sem, real)
        timer = Timer(args.max_other)
        for _ in range(args.rounds):
            timer.run("bare", steps(lambda: bare_step(nets, losses, opts, sem, real), args.steps))
            timer.run("trainer", steps(trainer_step, args.steps))
        for hook in trainer.hooks:
            hook.close()

    (b, b_noisy), (f, f_noisy) = timer.median("bare"), timer.median("trainer")
    b, f = b / args.steps, f / args.steps
    bare, full = ([w / args.steps for w, _ in timer.runs[k]] for k in ("bare", "trainer"))
    print(
        f"spec {args.spec} {spec.image_size[0]}x{spec.image_size[1]}, batch {args.batch}, "
        f"{torch.get_num_threads()} threads, EMA {'on' if args.ema else 'off'}, "
        f"{args.rounds} rounds x {args.steps} steps"
    )
    print(f"bare step     {b * 1000:8.1f} ms  (rounds: {', '.join(f'{x * 1000:.0f}' for x in bare)})")
    print(f"trainer step  {f * 1000:8.1f} ms  (rounds: {', '.join(f'{x * 1000:.0f}' for x in full)})")
    overhead = (f - b) / b
    noisy = " (NOISY: fewer than 3 quiet rounds, all rounds used)" if b_noisy or f_noisy else ""
    print(f"other processes used {timer.load():.2f} cores on average; medians of the quiet rounds{noisy}")
    met = overhead <= TARGET_OVERHEAD
    verdict = "met" if met else "NOT met"
    figures = {"spec": args.spec, "batch": args.batch, "steps_per_round": args.steps, "ema": args.ema}
    figures |= {"bare_step_s": b, "trainer_step_s": f, "overhead": overhead, "target_met": met}
    figures |= {"noisy": b_noisy or f_noisy, "load_other_cores": timer.load(), "runs": timer.runs}
    print(f"overhead      {100 * overhead:+8.1f} %  (target <= {100 * TARGET_OVERHEAD:.0f}%: {verdict})")
    write_json(figures, "trainer")
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
