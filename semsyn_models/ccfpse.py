"""CC-FPSE: conditional-convolution generator and feature-pyramid semantics-embedding discriminator.

Paper: Liu, Yin, Shao, Wang, Li, "Learning to Predict Layout-to-image Conditional Convolutions for
Semantic Image Synthesis", NeurIPS 2019. Official code: https://github.com/xh-liu/CC-FPSE
(`CondConvGenerator`, `DepthsepCCBlock`, `DepthConv`, `FPSEDiscriminator`); this file is written from
the architecture notes and loads the official checkpoints key for key (official module names are kept).

The generator is SPADE's skeleton in which every residual block convolves with filters predicted from
the label map: a weight-prediction network emits, for every pixel and channel, a 3x3 depthwise kernel
(`DepthsepCCBlock`), and a label-map FPN (`labelenc*`, `labellat*`, `labeldec*`) gives every block
global context. The discriminator scores real/fake on a feature pyramid and adds a projection-style
semantic-embedding term (`semantic_embedding: false` drops it: the paper's "FP" ablation).

What differs from the official code, none of it visible in the numbers:

* the per-pixel depthwise convolution is shift and multiply over the 9 taps in custom autograd functions,
  where the official `nn.Unfold` keeps a 9x copy of the input for backward (`depthwise_impl: unfold` is that
  reference). The default, `depthwise_impl: recompute`, fuses the kernel predictor's last 3x3 conv with it,
  keeps only x and that conv's operands, and recomputes the (N, 9C, H, W) kernels in backward;
  `depthwise_impl: lean` keeps x and the kernels instead. Measured on the COCO-Stuff generator at 256x256
  on two CPU threads (benchmarks/bench_condconv.py), against unfold: memory saved by these convolutions 0.10x
  (lean 0.58x), by the whole generator 0.43x (lean 0.73x), time 0.80-0.96x with glibc's malloc (lean
  0.78-0.84x) and 1.06x where freed memory stays in the process (lean 0.90x), on an AVX2 CPU; at 128x128
  recompute takes 1.00-1.07x the reference's time (lean 0.91-0.92x). docs/performance.md has the runs and
  what to pick;
* the dead BatchNorms of the official blocks (`norm_0`, `conv_0.norm_layer`, `conv_2.norm_layer`, built but
  never called) are not built; the key table accepts and drops them;
* 5 or 6 upsamplings are a `num_upsampling_layers` field, not a consequence of `dataset_mode == cityscapes`;
* without VAE, `fc` is SPADE's 3x3 conv to 16 ngf channels (the official one emits 16 ngf * sh * sw channels,
  which crashes unless sh = sw = 1; the architecture notes count it this way too);
* `spectral_norm: false` also drops it from the shortcut conv (always spectral in the official code);
* the 128-channel hidden width of the prediction heads (hard-coded there) is `hidden_channels`;
* with `use_vae` and no z, z is drawn on the input's device with the caller's `torch.Generator`;
* a freshly built network settles its spectral norms' u, v with a few power iterations (torch draws them at
  random and eval mode uses them as stored, so an untrained model in eval would divide by a random sigma).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from semsyn.convert import OFFICIAL_FORMATS, KeyTable
from semsyn.errors import ConversionError, LabelError, SemsynError, SpecError
from semsyn.inference import fast_path_active
from semsyn.model import DiscriminatorOutput
from semsyn.registry import DISCRIMINATORS, GENERATORS, ref
from semsyn.spec import Range
from semsyn_models.fast import cc_block_eval, cc_block_supported, label_scope
from semsyn_models.layers import (
    SPADE,
    check_official_latent_size,
    generator_stages,
    init_xavier,
    lrelu,
    make_norm,
    official_latent_size,
    resize_nearest,
    spectral,
    start_fc,
    start_map,
)

__all__ = [
    "DEPTHWISE_IMPLS",
    "cond_depthwise_conv3x3",
    "predicted_cond_depthwise_conv3x3",
    "CondDepthwiseConv",
    "DepthsepCCBlock",
    "CondConvGenerator",
    "FPSEDiscriminator",
    "CCFPSEOfficialFormat",
]

logger = logging.getLogger(__name__)

DepthwiseImpl = Literal["lean", "unfold", "recompute"]
DEPTHWISE_IMPLS: tuple[str, ...] = get_args(DepthwiseImpl)
DEFAULT_DEPTHWISE_IMPL: DepthwiseImpl = "recompute"
UPSAMPLINGS = {"normal": 5, "more": 6}  # the cc generator has no "most"


# -- the conditional (per-pixel, per-channel) depthwise 3x3 convolution ------------------------------------


def _tap_slices(
    tap: int, height: int, width: int, r0: int = 0, rows: int | None = None
) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(output rows, cols), (input rows, cols) where tap (ky, kx) = divmod(tap, 3) reads inside the image.

    out[y, x] += w[tap, y, x] * in[y + ky - 1, x + kx - 1]; zero padding means the other pixels get nothing.
    For a band of output rows r0 .. r0 + rows (default: the whole image) the output rows are counted from r0,
    the input rows from the top of the image.
    """

    def axis(offset: int, n: int) -> tuple[slice, slice]:
        if offset < 0:
            return slice(1, n), slice(0, n - 1)
        if offset > 0:
            return slice(0, n - 1), slice(1, n)
        return slice(0, n), slice(0, n)

    ky, kx = divmod(tap, 3)
    (yo, _), (xo, xi) = axis(ky - 1, height), axis(kx - 1, width)
    top, bottom = max(yo.start, r0), min(yo.stop, r0 + (height if rows is None else rows))
    return (slice(top - r0, bottom - r0), xo), (slice(top + ky - 1, bottom + ky - 1), xi)


def _zero_outside(t: torch.Tensor, rows: slice, cols: slice) -> None:
    """Zero the border row / column of t (..., H, W) that `rows`, `cols` leave out (at most one of each)."""
    h, w = t.shape[-2:]
    if rows.start:
        t[..., : rows.start, :] = 0
    if rows.stop < h:
        t[..., rows.stop :, :] = 0
    if cols.start:
        t[..., :, : cols.start] = 0
    if cols.stop < w:
        t[..., :, cols.stop :] = 0


def _taps_apply(x: torch.Tensor, taps: torch.Tensor, r0: int = 0, out: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the 9 taps of taps[:, :, t] * x shifted by tap t, for output rows r0 .. r0 + R.

    x is (N, C, H, W) and taps (N, C, 9, R, W), R = H (the default: the whole image) or a band of rows;
    the (N, C, R, W) result is written into `out` if given.
    """
    h, w = x.shape[-2:]
    rows = taps.shape[-2]
    out = torch.mul(x[:, :, r0 : r0 + rows], taps[:, :, 4], out=out)  # the centre tap covers every pixel
    for t in range(9):
        if t == 4:
            continue
        (yo, xo), (yi, xi) = _tap_slices(t, h, w, r0, rows)
        out[:, :, yo, xo].addcmul_(taps[:, :, t, yo, xo], x[:, :, yi, xi])
    return out


def _taps_grad_input(
    grad: torch.Tensor, taps: torch.Tensor, r0: int = 0, out: torch.Tensor | None = None
) -> torch.Tensor:
    """d loss / d x (N, C, H, W) of `_taps_apply`, given d loss / d out and the taps (of the same rows).

    For a band (grad and taps of R < H rows from r0) the band's share is added into `out`, the whole x's
    gradient; without `out` grad and taps must cover the whole image.
    """
    rows, w = grad.shape[-2:]
    if out is None:
        out = grad * taps[:, :, 4]
    else:
        out[:, :, r0 : r0 + rows].addcmul_(taps[:, :, 4], grad)
    h = out.shape[-2]
    for t in range(9):
        if t == 4:
            continue
        (yo, xo), (yi, xi) = _tap_slices(t, h, w, r0, rows)
        out[:, :, yi, xi].addcmul_(taps[:, :, t, yo, xo], grad[:, :, yo, xo])
    return out


def _taps_grad_kernels(
    grad: torch.Tensor, x: torch.Tensor, out: torch.Tensor | None = None, r0: int = 0
) -> torch.Tensor:
    """d loss / d taps of `_taps_apply` as (N, 9 C, R, W), the weights' layout (written into `out` if given).

    Needs x (the whole image), not the taps; grad is d loss / d out for rows r0 .. r0 + R.
    """
    n, c, h, w = x.shape
    rows = grad.shape[-2]
    grad_taps = grad.new_empty(n, c, 9, rows, w) if out is None else _as_taps(out)
    for t in range(9):
        (yo, xo), (yi, xi) = _tap_slices(t, h, w, r0, rows)
        torch.mul(grad[:, :, yo, xo], x[:, :, yi, xi], out=grad_taps[:, :, t, yo, xo])
        _zero_outside(grad_taps[:, :, t], yo, xo)  # taps reading the zero padding get no gradient
    return grad_taps.view(n, 9 * c, rows, w)


def _as_taps(weights: torch.Tensor) -> torch.Tensor:
    """(N, 9 C, H, W) weights -> (N, C, 9, H, W) view."""
    n, c9, h, w = weights.shape
    return weights.view(n, c9 // 9, 9, h, w)


class _LeanCondDepthwise(torch.autograd.Function):
    """Shift-and-multiply over the 9 taps; saves only x and the weights (no unfolded copy) for backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weights)
        return _taps_apply(x, _as_taps(weights))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weights = ctx.saved_tensors
        grad_x = _taps_grad_input(grad, _as_taps(weights)) if ctx.needs_input_grad[0] else None
        grad_w = _taps_grad_kernels(grad, x) if ctx.needs_input_grad[1] else None
        return grad_x, grad_w


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast disabled on `device`, so the kernels predicted in forward and recomputed in backward agree."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


# `recompute` computes kernels of more than this many bytes in bands of rows, each at most a quarter of it.
# With glibc's malloc every fresh buffer above its 32 MiB mmap ceiling is paid again in page faults; a band
# stays in reused memory. Measured on the 256 px COCO-Stuff generator (docs/performance.md): a training step
# 0.84x unfold's time banded against 0.90x computing the kernels whole (same run); where freed memory stays
# in the process (jemalloc, tcmalloc, MALLOC_MMAP_MAX_=0) banding neither gains nor loses. Smaller kernels
# are computed whole: at 32-64 px, where the predictor is wide, the weight-gradient conv per band costs more.
# On CUDA the kernels are always computed whole (see `_band_rows`).
RECOMPUTE_BAND_BYTES = 64 * 2**20


def _band_rows(x: torch.Tensor, channels: int) -> int:
    """Rows per band of the (N, channels, H, W) kernels of x's dtype; H when they are computed whole.

    CPU only: CUDA's caching allocator has no page faults to save (and no GPU measured it).
    """
    n, _, h, w = x.shape
    row_bytes = n * channels * w * x.element_size()
    if x.device.type != "cpu" or row_bytes * h <= RECOMPUTE_BAND_BYTES:
        return h
    return max(1, RECOMPUTE_BAND_BYTES // 4 // row_bytes)


def _hidden_rows(hidden: torch.Tensor, r0: int, rows: int) -> torch.Tensor:
    """hidden's rows r0 - 1 .. r0 + rows inclusive (the band and the conv's halo), zero rows off the image."""
    h = hidden.shape[-2]
    top, bottom = max(r0 - 1, 0), min(r0 + rows + 1, h)
    pad = (top - (r0 - 1), r0 + rows + 1 - bottom)
    band = hidden[:, :, top:bottom]
    return F.pad(band, (0, 0, *pad)) if any(pad) else band


class _RecomputeCondDepthwise(torch.autograd.Function):
    """The predictor's last 3x3 conv fused with the shift-and-multiply: saves x and the conv's operands.

    The (N, 9 C, H, W) kernels live only inside forward and, recomputed, inside backward; above
    `RECOMPUTE_BAND_BYTES` they are computed a band of rows at a time and never whole. Their input `hidden`
    is the predictor's ReLU output, which ReLU keeps for its own backward anyway.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, hidden, weight, bias)
        h = x.shape[-2]
        rows = _band_rows(x, weight.shape[0])
        with _autocast_off(x.device):
            if rows >= h:
                return _taps_apply(x, _as_taps(F.conv2d(hidden, weight, bias, padding=1)))
            out = torch.empty_like(x)
            for r0 in range(0, h, rows):
                band = min(rows, h - r0)
                kernels = F.conv2d(_hidden_rows(hidden, r0, band), weight, bias, padding=(0, 1))
                _taps_apply(x, _as_taps(kernels), r0, out=out[:, :, r0 : r0 + band])
            return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, hidden, weight, bias = ctx.saved_tensors
        need_x, need_hidden, need_weight, need_bias = ctx.needs_input_grad
        h = x.shape[-2]
        rows = _band_rows(x, weight.shape[0])
        if rows >= h:
            return _recompute_backward(grad, x, hidden, weight, bias, ctx.needs_input_grad)
        # Band by band: x's and hidden's gradients collect each band's share (hidden's with the conv's halo
        # rows), the weight's and bias's add up.
        grad_x = torch.zeros_like(x) if need_x else None
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        grad_weight = grad_bias = None
        for r0 in range(0, h, rows):
            band = min(rows, h - r0)
            hid = _hidden_rows(hidden, r0, band)
            grads = _recompute_backward(
                grad[:, :, r0 : r0 + band], x, hid, weight, bias, ctx.needs_input_grad, (r0, grad_x)
            )
            if need_hidden:
                top, bottom = max(r0 - 1, 0), min(r0 + band + 1, h)
                grad_hidden[:, :, top:bottom] += grads[1][:, :, top - (r0 - 1) : bottom - (r0 - 1)]
            if need_weight:
                grad_weight = grads[2] if grad_weight is None else grad_weight.add_(grads[2])
            if need_bias:
                grad_bias = grads[3] if grad_bias is None else grad_bias.add_(grads[3])
        return grad_x, grad_hidden, grad_weight, grad_bias


def _recompute_backward(
    grad: torch.Tensor,
    x: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    needs: tuple[bool, ...],
    band: tuple[int, torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor | None, ...]:
    """`_RecomputeCondDepthwise`'s gradients, for the whole image or for one band of output rows.

    band: None (grad, hidden, x are the whole image), or (r0, grad_x) for `grad`'s rows r0 .. r0 + R: then
    `hidden` holds those rows and the conv's halo (R + 2 rows, no padding on them), x's gradient is added
    into grad_x (the whole x's, or None when x needs none) and hidden's is returned for the R + 2 rows.
    """
    need_x, need_hidden, need_weight, need_bias = needs
    r0, grad_x = (0, None) if band is None else band
    padding = 1 if band is None else (0, 1)
    grad_hidden = grad_weight = grad_bias = kernels = None
    if need_x:
        with _autocast_off(x.device):
            kernels = F.conv2d(hidden, weight, bias, padding=padding)
        grad_x = _taps_grad_input(grad, _as_taps(kernels), r0, out=grad_x)
    if need_hidden or need_weight or need_bias:
        # The kernels' gradient overwrites the kernels, done with: one 9x-wide buffer, allocated once.
        grad_kernels = _taps_grad_kernels(grad, x, out=kernels, r0=r0)
        if need_hidden:
            grad_hidden = torch.nn.grad.conv2d_input(hidden.shape, weight, grad_kernels, padding=padding)
        if need_weight:
            grad_weight = torch.nn.grad.conv2d_weight(hidden, weight.shape, grad_kernels, padding=padding)
        if need_bias:
            grad_bias = grad_kernels.sum(dim=(0, 2, 3))
    return grad_x, grad_hidden, grad_weight, grad_bias


def _unfold_cond_depthwise(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The official formula: unfold x to (N*C, 9, H, W), multiply by the weights, sum over the taps."""
    n, c, h, w = x.shape
    cols = F.unfold(x, kernel_size=3, padding=1).view(n * c, 9, h, w)
    return (weights.reshape(n * c, 9, h, w) * cols).sum(dim=1).view(n, c, h, w)


def cond_depthwise_conv3x3(
    x: torch.Tensor, weights: torch.Tensor, impl: Literal["lean", "unfold"] = "lean"
) -> torch.Tensor:
    """Per-sample, per-pixel, per-channel 3x3 convolution with zero padding and no bias.

    Args:
        x: (N, C, H, W).
        weights: (N, C * 9, H, W); channel c's taps are weight channels c*9 .. c*9+8 in row-major
            (ky, kx) order, the official `DepthConv` layout.
        impl: "lean" (shift and multiply, saves only x and weights for backward; first-order gradients only)
            or "unfold" (the official formula, keeps a 9x copy of x for backward). "recompute" needs the
            weights' predictor: see `predicted_cond_depthwise_conv3x3`.

    Returns:
        (N, C, H, W) in the promoted dtype of x and weights.
    """
    n, c, h, w = x.shape
    if tuple(weights.shape) != (n, 9 * c, h, w):
        raise SemsynError(
            f"conditional depthwise conv: weights of shape {tuple(weights.shape)} do not fit x of "
            f"shape {tuple(x.shape)}; expected {(n, 9 * c, h, w)} (9 taps per channel)"
        )
    dtype = torch.promote_types(x.dtype, weights.dtype)  # autocast may hand over mixed precisions
    x, weights = x.to(dtype), weights.to(dtype).contiguous()
    if impl == "lean":
        return _LeanCondDepthwise.apply(x, weights)
    if impl == "unfold":
        return _unfold_cond_depthwise(x, weights)
    raise SemsynError(
        f"conditional depthwise conv: impl {impl!r} is not one of 'lean', 'unfold' for ready weights "
        "('recompute' needs their predictor: call predicted_cond_depthwise_conv3x3)"
    )


def predicted_cond_depthwise_conv3x3(
    x: torch.Tensor,
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    impl: DepthwiseImpl = DEFAULT_DEPTHWISE_IMPL,
) -> torch.Tensor:
    """`cond_depthwise_conv3x3(x, F.conv2d(hidden, weight, bias, padding=1), impl)`: the weights predicted here.

    Args:
        x: (N, C, H, W).
        hidden: (N, K, H, W), the input of the weight predictor's last layer (a 3x3 conv).
        weight: (9 C, K, 3, 3), that conv's weight; output channel c*9 + tap is channel c's tap.
        bias: (9 C,) or None, that conv's bias.
        impl: "recompute" (the conv and the shift-and-multiply fused; keeps x, hidden, weight and bias for
            backward and recomputes the (N, 9 C, H, W) weights there; first-order gradients only), "lean" or
            "unfold" (the conv, then `cond_depthwise_conv3x3`, which keeps the weights).

    Returns:
        (N, C, H, W) in the promoted dtype of x, hidden and weight.
    """
    n, c, h, w = x.shape
    k = hidden.shape[1] if hidden.dim() == 4 else -1
    if tuple(hidden.shape) != (n, k, h, w) or tuple(weight.shape) != (9 * c, k, 3, 3):
        raise SemsynError(
            f"conditional depthwise conv: a predictor of weight {tuple(weight.shape)} on a hidden map of shape "
            f"{tuple(hidden.shape)} does not fit x of shape {tuple(x.shape)}; expected a weight ({9 * c}, K, 3, 3) "
            f"and a hidden map ({n}, K, {h}, {w})"
        )
    if impl != "recompute":
        return cond_depthwise_conv3x3(x, F.conv2d(hidden, weight, bias, padding=1), impl)
    dtype = torch.promote_types(torch.promote_types(x.dtype, hidden.dtype), weight.dtype)
    bias = None if bias is None else bias.to(dtype)
    return _RecomputeCondDepthwise.apply(x.to(dtype), hidden.to(dtype).contiguous(), weight.to(dtype), bias)


class CondDepthwiseConv(nn.Module):
    """The official `DepthConv` (without its unused BatchNorm) with the last layer of its weight predictor.

    Parameter-free: the predictor's 3x3 conv stays in the predictor (the official `gen_weights*` heads) and
    is handed over at each call, so that `depthwise_impl: recompute` can fuse it with the convolution.

    Args:
        impl: "recompute" (default), "lean" or "unfold" (the official formula); outputs agree to float
            tolerance, see `predicted_cond_depthwise_conv3x3`.
    """

    def __init__(self, impl: DepthwiseImpl = DEFAULT_DEPTHWISE_IMPL) -> None:
        super().__init__()
        if impl not in DEPTHWISE_IMPLS:
            raise SpecError(f"depthwise_impl {impl!r} is not one of {', '.join(map(repr, DEPTHWISE_IMPLS))}")
        self.impl = impl

    def forward(self, x: torch.Tensor, hidden: torch.Tensor, predictor: nn.Conv2d) -> torch.Tensor:
        """x (N, C, H, W), hidden (N, K, H, W), predictor a 3x3 conv K -> 9 C -> (N, C, H, W)."""
        return predicted_cond_depthwise_conv3x3(x, hidden, predictor.weight, predictor.bias, self.impl)

    def extra_repr(self) -> str:
        return f"impl={self.impl!r}"


# -- generator blocks -------------------------------------------------------------------------------------


def _conv_norm_act(
    cin: int, cout: int, kernel_size: int, stride: int, norm: nn.Module, spectral_norm: bool
) -> nn.Sequential:
    """Official `norm_layer(conv) + LeakyReLU`: Sequential(Sequential(SN conv without bias, norm), LReLU).

    The nesting keeps the official keys (`<name>.0.0.weight_orig`, `<name>.0.1.running_mean`).
    """
    conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
    return nn.Sequential(nn.Sequential(spectral(conv, spectral_norm), norm), nn.LeakyReLU(0.2))


def _prediction_head(cond_channels: int, hidden: int, out_channels: int, gate: bool) -> nn.Sequential:
    """conv3x3(cond -> hidden) + ReLU + conv3x3(hidden -> out) [+ Sigmoid]: a weight-prediction branch."""
    layers: list[nn.Module] = [
        nn.Conv2d(cond_channels, hidden, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(hidden, out_channels, 3, padding=1),
    ]
    return nn.Sequential(*layers, nn.Sigmoid()) if gate else nn.Sequential(*layers)


class DepthsepCCBlock(nn.Module):
    """Residual block with label-predicted depthwise-separable convolutions.

    main: BN -> conditional depthwise 3x3 (`conv_0`, predicted by `gen_weights1`) -> 1x1 `conv_1` -> x SE gate
    (`gen_se_weights1`, per pixel and channel) -> LReLU -> BN -> `conv_2` / `conv_3` / `gen_se_weights2` likewise.
    shortcut (fin != fout): SPADE with param-free BN on the conditioning map -> spectral 1x1 `conv_s`.

    Args:
        fin: input channels.
        fout: output channels.
        cond_channels: channels of the conditioning map (label channels + label-FPN width).
        hidden_channels: width of every prediction head and of the shortcut SPADE (official 128).
        spectral_norm: spectral norm on `conv_s` (the 1x1 convs of the main path have none, officially).
        depthwise_impl: implementation of the conditional depthwise convolution ("lean", "unfold" or
            "recompute"; see `predicted_cond_depthwise_conv3x3`).
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        cond_channels: int,
        *,
        hidden_channels: Annotated[int, Range(ge=1)] = 128,
        spectral_norm: bool = True,
        depthwise_impl: DepthwiseImpl = DEFAULT_DEPTHWISE_IMPL,
    ) -> None:
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.gen_weights1 = _prediction_head(cond_channels, hidden_channels, fin * 9, gate=False)
        self.gen_weights2 = _prediction_head(cond_channels, hidden_channels, fmiddle * 9, gate=False)
        self.gen_se_weights1 = _prediction_head(cond_channels, hidden_channels, fmiddle, gate=True)
        self.gen_se_weights2 = _prediction_head(cond_channels, hidden_channels, fout, gate=True)
        self.norm_1 = nn.BatchNorm2d(fin)
        self.conv_0 = CondDepthwiseConv(depthwise_impl)
        self.conv_1 = nn.Conv2d(fin, fmiddle, 1)
        self.norm_2 = nn.BatchNorm2d(fmiddle)
        self.conv_2 = CondDepthwiseConv(depthwise_impl)
        self.conv_3 = nn.Conv2d(fmiddle, fout, 1)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, cond_channels, norm="batch", hidden_channels=hidden_channels)
            self.conv_s = spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral_norm)

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor, *, sources: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """x (N, fin, H, W), cond (N, cond_channels, h, w) -> (N, fout, H, W); cond is resized to x (nearest).

        `sources`: (label map, label-FPN map) when cond is cat(label map resized to x, label-FPN map) at x's
        size, as the generator makes it; in eval without autograd the block then runs `fast.cc_block_eval`.
        """
        if sources is not None and fast_path_active(self) and cc_block_supported(self):
            return cc_block_eval(self, x, cond, *sources)
        cond = resize_nearest(cond, x.shape[-2:])
        x_s = self.conv_s(self.norm_s(x, cond)) if self.learned_shortcut else x
        heads = self.heads()
        return x_s + self.residual(x, lambda i: heads[i][:2](cond))

    def heads(self) -> list[nn.Sequential]:
        """The prediction heads, in the order `residual` asks for their hidden maps."""
        return [self.gen_weights1, self.gen_se_weights1, self.gen_weights2, self.gen_se_weights2]

    def residual(self, x: torch.Tensor, hidden: Callable[[int], torch.Tensor]) -> torch.Tensor:
        """The main (non-shortcut) branch; hidden(i) gives head i's first conv + ReLU on the conditioning map.

        Each predicted tensor is made right before its use, so at most one 9x-wide map is alive in forward.
        The kernel heads' last conv runs inside conv_0 / conv_2, which may fuse it (depthwise_impl: recompute).
        """
        weights1, se1, weights2, se2 = self.heads()
        dx = self.conv_0(self.norm_1(x), hidden(0), weights1[-1])
        dx = lrelu(self.conv_1(dx) * se1[2:](hidden(1)))
        dx = self.conv_2(self.norm_2(dx), hidden(2), weights2[-1])
        return lrelu(self.conv_3(dx) * se2[2:](hidden(3)))


@GENERATORS.register("cc", test_params={"ngf": 2, "hidden_channels": 8})
class CondConvGenerator(nn.Module):
    """The CC-FPSE generator: SPADE's skeleton with conditional-convolution blocks and a label-map FPN.

    Stages (channels in units of ngf): fc -> 16 @ (sh, sw); head_0 16; up; G_middle_0 16; [up if more];
    G_middle_1 16; up; up_0 8; up; up_1 4; up; up_2 2; up; up_3 1; conv_img -> 3; tanh. Every block is
    conditioned on cat(label map resized to its size, the label FPN's map at that size).

    Args:
        label_channels: input channels (injected from the label schema).
        image_size: (H, W) (injected); must be (sh, sw) * 2^n, as the label FPN halves the map n times.
        ngf: base width (the last block's channels and the label FPN's width).
        num_upsampling_layers: "normal" (5 upsamplings) or "more" (6; the official Cityscapes models).
        use_vae: start from z (N, z_dim) through a Linear layer (trained with the `spade-conv` encoder and
            the KL loss; all official models) instead of a conv on the downsampled label map.
        z_dim: size of z (only with use_vae).
        spectral_norm: spectral norm on the label FPN's convs and the blocks' shortcut convs.
        hidden_channels: width of the weight-prediction heads and shortcut SPADEs (official 128).
        depthwise_impl: "recompute" (default, the least memory), "lean" (keeps the predicted kernels for
            backward: faster at small sizes) or "unfold" (the official formula); see
            `predicted_cond_depthwise_conv3x3`.
    """

    def __init__(
        self,
        label_channels: int,
        image_size: tuple[int, int],
        ngf: Annotated[int, Range(ge=1)] = 64,
        num_upsampling_layers: Literal["normal", "more"] = "normal",
        use_vae: bool = True,
        z_dim: Annotated[int, Range(ge=1)] = 256,
        spectral_norm: bool = True,
        hidden_channels: Annotated[int, Range(ge=1)] = 128,
        depthwise_impl: DepthwiseImpl = DEFAULT_DEPTHWISE_IMPL,
    ) -> None:
        super().__init__()
        if num_upsampling_layers not in UPSAMPLINGS:
            raise SpecError(
                f"generator field 'num_upsampling_layers': {num_upsampling_layers!r} is not one of "
                f"{', '.join(map(repr, UPSAMPLINGS))} for the cc generator"
            )
        n = UPSAMPLINGS[num_upsampling_layers]
        self.ngf, self.use_vae, self.z_dim = ngf, use_vae, z_dim
        self.sh, self.sw = official_latent_size(tuple(image_size), num_upsampling_layers)
        self.output_size = (self.sh << n, self.sw << n)
        if min(self.sh, self.sw) < 1 or self.output_size != tuple(image_size):
            raise SpecError(
                f"field 'image_size': {list(image_size)} does not suit the cc generator with "
                f"num_upsampling_layers={num_upsampling_layers!r}: its label FPN halves the map {n} times, so "
                f"height and width must be multiples of {2**n} with an integral aspect ratio, e.g. "
                f"[{max(self.sh, 1) << n}, {max(self.sw, 1) << n}]"
            )
        self.fc = start_fc(label_channels, 16 * ngf, use_vae=use_vae, z_dim=z_dim, size=(self.sh, self.sw))
        self._build_label_fpn(label_channels, ngf, n, spectral_norm)
        # official module names, so the official keys map one to one
        stages = generator_stages(ngf, num_upsampling_layers)
        self.schedule = [(name, up) for name, _, _, up in stages]
        for name, fin, fout, _ in stages:
            self.add_module(
                name,
                DepthsepCCBlock(
                    fin,
                    fout,
                    label_channels + ngf,
                    hidden_channels=hidden_channels,
                    spectral_norm=spectral_norm,
                    depthwise_impl=depthwise_impl,
                ),
            )
        self.conv_img = nn.Conv2d(ngf, 3, 3, padding=1)
        self.num_fpn_levels = n + 1
        init_xavier(self)  # settles the spectral norms too

    def _build_label_fpn(self, label_channels: int, nf: int, n: int, spectral_norm: bool) -> None:
        """labelenc1 (stride 1) .. labelenc{n+1} (stride 2), laterals labellat1..n (1x1), decoders labeldec1..n."""
        for i in range(1, n + 2):
            cin, stride = (label_channels, 1) if i == 1 else (nf, 2)
            self.add_module(f"labelenc{i}", _conv_norm_act(cin, nf, 3, stride, nn.BatchNorm2d(nf), spectral_norm))
        for i in range(1, n + 1):
            self.add_module(f"labellat{i}", _conv_norm_act(nf, nf, 1, 1, nn.BatchNorm2d(nf), spectral_norm))
            self.add_module(f"labeldec{i}", _conv_norm_act(nf, nf, 3, 1, nn.BatchNorm2d(nf), spectral_norm))

    def _label_fpn(self, semantics: torch.Tensor) -> list[torch.Tensor]:
        """The label FPN's maps, coarsest (1/2^n) first, full resolution last."""
        levels = self.num_fpn_levels
        bottom_up, h = [], semantics
        for i in range(1, levels + 1):
            h = getattr(self, f"labelenc{i}")(h)
            bottom_up.append(h)
        top_down = [bottom_up[-1]]
        for i in range(1, levels):
            lateral = getattr(self, f"labellat{i}")(bottom_up[-1 - i])
            merged = F.interpolate(top_down[-1], scale_factor=2, mode="nearest") + lateral
            top_down.append(getattr(self, f"labeldec{i}")(merged))
        return top_down

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Semantics (N, label_channels, H, W) (+ z (N, z_dim) with use_vae) -> image (N, 3, H, W) in [-1, 1]."""
        if tuple(semantics.shape[-2:]) != self.output_size:
            raise LabelError(
                f"the label map is {tuple(semantics.shape[-2:])} (H, W) but this cc generator was built for "
                f"{self.output_size}: its label FPN needs exactly that size; resize the label map (nearest) or "
                "build the model with that image_size"
            )
        x = start_map(
            self.fc,
            semantics,
            z,
            generator,
            use_vae=self.use_vae,
            z_dim=self.z_dim,
            size=(self.sh, self.sw),
            family="cc",
        )
        fpn = self._label_fpn(semantics)
        level = 0
        fast = fast_path_active(self)
        with label_scope(semantics, fast):  # the blocks share one decoding of a binary label map
            for name, upsample in self.schedule:
                if upsample:
                    x = F.interpolate(x, scale_factor=2, mode="nearest")
                    level += 1
                cond = torch.cat([resize_nearest(semantics, x.shape[-2:]), fpn[level]], dim=1)
                x = getattr(self, name)(x, cond, sources=(semantics, fpn[level]) if fast else None)
        return torch.tanh(self.conv_img(lrelu(x)))


# -- discriminator ----------------------------------------------------------------------------------------


@DISCRIMINATORS.register("fpse", test_params={"ndf": 4})
class FPSEDiscriminator(nn.Module):
    """Feature-pyramid semantics-embedding discriminator.

    Bottom-up enc1..enc5 (3x3 stride 2, image only), top-down lat2..lat5 (1x1) with bilinear x2, then
    final2/3/4 at 1/4, 1/8, 1/16. Each scale scores `tf(f)` (patch real/fake) plus, with the semantic
    embedding, sum_c embedding(label)_c * seg(f)_c: the label map embedded by a 1x1 conv and average-pooled
    to that scale, projected on the features (a per-pixel projection discriminator).

    Output: logits at 1/4, 1/8, 1/16; features [[enc2], [enc3], [enc4], [enc5]] (one per "scale"), so a
    feature-matching loss that divides by the number of scales gives the official sum over the four maps / 4.

    Args:
        label_channels: channels of the label map (injected).
        ndf: base width.
        semantic_embedding: add the semantic-embedding score (False: the "FP" ablation, no `seg` and
            `embedding` layers, logits independent of the label map).
        norm: registered param-free norm after each conv of the pyramid (the convs then have no bias).
        spectral_norm: spectral norm on the pyramid's convs (tf, seg, embedding have none, officially).
    """

    def __init__(
        self,
        label_channels: int,
        ndf: Annotated[int, Range(ge=1)] = 64,
        semantic_embedding: bool = True,
        norm: ref("norm") = "instance",
        spectral_norm: bool = True,
    ) -> None:
        super().__init__()
        self.semantic_embedding = semantic_embedding

        def layer(cin: int, cout: int, kernel_size: int, stride: int = 1) -> nn.Sequential:
            return _conv_norm_act(cin, cout, kernel_size, stride, make_norm(norm, cout), spectral_norm)

        widths = [3, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf]
        for i in range(1, 6):
            self.add_module(f"enc{i}", layer(widths[i - 1], widths[i], 3, stride=2))
        for i in range(2, 6):
            self.add_module(f"lat{i}", layer(widths[i], 4 * ndf, 1))
        for i in range(2, 5):
            self.add_module(f"final{i}", layer(4 * ndf, 2 * ndf, 3))
        self.tf = nn.Conv2d(2 * ndf, 1, 1)
        if semantic_embedding:
            self.seg = nn.Conv2d(2 * ndf, 2 * ndf, 1)
            self.embedding = nn.Conv2d(label_channels, 2 * ndf, 1)
        init_xavier(self)  # settles the spectral norms too

    def forward(self, image: torch.Tensor, semantics: torch.Tensor) -> DiscriminatorOutput:
        """image (N, 3, H, W), semantics (N, label_channels, H, W) -> logits at 1/4, 1/8, 1/16 and features."""
        bottom_up, h = [], image
        for i in range(1, 6):
            h = getattr(self, f"enc{i}")(h)
            bottom_up.append(h)
        f12, f13, f14, f15 = bottom_up[1:]
        f25 = self.lat5(f15)
        f24 = _up_bilinear(f25) + self.lat4(f14)
        f23 = _up_bilinear(f24) + self.lat3(f13)
        f22 = _up_bilinear(f23) + self.lat2(f12)
        finals = [self.final2(f22), self.final3(f23), self.final4(f24)]
        logits = [self.tf(f) for f in finals]
        if self.semantic_embedding:
            emb = self.embedding(resize_nearest(semantics, image.shape[-2:]))
            pooled = []
            for _ in range(4):  # 1/2, 1/4, 1/8, 1/16; the scores use the last three
                emb = F.avg_pool2d(emb, kernel_size=2, stride=2)
                pooled.append(emb)
            logits = [p + (e * self.seg(f)).sum(dim=1, keepdim=True) for p, e, f in zip(logits, pooled[1:], finals)]
        return DiscriminatorOutput(logits=logits, features=[[f12], [f13], [f14], [f15]])


def _up_bilinear(x: torch.Tensor) -> torch.Tensor:
    """x2 bilinear, align_corners False: the official `nn.Upsample(scale_factor=2, mode='bilinear')`."""
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


# -- official checkpoints (xh-liu/CC-FPSE) ----------------------------------------------------------------

GENERATOR_KEYS = KeyTable(
    (
        # parity: BatchNorms the official blocks build but never call; accepted at load time and not carried.
        (
            r"(?:head_0|G_middle_[01]|up_[0-3])\.(?:norm_0|conv_[02]\.norm_layer)\."
            r"(?:weight|bias|running_mean|running_var|num_batches_tracked)",
            None,
        ),
        (r"(.*)", r"\1"),
    )
)
DISCRIMINATOR_KEYS = KeyTable()  # the modules keep the official names: every key maps to itself
_NORM_G = ("spectralsync_batch", "spectralbatch")  # the official code crashes on a norm_G without 'spectral'


class CCFPSEOfficialFormat:
    """xh-liu/CC-FPSE checkpoints: `CondConvGenerator` (netG condconv), its encoder, `FPSEDiscriminator`."""

    def section(self, part: str, opt: Mapping[str, Any]) -> dict[str, Any] | None:
        """The spec section of `part` the official options describe; None when they name another family."""
        if part == "discriminator":
            if opt.get("netD") != "fpse":
                return None
            _check_option(opt, "norm_D", "spectralinstance", ("spectralinstance",))
            return {
                "name": "fpse",
                "ndf": int(opt.get("ndf", 64)),
                "semantic_embedding": True,
                "norm": "instance",
                "spectral_norm": True,
            }
        if opt.get("netG") != "condconv":
            return None
        if part == "encoder":
            # CC-FPSE's encoder is SPADE's ConvEncoder; its width is ngf (nef is unused).
            _check_option(opt, "norm_E", "spectralinstance", ("spectralinstance",))
            return {"name": "spade-conv", "ndf": int(opt.get("ngf", 64))} if opt.get("use_vae") else None
        if part != "generator":
            return None
        _check_option(opt, "norm_G", "spectralsync_batch", _NORM_G)
        # parity: the official class has no upsampling option; dataset_mode cityscapes means 6.
        upsampling = "more" if opt.get("dataset_mode") == "cityscapes" else "normal"
        check_official_latent_size(opt, upsampling)
        return {
            "name": "cc",
            "ngf": int(opt.get("ngf", 64)),
            "num_upsampling_layers": upsampling,
            "use_vae": bool(opt.get("use_vae", False)),
            "z_dim": int(opt.get("z_dim", 256)),
            "spectral_norm": True,
            "hidden_channels": 128,
        }

    def key_table(self, part: str, opt: Mapping[str, Any]) -> KeyTable:
        """Official keys -> semsyn keys: identity, minus the dead BatchNorms; the encoder's is SPADE's."""
        if part == "generator":
            return GENERATOR_KEYS
        if part == "discriminator":
            return DISCRIMINATOR_KEYS
        if "spade" not in OFFICIAL_FORMATS:
            raise ConversionError(
                "converting a CC-FPSE encoder needs the 'spade' official format (the encoder "
                "is SPADE's ConvEncoder); install or import the SPADE family"
            )
        return OFFICIAL_FORMATS.get("spade").key_table("encoder", {**opt, "netG": "spade"})


def _check_option(opt: Mapping[str, Any], field: str, default: str, supported: tuple[str, ...]) -> None:
    value = str(opt.get(field, default))
    if value not in supported:
        raise ConversionError(
            f"options field {field} = {value!r}: semsyn converts CC-FPSE checkpoints with "
            f"{' or '.join(map(repr, supported))} only"
        )


OFFICIAL_FORMATS.register("ccfpse")(CCFPSEOfficialFormat())
