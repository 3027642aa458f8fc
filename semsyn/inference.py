"""The inference path's switches: whether eval-time fast paths run, and which dtype a device can run.

Families (in `semsyn_models`) take eval-only shortcuts when a module is in eval mode and autograd is off
(`fast_path_active`): spectral norm's `weight / sigma` computed once from the stored vectors and reused until
a weight changes, SPADE's three modulations per block fused, its label-map convs computed from the codes of
a binary label map (`semsyn_models.fast`; docs/performance.md). Training never sees them: a
module in train mode, or any forward with autograd on, takes the plain path. `reference_path()` turns
every shortcut off, so tests and benchmarks can compare against the plain code in the same process.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

import torch
from torch import nn

from semsyn.errors import SemsynError

__all__ = ["fast_path_active", "reference_path", "resolve_dtype", "bf16_supported", "DTYPES"]

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
_local = threading.local()


def fast_path_active(module: nn.Module) -> bool:
    """Whether `module` may take eval-only shortcuts now: eval mode, autograd off, not inside `reference_path`."""
    return not module.training and not torch.is_grad_enabled() and not getattr(_local, "reference", False)


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Within this block (this thread) every module computes as in training-free plain PyTorch: no shortcuts."""
    before = getattr(_local, "reference", False)
    _local.reference = True
    try:
        yield
    finally:
        _local.reference = before


def bf16_supported(device: torch.device | str) -> bool:
    """Whether `device` runs bfloat16 convolutions natively (CUDA with bf16, or a CPU with AVX-512 BF16 / AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check()) if check is not None else False
    return False


def resolve_dtype(dtype: torch.dtype | str | None, device: torch.device | str | None) -> torch.dtype | None:
    """A `dtype=` argument (torch dtype or "float32" / "bfloat16") -> the dtype to run, or None (keep float32).

    bfloat16 on a device without native bf16 falls back to float32 with a warning: emulated bf16 is slower
    than float32 there, and the model's numbers would change for nothing.

    Raises:
        SemsynError: a dtype other than float32 / bfloat16.
    """
    if dtype is None:
        return None
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise SemsynError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype]
    if dtype not in (torch.float32, torch.bfloat16):
        raise SemsynError(f"dtype {dtype} is not supported; use torch.float32 or torch.bfloat16")
    where = torch.device(device) if device is not None else torch.device("cpu")
    if dtype == torch.bfloat16 and not bf16_supported(where):
        logger.warning("%s has no native bfloat16 convolutions; running float32 instead", where)
        return torch.float32
    return dtype
