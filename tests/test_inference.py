"""The inference path: eval-only shortcuts equal the plain code, never reach training, and `dtype=`."""

from __future__ import annotations

import math

import pytest
import torch

import semsyn
from semsyn import SemsynError
from semsyn.inference import bf16_supported, fast_path_active, reference_path
from semsyn_models import fast
from semsyn_models.fast import CachedSpectralNorm
from semsyn_models.layers import settle_spectral_norms


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


@pytest.mark.parametrize("norm", ["syncbatch", "instance"])
def test_fused_block_rounds_as_the_plain_path(monkeypatch, norm):
    # With the dense label-map conv, the fused block does the plain path's float operations in its order: the
    # concatenated convs reduce each output channel as the separate ones do, and the modulation rounds after
    # the product and after the sum (one addcmul, rounding once, moved a calibrated COCO image by 1.3e-5).
    monkeypatch.setattr(fast, "BINARY_LABEL_CONV", False)
    model = _model(generator__norm=norm)
    label = _label()
    with reference_path():
        plain = model.synthesize(label, seed=0)
    assert torch.equal(model.synthesize(label, seed=0), plain)
    assert getattr(model.generator.head_0, "_eval_plan", None) is not None  # the fused path ran


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
    image = model.synthesize(_label(), seed=0)
    assert image.dtype == expected and torch.isfinite(image.float()).all()
    assert image.is_contiguous()  # bf16 runs channels-last inside; the image comes back in the usual layout
    if expected == torch.bfloat16:  # near the fp32 image (this random model's calibration is crude: 29 dB)
        mse = (image.float() - _model().synthesize(_label(), seed=0)).pow(2).mean().item()
        assert 10 * math.log10(4 / mse) >= 25
    with pytest.raises(SemsynError, match="float16"):
        _model(dtype="float16")


# -- label-map convs on binary maps ------------------------------------------------------------------------


def _blocky_seg(n: int, channels: int, h: int, w: int, edges: bool, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, channels - 1, (n, 1, h // 8, w // 8), generator=g).float()
    label = torch.nn.functional.interpolate(label, size=(h, w), mode="nearest").long()
    seg = torch.zeros(n, channels, h, w).scatter_(1, label, 1.0)
    if edges:  # a second one at some pixels, as an instance-edge channel puts there
        seg[:, -1] = (torch.rand(n, h, w, generator=g) < 0.1).float()
    return seg


@pytest.mark.parametrize(("kernel", "edges", "n"), [(3, True, 2), (3, False, 1), (1, True, 2), (5, True, 1)])
def test_binary_label_conv_equals_the_dense_conv(kernel, edges, n):
    channels, h, w = 12, 32, 40
    seg = _blocky_seg(n, channels, h, w, edges)
    seg[0, :, 5, 7] = 0  # a pixel with no class (e.g. dontcare mapped to nothing): no code there
    g = torch.Generator().manual_seed(1)
    plan = {
        "shared_weight": torch.randn(24, channels, kernel, kernel, generator=g),
        "shared_bias": torch.randn(24, generator=g),
        "shared_pad": (kernel // 2, kernel // 2),
    }
    codes = fast.label_codes(seg)
    assert codes.shape == (n, 2 if edges else 1, h, w) and (codes[0, :, 5, 7] == -1).all()
    dense = torch.nn.functional.conv2d(seg, plan["shared_weight"], plan["shared_bias"], padding=kernel // 2)
    for channels_last in (False, True):  # the bf16 path runs channels-last
        binary = fast._binary_conv(codes, plan, channels, channels_last=channels_last)
        assert (binary - dense).abs().max().item() <= 1e-5
        assert binary.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    # at every block's resolution: the codes resized as resize_nearest resizes the map
    for size in [(h // 2, w // 2), (h // 4, w // 4), (2 * h, 2 * w), (h - 3, w + 5)]:
        resized = torch.nn.functional.interpolate(seg, size=size, mode="nearest")
        dense = torch.nn.functional.conv2d(resized, plan["shared_weight"], plan["shared_bias"], padding=kernel // 2)
        binary = fast._binary_conv(fast._resize_codes(codes, size), plan, channels)
        assert (binary - dense).abs().max().item() <= 1e-5


def test_label_codes_only_for_binary_maps():
    seg = _blocky_seg(1, 6, 16, 16, edges=True)
    codes = fast.label_codes(seg)
    # each pixel's ones, ascending, -1 padded
    assert (codes[:, 0] == seg[:, :-1].argmax(1)).all()
    assert ((codes[:, 1] == 5) == (seg[:, -1] == 1)).all() and (codes[:, 1][seg[:, -1] == 0] == -1).all()
    empty = seg.clone()
    empty[0, :, 0, 0] = 0  # a pixel with no label (dontcare maps to nothing): still binary
    assert fast.label_codes(empty)[0, 0, 0, 0] == -1
    assert fast.label_codes(seg * 0.5) is None  # soft maps take the conv
    assert fast.label_codes(torch.ones(1, fast.MAX_CODES + 1, 4, 4)) is None
    assert fast.label_codes(torch.zeros(1, 3, 4, 4)) is None


def test_binary_label_conv_in_the_generator(monkeypatch):
    # 3x3 modulation convs and an instance-edge channel: two ones at edge pixels
    model = _model(generator__cond_norm_params={"hidden_channels": 8, "kernel_size": 3})
    assert model.spec.labels.instance_edges
    label = _label(n=2)
    instance = torch.randint(0, 4, (2, 64, 64), generator=torch.Generator().manual_seed(3))
    calls = []
    real = fast._binary_conv
    monkeypatch.setattr(fast, "_binary_conv", lambda *a, **kw: calls.append(a[0].shape) or real(*a, **kw))
    image = model.synthesize(label, instance=instance, seed=0)
    assert calls and all(shape[1] == 2 for shape in calls)  # the edges made a second code
    with reference_path():
        plain = model.synthesize(label, instance=instance, seed=0)
    assert (image - plain).abs().max().item() <= 1e-5 and plain.abs().max().item() > 1e-3
    # the same fast path with the dense label-map conv gives the same image
    monkeypatch.setattr(fast, "BINARY_LABEL_CONV", False)
    dense = model.synthesize(label, instance=instance, seed=0)
    assert (image - dense).abs().max().item() <= 1e-5
    monkeypatch.setattr(fast, "BINARY_LABEL_CONV", True)
    # the decoded map belongs to one forward: a new map in the same tensor is decoded anew
    sem = model.semantics(label)
    with torch.inference_mode():
        model.eval()
        first = model.generator(sem, generator=torch.Generator().manual_seed(0))
        sem[:, :] = model.semantics(_label(seed=5, n=2))  # same tensor, edited in place
        second = model.generator(sem, generator=torch.Generator().manual_seed(0))
        with reference_path():
            expected = model.generator(sem, generator=torch.Generator().manual_seed(0))
    assert (second - expected).abs().max().item() <= 1e-5 and (second - first).abs().max().item() > 1e-3


# -- CC-FPSE blocks: the convs on the conditioning map as one ------------------------------------------------


def _cc_model() -> semsyn.SynthesisModel:
    torch.manual_seed(0)
    model = semsyn.create_model("ccfpse-synthetic", image_size=[64, 64], generator__ngf=4)
    # Trained-looking weights: at the official init (gain 0.02) the heads' outputs are too small for a
    # difference between the paths to show.
    with torch.no_grad():
        for p in model.generator.parameters():
            p.normal_(0, p[0].numel() ** -0.5 if p.dim() >= 2 else 0.1)
        for m in model.generator.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    settle_spectral_norms(model.generator)  # sigma for the new weights, as a trained model's vectors give
    return model


def test_cc_blocks_fast_path_equals_the_plain_path(monkeypatch):
    model = _cc_model()
    assert model.spec.labels.instance_edges
    # regions of 8x8 pixels: insides (one gathered column) and boundaries (summed windows) both occur
    label = torch.nn.functional.interpolate(_label(n=2)[:, None, :8, :8].float(), size=(64, 64)).long()[:, 0]
    instance = torch.randint(0, 4, (2, 64, 64), generator=torch.Generator().manual_seed(3))
    calls = []
    real = fast._binary_conv
    monkeypatch.setattr(fast, "_binary_conv", lambda *a, **kw: calls.append(a[0].shape) or real(*a, **kw))
    image = model.synthesize(label, instance=instance, seed=0)
    blocks = [m for m in model.generator.modules() if type(m).__name__ == "DepthsepCCBlock"]
    assert len(calls) == len(blocks) and all(shape[1] == 2 for shape in calls)  # every block, edges included
    assert all(fast.cc_block_supported(b) and b._eval_plan is not None for b in blocks)
    assert any(b.learned_shortcut for b in blocks)  # the shortcut SPADE's conv joins the fused conv too
    with reference_path():
        plain = model.synthesize(label, instance=instance, seed=0)
    assert (image - plain).abs().max().item() <= 1e-5 and plain.std().item() > 1e-2
    # the fused conv on the dense map (the binary conv off) gives the same image
    monkeypatch.setattr(fast, "BINARY_LABEL_CONV", False)
    count = len(calls)
    dense = model.synthesize(label, instance=instance, seed=0)
    assert len(calls) == count and (dense - plain).abs().max().item() <= 1e-5


def test_cc_blocks_fast_path_follows_weight_edits():
    model = _cc_model()
    label = _label(n=1)
    before = model.synthesize(label, seed=0)
    with torch.no_grad():
        model.generator.up_0.gen_weights1[0].weight.mul_(4.0)  # in place: the cached fused weight is stale
    after = model.synthesize(label, seed=0)
    with reference_path():
        plain = model.synthesize(label, seed=0)
    assert (after - plain).abs().max().item() <= 1e-5 and (after - before).abs().max().item() > 1e-3


def test_cc_blocks_take_the_plain_path_in_training_and_with_autograd(monkeypatch):
    from semsyn_models import ccfpse

    calls = []
    monkeypatch.setattr(ccfpse, "cc_block_eval", lambda *a, **kw: calls.append(1) or fast.cc_block_eval(*a, **kw))
    model = _cc_model()
    sem = model.semantics(_label(n=1))
    model.generator.eval()
    with torch.no_grad():
        model.generator(sem)
    assert len(calls) == 7  # the spy sees the fast path: every block
    calls.clear()
    grad_sem = sem.clone().requires_grad_()
    model.generator(grad_sem).mean().backward()  # eval, autograd on
    assert not calls and grad_sem.grad is not None and grad_sem.grad.abs().sum() > 0
    model.generator.train()
    with torch.no_grad():
        model.generator(sem)  # train mode, autograd off
    assert not calls
