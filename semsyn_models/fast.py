"""Eval-only shortcuts of the shared blocks: cached spectral-norm weights and SPADE's folded modulation.

Both run only when `semsyn.inference.fast_path_active` says so (eval mode, autograd off, no
`reference_path`), so training and any forward that needs gradients take the plain code. Each keeps what it
precomputes with a key made of the storages and version counters of the tensors it came from: an optimizer
step, `load_state_dict`, `.to()` or any in-place edit changes the key, and the next call recomputes.

* Spectral norm: in eval, torch recomputes `weight_orig / sigma` (sigma from the stored u, v) on every call;
  here it is computed the same way, by the same function, once.
* SPADE residual block: the three cond-norms of a block read the same resized label map, so their
  `mlp_shared` convs run as one conv (outputs concatenated); each norm's `mlp_gamma` and `mlp_beta` run as
  one conv; `x_hat * (1 + gamma) + beta` is one `addcmul`; with FOLD_BATCH_NORM, batch-norm running
  statistics (x_hat = a x + b per channel) are folded into the gamma/beta weights. Exact in real arithmetic;
  in float32 it differs from the plain path by rounding only (measured <= 1e-5 on a calibrated image, about
  what batch 2 instead of 1 changes in the plain path).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.spectral_norm import SpectralNorm

from semsyn.inference import fast_path_active

# Channels-last eval for SPADE blocks: off, measured no faster once the modulation is fused, and its other
# reduction order moves a calibrated image by 1.2e-5-1.4e-5 (over the 1e-5 budget). docs/performance.md.
CHANNELS_LAST = False
# Folding batch-norm running statistics into the gamma/beta conv: off, measured no faster (1.34x against 1.33x
# at 256 px, within noise) while its rounding grows with |mean| / std. docs/performance.md.
FOLD_BATCH_NORM = False

__all__ = ["CachedSpectralNorm", "cache_spectral_norm", "spade_block_eval", "TensorsKey"]


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
    """One conv for gamma and beta of a SPADE: (weight, bias, folded); the output's halves are G and B.

    out = x_hat * (1 + gamma) + beta = x_hat * G + B. With x_hat = a x + b folded: out = x * G' + B' where
    G' = a (1 + gamma) and B' = b (1 + gamma) + beta, both linear in the hidden map, so convs too.
    """
    wg, bg = spade.mlp_gamma.weight.double(), spade.mlp_gamma.bias.double() + 1.0
    wb, bb = spade.mlp_beta.weight.double(), spade.mlp_beta.bias.double()
    affine = _bn_affine(spade.param_free_norm)
    if affine is not None:
        a, b = affine
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


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=torch.channels_last) if CHANNELS_LAST else t


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
    seg = _cl(resize_nearest(semantics, x.shape[-2:]))
    actv = F.conv2d(seg, plan["shared_weight"], plan["shared_bias"], padding=plan["shared_pad"]).relu_()
    hiddens = actv.split(plan["hidden"], dim=1)
    norms = _block_norms(block)

    def modulate(i: int, t: torch.Tensor) -> torch.Tensor:
        weight, bias, folded = plan["norms"][i]
        gb = F.conv2d(hiddens[i], weight, bias, padding=plan["pad"][i])
        g, b = gb.chunk(2, dim=1)
        return torch.addcmul(b, t if folded else norms[i].param_free_norm(t), g)

    shortcut = _conv_eval(block, "conv_s", modulate(2, x)) if block.learned_shortcut else x
    dx = _conv_eval(block, "conv_0", F.leaky_relu(modulate(0, x), 0.2, inplace=True))
    dx = _conv_eval(block, "conv_1", F.leaky_relu(modulate(1, dx), 0.2, inplace=True))
    return shortcut + dx
