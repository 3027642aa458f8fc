"""One code path for one process and for many: process group, DDP, synchronised batch norm, data sharding.

Under `torchrun` (or `semsyn-train --nproc N`, which re-launches itself through `torch.distributed.run`)
every process trains on its share of each global batch and DDP averages the gradients, so a step is the
same step a single process would take on the whole batch (for losses that are means over the batch).
Without the torchrun environment everything here degrades to a no-op and one process trains alone.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from semsyn.errors import TrainingError

__all__ = [
    "DistContext",
    "init_distributed",
    "shutdown_distributed",
    "wrap_ddp",
    "unwrap",
    "no_sync",
    "convert_sync_batchnorm",
    "CPUSyncBatchNorm",
    "all_reduce_mean",
    "gather_objects",
    "broadcast_object",
    "barrier",
    "ShardedBatchSampler",
    "launch",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run.

    Args:
        rank: global rank (0 writes files and logs at info level).
        world_size: number of processes.
        local_rank: rank on this machine (picks the CUDA device).
        device: the device this process trains on.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and logs at info level."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether several processes train together."""
        return self.world_size > 1


def _pick_device(requested: str | None, local_rank: int) -> torch.device:
    if requested is not None:
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_distributed(device: str | None = None) -> DistContext:
    """Join the torchrun process group when this process was started by torchrun; else a 1-process context.

    Args:
        device: "cpu", "cuda", "cuda:1", ...; None picks this process's GPU when there is one, else the CPU.
            The backend follows: nccl on CUDA, gloo on CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = _pick_device(device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
        dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
    if dist.is_initialized():
        world_size, rank = dist.get_world_size(), dist.get_rank()
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def shutdown_distributed() -> None:
    """Leave the process group (a no-op on one process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_ddp(module: nn.Module | None, ctx: DistContext) -> nn.Module | None:
    """`module` wrapped in DistributedDataParallel when several processes train; itself otherwise."""
    if module is None or not ctx.distributed or not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module | None) -> nn.Module | None:
    """The module inside a DDP wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def no_sync(modules: Sequence[nn.Module | None], skip: bool) -> AbstractContextManager[Any]:
    """Suspend DDP's gradient all-reduce for `modules` while `skip` (all micro-batches but the last)."""
    if not skip:
        return nullcontext()
    stack = ExitStack()
    for m in modules:
        if isinstance(m, nn.parallel.DistributedDataParallel):
            stack.enter_context(m.no_sync())
    return stack


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics are computed over every process, on the CPU (gloo).

    torch's `nn.SyncBatchNorm` only runs on accelerators (its kernel, and DDP refuses it in a CPU
    module), so CPU runs use this stand-in: the same statistics from a differentiable all-reduce of
    per-channel sums, so a CPU DDP run (and its test) trains like one process on the whole batch. Its
    state-dict keys are batch norm's.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002  (torch's parameter name)
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        from torch.distributed.nn.functional import all_reduce

        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        count = torch.full((1,), input.numel() / channels, dtype=input.dtype, device=input.device)
        shape = (1, channels) + (1,) * (input.dim() - 2)
        # Two passes (mean, then the centred second moment) keep the variance as exact as one process's.
        sums = all_reduce(torch.cat([input.sum(dims), count]))
        n = sums[-1]
        mean = sums[:channels] / n
        centred = input - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), momentum)
        out = centred * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def convert_sync_batchnorm(module: nn.Module, norm_class: type[nn.Module], device: torch.device) -> int:
    """Replace, in place, every `norm_class` instance inside `module` by a synchronised batch norm.

    torch's `nn.SyncBatchNorm` on accelerators, `CPUSyncBatchNorm` on the CPU. Only the class a spec
    names as `syncbatch` is converted (plain `batch` norms keep per-process statistics, as they say);
    the state-dict keys do not change. Call it before the model moves to `device` (the new modules are
    built on the CPU). Returns how many were converted.

    Args:
        module: the network (not DDP-wrapped yet).
        norm_class: `semsyn.NORMS.get("syncbatch")`.
        device: where the model will train.
    """
    sync_class = CPUSyncBatchNorm if device.type == "cpu" else nn.SyncBatchNorm
    converted = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, norm_class) or isinstance(child, sync_class):
                continue
            sync = sync_class(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            sync.load_state_dict(child.state_dict())
            sync.train(child.training)
            setattr(parent, name, sync)
            converted += 1
    return converted


def all_reduce_mean(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The mean of `tensor` over processes (itself on one process)."""
    if not ctx.distributed:
        return tensor
    tensor = tensor.clone()
    dist.all_reduce(tensor)
    return tensor / ctx.world_size


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every process's `obj`, indexed by rank (every process calls this)."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's `obj` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    """Wait for every process (a no-op on one)."""
    if ctx.distributed:
        dist.barrier()


class ShardedBatchSampler:
    """An endless, deterministic stream of micro-batches of `(epoch, index)` keys for one process.

    The global stream is the concatenation of per-epoch permutations (`seed + epoch`). Each global batch
    of `global_batch` consecutive indices is cut into `world_size * accum` contiguous chunks; process
    `rank` takes chunks `rank * accum ... rank * accum + accum - 1`, one micro-batch each. So the union of
    what all processes see in a step is the batch one process would see, and the position in the stream
    (`samples_seen`, global) resumes the data order exactly whatever the number of processes.

    Args:
        dataset_len: number of items.
        global_batch: images per global batch (all processes, all micro-batches).
        world_size: processes.
        rank: this process.
        accum: micro-batches per global batch and process.
        seed: seeds the epoch permutations.
        samples_seen: position in the global stream to start from.

    Keys carry the epoch so a dataset with per-epoch augmentation (`set_epoch`) can be told the epoch
    in whichever worker process loads the item.
    """

    def __init__(
        self,
        dataset_len: int,
        global_batch: int,
        *,
        world_size: int = 1,
        rank: int = 0,
        accum: int = 1,
        seed: int = 0,
        samples_seen: int = 0,
    ) -> None:
        if global_batch % (world_size * accum):
            raise TrainingError(
                f"batch_size {global_batch} does not split into {world_size} processes x {accum} micro-batches"
            )
        self.dataset_len = dataset_len
        self.global_batch = global_batch
        self.world_size = world_size
        self.rank = rank
        self.accum = accum
        self.seed = seed
        self.samples_seen = samples_seen
        self._perm: tuple[int, torch.Tensor] | None = None

    @property
    def micro_batch(self) -> int:
        """Images per micro-batch on one process."""
        return self.global_batch // (self.world_size * self.accum)

    def _key(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.dataset_len)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed + epoch)
            self._perm = (epoch, torch.randperm(self.dataset_len, generator=g))
        return epoch, int(self._perm[1][offset])

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.samples_seen
        while True:
            for chunk in range(self.rank * self.accum, (self.rank + 1) * self.accum):
                start = position + chunk * self.micro_batch
                yield [self._key(start + i) for i in range(self.micro_batch)]
            position += self.global_batch


def launch(nproc: int, argv: Sequence[str], module: str = "semsyn.cli.train") -> int:
    """Run `python -m module argv` in `nproc` processes through `torch.distributed.run` (one machine).

    Returns the exit code of the launcher (0 when every process succeeded).
    """
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(nproc),
        "-m",
        module,
        *argv,
    ]
    logger.info("launching %d processes: %s", nproc, " ".join(cmd))
    env = dict(os.environ)
    # torchrun sets one thread per process and warns about it; say so explicitly, quietly.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.run(cmd, env=env, check=False).returncode
