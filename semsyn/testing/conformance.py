"""The conformance suite: checks any registered component against its registry's contract.

Plugin authors run it on their own components::

    from semsyn.testing.conformance import check_component
    check_component("generator", "my-gen")          # raises AssertionError naming what broke

or parametrise pytest over `conformance_cases()`. Each component is built tiny, from the
`test_params` given at registration, with a small label schema (3 classes + dontcare + instance
edges = 5 channels) at 64x64 on the CPU, and checked for: output shapes and ranges, a backward pass
with finite gradients, no NaN, a save/load round trip through safetensors, and determinism under a
fixed `torch.Generator`.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semsyn.components import injected_values
from semsyn.contracts import DiscriminatorOutput, LossContext, call_generator
from semsyn.labels import LabelSchema
from semsyn.registry import REGISTRIES

__all__ = ["TINY_SCHEMA", "TINY_SIZE", "CHECKED_KINDS", "build_tiny", "check_component", "conformance_cases"]

TINY_SCHEMA = LabelSchema(num_classes=3, dontcare=True, instance_edges=True)
TINY_SIZE = (64, 64)
CHECKED_KINDS = ("generator", "encoder", "discriminator", "loss", "norm", "cond-norm")
BATCH = 2


def build_tiny(kind: str, name: str, **overrides: Any) -> Any:
    """A tiny instance of a registered component, its label facts injected like the builder does."""
    entry = REGISTRIES[kind].entry(name)
    target = entry.obj.__init__ if inspect.isclass(entry.obj) else entry.obj
    params = inspect.signature(target).parameters
    kwargs = {**entry.test_params, **overrides}
    if kind == "norm":
        return entry.obj(4, **kwargs)
    if kind == "cond-norm":
        return entry.obj(4, TINY_SCHEMA.label_channels, **kwargs)
    injected = injected_values(TINY_SCHEMA, TINY_SIZE)
    kwargs.update({k: v for k, v in injected.items() if k in params and k not in kwargs})
    return entry.obj(**kwargs)


def _semantics(seed: int = 0, size: tuple[int, int] = TINY_SIZE) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, TINY_SCHEMA.one_hot_channels, (BATCH, 1, *size), generator=g)
    from semsyn.labels import semantics

    return semantics(label, TINY_SCHEMA, label)


def _image(seed: int = 1, size: tuple[int, int] = TINY_SIZE) -> torch.Tensor:
    return torch.rand(BATCH, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _finite(x: Any, what: str) -> None:
    tensors = [x] if isinstance(x, torch.Tensor) else list(_flatten(x))
    for t in tensors:
        assert torch.isfinite(t).all(), f"{what} holds NaN or inf"


def _flatten(x: Any):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, DiscriminatorOutput):
        yield from _flatten(x.logits)
        yield from _flatten(x.features)
    elif isinstance(x, (list, tuple)):
        for item in x:
            yield from _flatten(item)


def _scalar(x: Any) -> torch.Tensor:
    return sum(t.float().mean() for t in _flatten(x))


def _check_backward(module: nn.Module, out: Any, what: str) -> None:
    _scalar(out).backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    if grads:
        assert any(g is not None for g in grads), f"{what}: backward reached no parameter"
    for g in grads:
        if g is not None:
            _finite(g, f"{what} gradient")


def _roundtrip(kind: str, name: str, module: nn.Module, call: Callable[[nn.Module], Any]) -> None:
    from semsyn.checkpoint import load_safetensors, save_safetensors

    module.eval()
    with torch.no_grad():
        before = call(module)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_safetensors(module.state_dict(), Path(tmp) / "w.safetensors")
        torch.manual_seed(12345)  # a differently initialised twin: the load must overwrite everything
        twin = build_tiny(kind, name).eval()
        twin.load_state_dict(load_safetensors(path), strict=True)
    with torch.no_grad():
        after = call(twin)
    for a, b in zip(_flatten(before), _flatten(after)):
        assert torch.equal(a, b), f"{kind} {name!r}: outputs differ after a save/load round trip"


def _check_generator(name: str) -> None:
    gen = build_tiny("generator", name)
    sem = _semantics()
    out = call_generator(gen, sem, None, generator=torch.Generator().manual_seed(0))
    assert out.shape[:2] == (BATCH, 3) and tuple(out.shape[2:]) == TINY_SIZE, (
        f"generator {name!r}: output shape {tuple(out.shape)}, expected {(BATCH, 3, *TINY_SIZE)}"
    )
    assert out.min() >= -1 and out.max() <= 1, f"generator {name!r}: output outside [-1, 1]"
    _finite(out, f"generator {name!r} output")
    _check_backward(gen, out, f"generator {name!r}")
    gen.eval()
    with torch.no_grad():
        a = call_generator(gen, sem, None, generator=torch.Generator().manual_seed(7))
        b = call_generator(gen, sem, None, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b), f"generator {name!r}: not deterministic under a fixed torch.Generator"
    _roundtrip(
        "generator", name, gen, lambda m: call_generator(m, sem, None, generator=torch.Generator().manual_seed(3))
    )


def _check_encoder(name: str) -> None:
    enc = build_tiny("encoder", name)
    image, sem = _image(), _semantics()
    mu, logvar = enc(image, sem)
    assert mu.shape == logvar.shape and mu.shape[0] == BATCH, f"encoder {name!r}: mu/logvar shapes disagree"
    _finite((mu, logvar), f"encoder {name!r} output")
    _check_backward(enc, (mu, logvar), f"encoder {name!r}")
    _roundtrip("encoder", name, enc, lambda m: m(image, sem))


def _check_discriminator(name: str) -> None:
    disc = build_tiny("discriminator", name)
    image, sem = _image(), _semantics()
    out = disc(image, sem)
    assert isinstance(out, DiscriminatorOutput), f"discriminator {name!r} must return DiscriminatorOutput"
    assert out.logits and all(t.dim() == 4 and t.shape[0] == BATCH for t in out.logits), (
        f"discriminator {name!r}: logits must be a non-empty list of (N, 1, h, w) maps"
    )
    _finite(out, f"discriminator {name!r} output")
    _check_backward(disc, out, f"discriminator {name!r}")
    _roundtrip("discriminator", name, disc, lambda m: m(image, sem))


def _fake_d_output(seed: int) -> DiscriminatorOutput:
    g = torch.Generator().manual_seed(seed)
    logits = [torch.randn(BATCH, 1, 5, 5, generator=g, requires_grad=True)]
    feats = [[torch.randn(BATCH, 4, 9, 9, generator=g, requires_grad=True)]]
    return DiscriminatorOutput(logits, feats)


def _loss_context(phase: str) -> LossContext:
    fake = _image(2).requires_grad_(True)
    return LossContext(
        phase=phase,
        semantics=_semantics(),
        real=_image(3),
        fake=fake,
        d_fake=_fake_d_output(0),
        d_real=_fake_d_output(1),
        mu=torch.randn(BATCH, 8, requires_grad=True),
        logvar=torch.randn(BATCH, 8),
    )


def _check_loss(name: str) -> None:
    loss = build_tiny("loss", name)
    assert callable(getattr(loss, "compute", None)), f"loss {name!r} has no compute(ctx) method"
    outs = []
    for phase in ("generator", "discriminator"):
        value = loss.compute(_loss_context(phase))
        if value is None:
            continue
        outs += list(value.values()) if isinstance(value, dict) else [value]
    assert outs, f"loss {name!r}: compute(ctx) returned None in both phases"
    for out in outs:
        assert out.dim() == 0, f"loss {name!r} must return a scalar, got shape {tuple(out.shape)}"
        _finite(out, f"loss {name!r}")
        out.backward(retain_graph=True)


def _check_norm(name: str) -> None:
    norm = build_tiny("norm", name)
    x = torch.randn(BATCH, 4, 8, 8, requires_grad=True)
    out = norm(x)
    assert out.shape == x.shape, f"norm {name!r} changed the shape"
    assert not any(p.requires_grad for p in norm.parameters()), f"norm {name!r} must be parameter-free"
    out.sum().backward()
    _finite(x.grad, f"norm {name!r} gradient")


def _check_cond_norm(name: str) -> None:
    block = build_tiny("cond-norm", name)
    x = torch.randn(BATCH, 4, 8, 8)
    out = block(x, _semantics())
    assert out.shape == x.shape, f"cond-norm {name!r} must return x's shape (it resizes the label map itself)"
    _finite(out, f"cond-norm {name!r} output")
    _check_backward(block, out, f"cond-norm {name!r}")
    _roundtrip("cond-norm", name, block, lambda m: m(x, _semantics()))


_CHECKS = {
    "generator": _check_generator,
    "encoder": _check_encoder,
    "discriminator": _check_discriminator,
    "loss": _check_loss,
    "norm": _check_norm,
    "cond-norm": _check_cond_norm,
}


def check_component(kind: str, name: str) -> None:
    """Run every check for one registered component; an AssertionError says what broke."""
    torch.manual_seed(0)
    _CHECKS[kind](name)


def conformance_cases(kinds: tuple[str, ...] = CHECKED_KINDS) -> list[tuple[str, str]]:
    """(kind, name) for every registered component of the checked kinds."""
    return [(kind, name) for kind in kinds for name in REGISTRIES[kind].names()]
