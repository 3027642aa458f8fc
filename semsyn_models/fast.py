"""Eval-only shortcuts of the shared blocks: cached spectral-norm weights and SPADE's folded modulation.

Both run only when `semsyn.inference.fast_path_active` says so (eval mode, autograd off, no
`reference_path`), so training and any forward that needs gradients take the plain code. Each keeps what it
precomputes with a key made of the storages and version counters of the tensors it came from: an optimizer
step, `load_state_dict`, `.to()` or any in-place edit changes the key, and the next call recomputes.

* Spectral norm: in eval, torch recomputes `weight_orig / sigma` (sigma from the stored u, v) on every call;
  here it is computed the same way, by the same function, once.
* SPADE residual block: the three cond-norms of a block read the same resized label map, so their
  `mlp_shared` convs run as one conv (outputs concatenated); each norm's `mlp_gamma` and `mlp_beta` run as
  one conv; `x_hat * (1 + gamma) + beta` is computed in place, in the plain path's order (an `addcmul`
  rounds once, as an FMA, and moved a calibrated image by 1.3e-5). The concatenated convs gave the separate
  convs' outputs bit for bit (measured on CPU), so with the dense label-map conv the block's output is the
  plain path's exactly (tests/test_inference.py). With FOLD_BATCH_NORM (off), batch-norm running
  statistics (x_hat = a x + b per channel) are folded into the gamma/beta weights and the modulation is one
  `addcmul`: exact in real arithmetic, rounded otherwise.
* Label-map convs on a binary map (`label_scope`): a one-hot label map (plus, say, an instance-edge
  channel) has at most a few ones per pixel, so the `mlp_shared` conv of such a map is a sum of a few
  weight columns per tap. Where the whole window holds the same codes (the inside of a label region),
  the output is one precomputed column per code; only the pixels near a boundary or the image border
  sum their window's columns (`embedding_bag`). Exact up to the order of a few float additions; the
  dense conv's multiplications by zero are skipped. A map that is not binary, or has more than
  MAX_CODES ones at some pixel, takes the conv.
* CC-FPSE block (`cc_block_eval`): the first convs of a block's four prediction heads (and of its shortcut
  SPADE) read the same conditioning map, cat(label map, label-FPN map), so they run as one conv; on a
  binary label map its label part is the binary label-map conv above and only the FPN part is a dense conv.
  Exact up to rounding, like the SPADE block.
* bf16: a bfloat16 model's SPADE blocks run channels-last (BF16_CHANNELS_LAST), oneDNN's faster bf16
  layout; fp32 stays NCHW, within 1e-5 of the plain path.
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from semsyn.inference import fast_path_active

# Channels-last eval for fp32 SPADE blocks: off; faster at 256 px, but its other reduction order moves a
# calibrated image by up to 2.4e-5 (over the 1e-5 budget). docs/performance.md.
CHANNELS_LAST = False
# Channels-last eval for bf16 models only: oneDNN's bf16 convolutions run faster in it, and bf16 promises PSNR
# >= 40 dB against fp32, not fp32's 1e-5 (docs/performance.md).
BF16_CHANNELS_LAST = True
# Folding batch-norm running statistics into the gamma/beta conv: off, measured no faster (1.34x against 1.33x
# at 256 px, within noise) while its rounding grows with |mean| / std. docs/performance.md.
FOLD_BATCH_NORM = False
# The binary label-map conv (module docstring); False runs the dense conv always.
BINARY_LABEL_CONV = True
# Most ones per pixel the binary label-map conv handles (one-hot labels + instance edges need 2).
MAX_CODES = 4

__all__ = [
    "CachedSpectralNorm",
    "cache_spectral_norm",
    "cc_block_eval",
    "cc_block_supported",
    "spade_block_eval",
    "TensorsKey",
    "label_scope",
]


class TensorsKey:
    """Which tensors, at which versions: stale once any is replaced, moved, cast or edited in place.

    Holds weak references, so a replaced tensor is neither kept alive nor mistaken for a new one at its address.
    """

    def __init__(self, tensors: list[torch.Tensor]) -> None:
        self.refs = [(weakref.ref(t), t._version) for t in tensors]

    def matches(self, tensors: list[torch.Tensor]) -> bool:
        """Whether `tensors` are the same objects, none edited since."""
        return len(tensors) == len(self.refs) and all(
            ref() is t and version == t._version for (ref, version), t in zip(self.refs, tensors, strict=True)
        )


class CachedSpectralNorm(SpectralNorm):
    """torch's SpectralNorm hook whose eval weight (`weight_orig / sigma`, stored u and v) is computed once.

    In train mode, or with autograd on, it is torch's hook unchanged (power iteration, live parameters).
    """

    def __call__(self, module: nn.Module, inputs: Any) -> None:
        if not fast_path_active(module):
            self._cached = None
            return super().__call__(module, inputs)
        name = self.name
        sources = [getattr(module, f"{name}_{s}") for s in ("orig", "u", "v")]
        cached = getattr(self, "_cached", None)
        if cached is None or not cached[0].matches(sources):
            # A plain tensor even under inference_mode, so a later no_grad forward may use it too.
            with torch.inference_mode(False), torch.no_grad():
                cached = (TensorsKey(sources), self.compute_weight(module, do_power_iteration=False))
            self._cached = cached
        setattr(module, name, cached[1])
        return None


def cache_spectral_norm(module: nn.Module) -> nn.Module:
    """Turn the spectral-norm hooks of `module` (not its children) into `CachedSpectralNorm`; returns module."""
    for hook in module._forward_pre_hooks.values():
        if type(hook) is SpectralNorm:
            hook.__class__ = CachedSpectralNorm
    return module


# -- SPADE residual block --------------------------------------------------------------------------------


def _bn_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(a, b) with norm(x) = a x + b per channel, for a parameter-free batch norm in eval; else None."""
    if not FOLD_BATCH_NORM or not isinstance(norm, nn.modules.batchnorm._BatchNorm) or norm.training:
        return None
    if norm.running_var is None:
        return None
    if norm.affine:
        return None
    a = (norm.running_var.double() + norm.eps).rsqrt()
    return a, -norm.running_mean.double() * a


def _norm_plan(spade: nn.Module) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """One conv for gamma and beta of a SPADE: (weight, bias, folded); the output's halves are gamma and beta.

    out = x_hat * (1 + gamma) + beta. With x_hat = a x + b folded: out = x * G' + B' where G' = a (1 + gamma)
    and B' = b (1 + gamma) + beta, both linear in the hidden map, so convs too; the halves are then G', B'.
    """
    wg, bg = spade.mlp_gamma.weight.double(), spade.mlp_gamma.bias.double()
    wb, bb = spade.mlp_beta.weight.double(), spade.mlp_beta.bias.double()
    affine = _bn_affine(spade.param_free_norm)
    if affine is not None:
        a, b = affine
        bg = bg + 1.0
        wg, bg, wb, bb = wg * a[:, None, None, None], bg * a, wg * b[:, None, None, None] + wb, bg * b + bb
    dtype = spade.mlp_gamma.weight.dtype
    return torch.cat([wg, wb]).to(dtype), torch.cat([bg, bb]).to(dtype), affine is not None


def _block_norms(block: nn.Module) -> list[nn.Module]:
    return [block.norm_0, block.norm_1] + ([block.norm_s] if block.learned_shortcut else [])


def _block_plan(block: nn.Module) -> dict[str, Any]:
    norms = _block_norms(block)
    tensors = [t for n in norms for t in (*n.parameters(), *n.buffers())]
    plan = getattr(block, "_eval_plan", None)
    if plan is not None and plan["key"].matches(tensors):
        return plan
    with torch.inference_mode(False), torch.no_grad():
        shared = [n.mlp_shared[0] for n in norms]
        plan = {
            "key": TensorsKey(tensors),
            "shared_weight": _cl(torch.cat([c.weight for c in shared])),
            "shared_bias": torch.cat([c.bias for c in shared]),
            "shared_pad": shared[0].padding,
            "hidden": [c.out_channels for c in shared],
            "norms": [(_cl(w), b, folded) for w, b, folded in map(_norm_plan, norms)],
            "pad": [n.mlp_gamma.padding for n in norms],
        }
    block._eval_plan = plan
    return plan


def _channels_last(t: torch.Tensor) -> bool:
    """Whether eval tensors of t's dtype run channels-last (CHANNELS_LAST, or BF16_CHANNELS_LAST for bf16)."""
    return CHANNELS_LAST or (BF16_CHANNELS_LAST and t.dtype == torch.bfloat16)


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if _channels_last(t) else t


def _conv_eval(block: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
    """Conv `name` of the block with its eval weight (spectral norm's, cached; channels-last with CHANNELS_LAST)."""
    conv = getattr(block, name)
    sources = [getattr(conv, "weight_orig", None), getattr(conv, "weight_u", None), getattr(conv, "weight_v", None)]
    sources = [t for t in sources if t is not None] or [conv.weight]
    weights = block.__dict__.setdefault("_eval_weights", {})
    cached = weights.get(name)
    if cached is None or not cached[0].matches(sources):
        for hook in conv._forward_pre_hooks.values():  # spectral norm's (only): sets conv.weight
            hook(conv, (x,))
        with torch.inference_mode(False), torch.no_grad():
            cached = weights[name] = (TensorsKey(sources), _cl(conv.weight))
    return F.conv2d(x, cached[1], conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def spade_block_supported(block: nn.Module) -> bool:
    """Whether a SPADEResnetBlock's norms are all plain `SPADE` with equal mlp_shared geometry (one conv)."""
    from semsyn_models.layers import SPADE

    norms = _block_norms(block)
    if any(type(n) is not SPADE or not isinstance(n.mlp_shared[1], nn.ReLU) for n in norms):
        return False
    convs = [block.conv_0, block.conv_1] + ([block.conv_s] if block.learned_shortcut else [])
    for conv in convs:  # plain convs whose only hooks are spectral norm's
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or conv._forward_hooks:
            return False
        if any(not isinstance(h, SpectralNorm) for h in conv._forward_pre_hooks.values()):
            return False
    geometry = {(n.mlp_shared[0].kernel_size, n.mlp_shared[0].padding, n.mlp_shared[0].bias is not None) for n in norms}
    return len(geometry) == 1 and next(iter(geometry))[2]


def spade_block_eval(block: nn.Module, x: torch.Tensor, semantics: torch.Tensor) -> torch.Tensor:
    """SPADEResnetBlock.forward in eval without autograd, the work of its three SPADEs shared and folded."""
    from semsyn_models.layers import resize_nearest

    plan = _block_plan(block)
    x = _cl(x)
    codes = _scope_codes(semantics, x.shape[-2:])
    if codes is not None and _binary_conv_supported(plan):
        actv = _binary_conv(codes, plan, semantics.shape[1], channels_last=_channels_last(x)).relu_()
    else:
        seg = _cl(resize_nearest(semantics, x.shape[-2:]))
        actv = F.conv2d(seg, plan["shared_weight"], plan["shared_bias"], padding=plan["shared_pad"]).relu_()
    hiddens = actv.split(plan["hidden"], dim=1)
    norms = _block_norms(block)

    def modulate(i: int, t: torch.Tensor) -> torch.Tensor:
        weight, bias, folded = plan["norms"][i]
        gb = F.conv2d(hiddens[i], weight, bias, padding=plan["pad"][i])
        g, b = gb.chunk(2, dim=1)
        if folded:
            return torch.addcmul(b, t, g)
        # The plain path's operations in its order, in place: rounded after the product and after the sum, as
        # there (addcmul is one FMA on CPU, rounded once; it moved a calibrated image by 1.3e-5).
        return g.add_(1).mul_(norms[i].param_free_norm(t)).add_(b)

    shortcut = _conv_eval(block, "conv_s", modulate(2, x)) if block.learned_shortcut else x
    dx = _conv_eval(block, "conv_0", F.leaky_relu(modulate(0, x), 0.2, inplace=True))
    dx = _conv_eval(block, "conv_1", F.leaky_relu(modulate(1, dx), 0.2, inplace=True))
    return shortcut + dx


# -- CC-FPSE conditional-convolution block ---------------------------------------------------------------


def _cc_first_convs(block: nn.Module) -> list[nn.Module]:
    """The convs that read the block's conditioning map: each head's first, and the shortcut SPADE's shared one."""
    convs = [head[0] for head in block.heads()]
    return convs + ([block.norm_s.mlp_shared[0]] if block.learned_shortcut else [])


def cc_block_supported(block: nn.Module) -> bool:
    """Whether a DepthsepCCBlock's convs on the conditioning map are plain, biased, ReLU-followed convs of one
    geometry (so that they run as one conv), and its shortcut norm a plain `SPADE`."""
    from semsyn_models.layers import SPADE

    for head in block.heads():
        if not isinstance(head, nn.Sequential) or len(head) < 3 or type(head[1]) is not nn.ReLU:
            return False
    if block.learned_shortcut and (type(block.norm_s) is not SPADE or type(block.norm_s.mlp_shared[1]) is not nn.ReLU):
        return False
    convs = _cc_first_convs(block)
    for conv in convs:
        if type(conv) is not nn.Conv2d or conv._forward_pre_hooks or conv._forward_hooks or conv.bias is None:
            return False
        if conv.padding_mode != "zeros" or conv.groups != 1 or conv.stride != (1, 1) or conv.dilation != (1, 1):
            return False
    return len({(conv.kernel_size, conv.padding, conv.in_channels) for conv in convs}) == 1


def _cc_plan(block: nn.Module, label_channels: int) -> dict[str, Any]:
    """The block's first convs as one (weight, bias), and its label-map part as a binary-conv plan."""
    convs = _cc_first_convs(block)
    tensors = [t for conv in convs for t in (conv.weight, conv.bias)]
    plan = getattr(block, "_eval_plan", None)
    if plan is not None and plan["key"].matches(tensors) and plan["label_channels"] == label_channels:
        return plan
    with torch.inference_mode(False), torch.no_grad():
        weight = torch.cat([conv.weight for conv in convs])
        bias = torch.cat([conv.bias for conv in convs])
        plan = {
            "key": TensorsKey(tensors),
            "label_channels": label_channels,
            "weight": weight,
            "bias": bias,
            "pad": convs[0].padding,
            "hidden": [conv.out_channels for conv in convs],
            "fpn_weight": weight[:, label_channels:].contiguous(),
            # a plan `_binary_conv` takes (its tables are cached in it)
            "label": {
                "shared_weight": weight[:, :label_channels].contiguous(),
                "shared_bias": bias,
                "shared_pad": convs[0].padding,
            },
        }
    block._eval_plan = plan
    return plan


def cc_block_eval(
    block: nn.Module, x: torch.Tensor, cond: torch.Tensor, semantics: torch.Tensor, fpn: torch.Tensor
) -> torch.Tensor:
    """DepthsepCCBlock.forward in eval without autograd, its convs on the conditioning map run as one.

    `cond` is cat(semantics resized to x, fpn) as the generator made it; when `semantics` is the binary map of
    the open `label_scope`, the label part of that conv takes the binary label-map conv and `cond` is not read.
    """
    label_channels = semantics.shape[1]
    plan = _cc_plan(block, label_channels)
    codes = _scope_codes(semantics, x.shape[-2:])
    if codes is not None and _binary_conv_supported(plan["label"]):
        hidden = _binary_conv(codes, plan["label"], label_channels)
        hidden += F.conv2d(fpn, plan["fpn_weight"], None, padding=plan["pad"])
    else:
        hidden = F.conv2d(cond, plan["weight"], plan["bias"], padding=plan["pad"])
    hidden = hidden.relu_().split(plan["hidden"], dim=1)
    x_s = block.conv_s(block.norm_s.modulate(x, hidden[4])) if block.learned_shortcut else x
    return x_s + block.residual(x, hidden.__getitem__)


# -- label-map convs on binary maps ------------------------------------------------------------------------

_SCOPE: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("semsyn_label_scope", default=None)


@contextlib.contextmanager
def label_scope(semantics: torch.Tensor, active: bool) -> Iterator[None]:
    """Within this block, blocks fed `semantics` (this very tensor) may use its codes (computed once, lazily).

    Open it around one forward of a generator (`run_stages` does, when the fast path is active); the codes
    belong to the tensor as it is now, so the scope must not outlive an in-place edit of it.
    """
    if not active or not BINARY_LABEL_CONV:
        yield
        return
    token = _SCOPE.set({"semantics": semantics, "codes": None, "resized": {}})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def label_codes(semantics: torch.Tensor, max_codes: int = MAX_CODES) -> torch.Tensor | None:
    """(N, K, H, W) int64: the channels that are 1 at each pixel, -1 padded (K the most at any pixel); None
    when the map is not binary (values other than 0 and 1), is empty, or has more than `max_codes` ones at a pixel.
    """
    if semantics.dim() != 4 or semantics.is_complex() or semantics.dtype == torch.bool:
        return None
    ones = semantics == 1
    if not bool((ones | (semantics == 0)).all()):
        return None
    count = ones.sum(1)
    k = int(count.max()) if count.numel() else 0
    if not 1 <= k <= max_codes:
        return None
    if k == 1 and bool((count == 1).all()):
        return semantics.argmax(1, keepdim=True)
    n, _, h, w = semantics.shape
    codes = torch.full((n, k, h, w), -1, dtype=torch.long, device=semantics.device)
    b, y, x, c = ones.permute(0, 2, 3, 1).nonzero(as_tuple=True)  # row-major: pixel by pixel
    pixel = (b * h + y) * w + x
    first = torch.ones_like(pixel, dtype=torch.bool)
    first[1:] = pixel[1:] != pixel[:-1]
    start = torch.cumsum(first, 0) - 1  # which run (pixel) each one belongs to
    run_start = first.nonzero().squeeze(1)
    slot = torch.arange(pixel.numel(), device=pixel.device) - run_start[start]
    codes[b, slot, y, x] = c
    return codes


def _scope_codes(semantics: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor | None:
    scope = _SCOPE.get()
    if scope is None or scope["semantics"] is not semantics:
        return None
    if scope["codes"] is None:
        codes = label_codes(semantics)
        scope["codes"] = False if codes is None else codes
    codes = scope["codes"]
    if codes is False:
        return None
    size = tuple(size)
    resized = scope["resized"].get(size)
    if resized is None:
        resized = scope["resized"][size] = _resize_codes(codes, size)
    return resized


def _resize_codes(codes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`resize_nearest` of the map, applied to its codes: the same source pixel for every destination pixel."""
    h, w = codes.shape[-2:]
    if (h, w) == size:
        return codes
    # legacy nearest: src = floor(dst * in / out), computed as F.interpolate(mode="nearest") does
    ys = _nearest_index(h, size[0], codes.device)
    xs = _nearest_index(w, size[1], codes.device)
    return codes[:, :, ys][:, :, :, xs]


def _nearest_index(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """The source rows F.interpolate(mode="nearest") reads for `dst` outputs from `src` inputs."""
    probe = torch.arange(src, dtype=torch.float32, device=device).view(1, 1, src, 1)
    return F.interpolate(probe, size=(dst, 1), mode="nearest").view(dst).long()


def _binary_conv_supported(plan: dict[str, Any]) -> bool:
    if "binary" not in plan:
        weight = plan["shared_weight"]
        kh, kw = weight.shape[-2:]
        plan["binary"] = tuple(plan["shared_pad"]) == (kh // 2, kw // 2) and kh % 2 == 1 and kw % 2 == 1
    return plan["binary"]


def _binary_tables(plan: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Per-tap columns (taps * C + 1 rows, the last 0), and the window sums (every tap on one code) as
    columns per code (C + 1 columns, the last for no code), with and without the bias.
    """
    tables = plan.get("binary_tables")
    if tables is None:
        with torch.inference_mode(False), torch.no_grad():
            weight, bias = plan["shared_weight"], plan["shared_bias"]
            out_c, in_c, kh, kw = weight.shape
            taps = weight.double().permute(2, 3, 1, 0).reshape(kh * kw * in_c, out_c)
            window = weight.double().sum((2, 3))  # (out, C)
            columns = torch.cat([window, window.new_zeros(out_c, 1)], 1)
            tables = plan["binary_tables"] = {
                "taps": torch.cat([taps, taps.new_zeros(1, out_c)]).to(weight.dtype),
                "first": (columns + bias.double()[:, None]).to(weight.dtype),
                "more": columns.to(weight.dtype),
            }
            # the same columns as rows, for a channels-last output (one row per pixel)
            for name in ("first", "more"):
                tables[f"{name}_rows"] = tables[name].t().contiguous()
    return tables


def _binary_conv(
    codes: torch.Tensor, plan: dict[str, Any], in_channels: int, channels_last: bool = False
) -> torch.Tensor:
    """F.conv2d(seg, shared_weight, shared_bias, padding=k // 2) for the binary map seg whose codes these are
    (channels-last with `channels_last`).

    Inside a window whose every tap holds the centre's codes, the conv is the sum of the window's weights
    for those codes: one gathered column per code (measured faster than a 1x1 conv of the map with the
    summed weights, which needs the map resized to every block's size). Elsewhere, near a boundary or the
    image border, the window's columns are summed with `embedding_bag` and written over it.
    """
    tables = _binary_tables(plan)
    weight, bias = plan["shared_weight"], plan["shared_bias"]
    kh, kw = weight.shape[-2:]
    n, k, h, w = codes.shape
    ph, pw = kh // 2, kw // 2
    null = kh * kw * in_channels
    padded = F.pad(codes, (pw, pw, ph, ph), value=-2)  # -2: outside the image, never equal to a code
    uniform = torch.ones((n, h, w), dtype=torch.bool, device=codes.device)
    for ky in range(kh):
        for kx in range(kw):
            if (ky, kx) != (ph, pw):
                uniform &= (padded[:, :, ky : ky + h, kx : kx + w] == codes).all(1)
    columns = torch.where(codes < 0, in_channels, codes)
    if channels_last:  # a row per pixel: (N, H, W, C) memory, seen as (N, C, H, W)
        rows = F.embedding(columns[:, 0], tables["first_rows"])
        for j in range(1, k):
            rows += F.embedding(columns[:, j], tables["more_rows"])
        out = rows.permute(0, 3, 1, 2)
    else:
        columns = columns.view(n, k, h * w)
        out = torch.empty((n, weight.shape[0], h, w), dtype=weight.dtype, device=codes.device)
        flat = out.view(n, -1, h * w)
        for i in range(n):
            torch.index_select(tables["first"], 1, columns[i, 0], out=flat[i])
            for j in range(1, k):
                flat[i] += tables["more"].index_select(1, columns[i, j])
    b, y, x = (~uniform).nonzero(as_tuple=True)
    if b.numel():
        hp, wp = h + 2 * ph, w + 2 * pw
        dy = torch.arange(kh, device=codes.device).view(kh, 1)
        dx = torch.arange(kw, device=codes.device).view(1, kw)
        slots = torch.arange(k, device=codes.device).view(-1, 1) * (hp * wp)  # (K, 1)
        offsets = (slots + (dy * wp + dx).view(1, -1)).view(1, -1)  # (1, K * taps), slot-major
        base = (b * k * hp + y) * wp + x
        window = padded.reshape(-1)[base.view(-1, 1) + offsets]
        tap = torch.arange(kh * kw, device=codes.device).repeat(k).view(1, -1)
        bags = torch.where(window < 0, null, window + tap * in_channels)
        summed = F.embedding_bag(bags, tables["taps"], mode="sum", padding_idx=null) + bias
        out[b, :, y, x] = summed
    return out
