"""The SPADE-family losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from semsyn import LOSSES, DiscriminatorOutput, SemsynError


def _loss(name: str, **params):
    return LOSSES.get(name)(**params)


def _two_scales() -> DiscriminatorOutput:
    return DiscriminatorOutput(logits=[torch.tensor([[[[-2.0, 0.5], [1.5, 3.0]]]]), torch.tensor([[[[0.0, -0.5]]]])])


def test_hinge_discriminator_real_averages_relu_one_minus_over_scales():
    # scale 0: relu(1 - [-2, .5, 1.5, 3]) = [3, .5, 0, 0] -> 0.875; scale 1: relu(1 - [0, -.5]) = [1, 1.5] -> 1.25
    out = _loss("hinge")(_two_scales(), target_is_real=True, for_discriminator=True)
    assert out.item() == pytest.approx((0.875 + 1.25) / 2)


def test_hinge_discriminator_fake_averages_relu_one_plus_over_scales():
    # scale 0: relu(1 + [-2, .5, 1.5, 3]) = [0, 1.5, 2.5, 4] -> 2.0; scale 1: relu(1 + [0, -.5]) = [1, .5] -> 0.75
    out = _loss("hinge")(_two_scales(), target_is_real=False, for_discriminator=True)
    assert out.item() == pytest.approx((2.0 + 0.75) / 2)


def test_hinge_generator_is_minus_mean_logit():
    out = _loss("hinge")(_two_scales(), target_is_real=True, for_discriminator=False)
    assert out.item() == pytest.approx(-(0.75 + -0.25) / 2)


def test_hinge_generator_aiming_for_fake_is_the_mirror_image():
    out = _loss("hinge")(_two_scales(), target_is_real=False, for_discriminator=False)
    assert out.item() == pytest.approx((0.75 + -0.25) / 2)


def test_least_squares_is_mse_to_the_label():
    # real: mean((x - 1)^2): scale 0 (9 + .25 + .25 + 4) / 4 = 3.375, scale 1 (1 + 2.25) / 2 = 1.625
    real = _loss("least-squares")(_two_scales(), target_is_real=True)
    # fake: mean(x^2): scale 0 (4 + .25 + 2.25 + 9) / 4 = 3.875, scale 1 .25 / 2 = 0.125
    fake = _loss("least-squares")(_two_scales(), target_is_real=False)
    assert (real.item(), fake.item()) == (pytest.approx(2.5), pytest.approx(2.0))


def test_vanilla_is_binary_cross_entropy_on_logits():
    logits = [-2.0, 0.5, 1.5, 3.0]
    by_hand = sum(-math.log(1 / (1 + math.exp(-x))) for x in logits) / 4
    out = _loss("vanilla")(DiscriminatorOutput(logits=[torch.tensor(logits).view(1, 1, 2, 2)]), target_is_real=True)
    assert out.item() == pytest.approx(by_hand, rel=1e-6)


def test_vanilla_fake_target_uses_log_one_minus_sigmoid():
    logits = [-2.0, 0.5]
    by_hand = sum(-math.log(1 - 1 / (1 + math.exp(-x))) for x in logits) / 2
    out = _loss("vanilla")(DiscriminatorOutput(logits=[torch.tensor(logits).view(1, 1, 1, 2)]), target_is_real=False)
    assert out.item() == pytest.approx(by_hand, rel=1e-6)


def test_feature_matching_sums_l1_over_features_and_divides_by_scales():
    fake = DiscriminatorOutput(
        logits=[torch.zeros(1), torch.zeros(1)],
        features=[[torch.tensor([1.0, 2.0]), torch.tensor([0.0])], [torch.tensor([4.0])]],
    )
    real = DiscriminatorOutput(
        logits=[torch.zeros(1), torch.zeros(1)],
        features=[[torch.tensor([0.0, 0.0]), torch.tensor([3.0])], [torch.tensor([1.0])]],
    )
    # scale 0: L1 1.5 + 3.0; scale 1: 3.0; divided by 2 scales
    out = _loss("feature-matching")(fake, real)
    assert out.item() == pytest.approx((1.5 + 3.0 + 3.0) / 2)


def test_feature_matching_does_not_backpropagate_into_real_features():
    real_map = torch.tensor([0.0, 1.0], requires_grad=True)
    fake_map = torch.tensor([2.0, 2.0], requires_grad=True)
    out = _loss("feature-matching")(
        DiscriminatorOutput([torch.zeros(1)], [[fake_map]]), DiscriminatorOutput([torch.zeros(1)], [[real_map]])
    )
    out.backward()
    assert real_map.grad is None and fake_map.grad is not None


def test_kl_is_the_official_summed_kld():
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    by_hand = -0.5 * sum(
        1 + lv - m * m - math.exp(lv) for m, lv in zip(mu.flatten().tolist(), logvar.flatten().tolist())
    )
    assert _loss("kl")(mu, logvar).item() == pytest.approx(by_hand, rel=1e-6)


# -- VGG perceptual -------------------------------------------------------------------------------------------


def _torchvision_features() -> torch.nn.Sequential:
    pytest.importorskip("torchvision")
    from torchvision.models import vgg

    torch.manual_seed(0)
    return vgg.make_layers(vgg.cfgs["E"])  # exactly torchvision.models.vgg19().features, without the classifier


def _save_features(features: torch.nn.Sequential, path, extra: dict | None = None) -> None:
    state = {f"features.{k}": v.clone() for k, v in features.state_dict().items()}
    state.update(extra or {})
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)


def _by_hand(features: torch.nn.Sequential, fake: torch.Tensor, real: torch.Tensor) -> float:
    total, x, y = 0.0, fake, real
    with torch.no_grad():
        for (start, stop), w in zip(((0, 2), (2, 7), (7, 12), (12, 21), (21, 30)), (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1)):
            x, y = features[start:stop](x), features[start:stop](y)
            total += w * (x - y).abs().mean().item()
    return total


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_vgg_loss_from_a_local_file_is_the_weighted_l1_of_vgg19_maps(tmp_path, suffix):
    features = _torchvision_features()
    path = tmp_path / f"vgg19{suffix}"
    _save_features(features, path)
    g = torch.Generator().manual_seed(1)
    fake, real = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1, torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    loss = _loss("vgg-perceptual", weights_path=str(path))
    assert loss(fake, real).item() == pytest.approx(_by_hand(features, fake, real), rel=1e-5)


def test_vgg_loss_accepts_timm_keys_and_ignores_the_classifier(tmp_path):
    features = _torchvision_features()
    path = tmp_path / "timm_vgg19.pth"
    _save_features(features, path, extra={"pre_logits.fc1.weight": torch.zeros(2, 2), "head.fc.bias": torch.zeros(2)})
    fake, real = torch.zeros(1, 3, 16, 16), torch.ones(1, 3, 16, 16)
    loss = _loss("vgg-perceptual", weights_path=str(path))
    assert loss(fake, real).item() == pytest.approx(_by_hand(features, fake, real), rel=1e-5)


def test_vgg_loss_is_frozen_but_passes_gradients_to_the_fake_image():
    loss = _loss("vgg-perceptual", allow_random_weights=True).train()
    fake = torch.rand(1, 3, 16, 16, requires_grad=True)
    loss(fake, torch.rand(1, 3, 16, 16)).backward()
    assert not any(p.requires_grad for p in loss.parameters()) and not loss.training
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_vgg_loss_without_weights_says_how_to_provide_them():
    with pytest.raises(SemsynError, match=r"no VGG19 weights.*weights_path.*download: true"):
        _loss("vgg-perceptual")


def test_vgg_loss_with_a_missing_file_names_it(tmp_path):
    with pytest.raises(SemsynError, match=r"nope\.pth does not exist.*weights_path"):
        _loss("vgg-perceptual", weights_path=str(tmp_path / "nope.pth"))


def test_vgg_loss_refuses_a_file_without_vgg19_keys(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(SemsynError, match=r"not a VGG19 state dict: it lacks features\.0\.weight"):
        _loss("vgg-perceptual", weights_path=str(path))


def test_vgg_loss_download_failure_is_a_semsyn_error(monkeypatch, tmp_path):
    pytest.importorskip("timm")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(SemsynError, match=r"could not fetch VGG19 weights from the Hub.*weights_path"):
        _loss("vgg-perceptual", download=True)
