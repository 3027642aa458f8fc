"""The inference path: eval-only shortcuts equal the plain code, never reach training, and `dtype=`."""

from __future__ import annotations

import pytest
import torch

import semsyn
from semsyn import SemsynError
from semsyn.inference import bf16_supported, fast_path_active, reference_path
from semsyn_models import fast
from semsyn_models.fast import CachedSpectralNorm


def _model(**overrides) -> semsyn.SynthesisModel:
    torch.manual_seed(0)
    model = semsyn.create_model("spade-synthetic", image_size=[64, 64], generator__ngf=4, **overrides)
    # Non-trivial running statistics, so folding them into the modulation is really exercised.
    for m in model.generator.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def _label(seed: int = 0, n: int = 2) -> torch.Tensor:
    return torch.randint(0, 10, (n, 64, 64), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("norm", ["syncbatch", "instance"])
def test_fast_path_equals_the_plain_path(norm):
    model = _model(generator__norm=norm)
    label = _label()
    with reference_path():
        plain = model.synthesize(label)
    fast = model.synthesize(label)
    assert (fast - plain).abs().max().item() <= 1e-5
    assert plain.abs().max().item() > 1e-3  # a real image, not zeros on both sides
    # And it is the fast path that ran: the blocks kept their folded plan, the hooks their weights.
    assert getattr(model.generator.head_0, "_eval_plan", None) is not None
    hooks = [h for m in model.generator.modules() for h in m._forward_pre_hooks.values()]
    assert any(isinstance(h, CachedSpectralNorm) and h._cached is not None for h in hooks)


@pytest.mark.parametrize("switch", ["FOLD_BATCH_NORM", "CHANNELS_LAST"])
def test_opt_in_shortcuts_stay_close(monkeypatch, switch):
    # Off by default (measured no gain, or over the 1e-5 budget on a calibrated image); kept correct.
    monkeypatch.setattr(fast, switch, True)
    model = _model()
    label = _label()
    with reference_path():
        plain = model.synthesize(label)
    assert (model.synthesize(label) - plain).abs().max().item() <= 1e-5


def test_synthesize_returns_a_normal_tensor():
    image = _model().synthesize(_label(n=1))
    assert not image.is_inference()
    image.add_(1.0)  # callers may edit it in place


def test_cache_follows_weight_changes():
    model = _model()
    label = _label()
    before = model.synthesize(label)
    with torch.no_grad():
        model.generator.head_0.conv_0.weight_orig.mul_(1.5)
        model.generator.head_0.norm_0.mlp_gamma.weight.add_(0.1)
        model.generator.up_0.norm_1.param_free_norm.running_var.mul_(2.0)
    after = model.synthesize(label)
    with reference_path():
        plain = model.synthesize(label)
    assert (after - before).abs().max().item() > 1e-4
    assert (after - plain).abs().max().item() <= 1e-5


def test_training_after_eval_uses_live_parameters():
    model = _model()
    gen = model.generator
    model.synthesize(_label())  # fills every eval cache
    conv = gen.head_0.conv_0
    cached = next(h for h in conv._forward_pre_hooks.values() if isinstance(h, CachedSpectralNorm))._cached[1]
    gen.train()
    assert not fast_path_active(gen.head_0)
    sem = model.semantics(_label())
    gen(sem).square().mean().backward()
    assert conv.weight is not cached and conv.weight.grad_fn is not None
    assert conv.weight_orig.grad is not None and conv.weight_orig.grad.abs().sum() > 0
    assert gen.head_0.norm_0.mlp_gamma.weight.grad.abs().sum() > 0
    # An optimizer step then changes what eval computes, exactly as the plain path does.
    torch.optim.SGD(gen.parameters(), lr=0.1).step()
    model.eval()
    with reference_path():
        plain = model.synthesize(_label(), seed=0)  # seeded: spade-synthetic draws per-pixel noise
    assert (model.synthesize(_label(), seed=0) - plain).abs().max().item() <= 1e-5


def test_eval_with_autograd_takes_the_plain_path():
    model = _model()
    model.synthesize(_label())
    sem = model.semantics(_label())
    assert not fast_path_active(model.generator)  # autograd is on here
    model.generator(sem).sum().backward()
    assert model.generator.head_0.conv_0.weight_orig.grad is not None


def test_dtype_option():
    model = _model(dtype="bfloat16")
    expected = torch.bfloat16 if bf16_supported("cpu") else torch.float32
    assert next(model.generator.parameters()).dtype == expected
    image = model.synthesize(_label())
    assert image.dtype == expected and torch.isfinite(image.float()).all()
    with pytest.raises(SemsynError, match="float16"):
        _model(dtype="float16")
