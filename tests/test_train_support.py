"""Tiny test-only components for the trainer tests, and a script entry point that registers them first.

`register()` adds a 2-layer generator, a style encoder, a 1-scale discriminator, hinge / feature-matching /
KL losses, a loss that turns NaN after a few calls, and an in-memory dataset, under `test-*` names;
`unregister()` removes them again so no other test module sees them. Run as a script
(`python tests/test_train_support.py SPEC ...`, also under torchrun) it registers them and runs
`semsyn-train` with the arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import semsyn
from semsyn.labels import LabelSchema
from semsyn.model import DiscriminatorOutput
from semsyn.registry import DATASETS, DISCRIMINATORS, ENCODERS, GENERATORS, LOSSES, NORMS, ref

SUPPORT = Path(__file__).resolve()


class TinyGenerator(nn.Module):
    """conv -> norm -> lrelu -> conv -> tanh; z (when z_dim) broadcast over the image and concatenated."""

    def __init__(
        self,
        label_channels: int,
        ngf: int = 4,
        z_dim: int = 0,
        norm: ref("norm") = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.z_dim = z_dim
        sn = nn.utils.spectral_norm if spectral_norm else (lambda m: m)
        self.conv_0 = sn(nn.Conv2d(label_channels + z_dim, ngf, 3, padding=1))
        self.norm_0 = NORMS.get(norm)(ngf)
        self.conv_img = nn.Conv2d(ngf, 3, 3, padding=1)

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = semantics
        if self.z_dim:
            if z is None:
                z = torch.randn(x.shape[0], self.z_dim, generator=generator, device=x.device, dtype=x.dtype)
            x = torch.cat([x, z[:, :, None, None].expand(-1, -1, *x.shape[2:])], dim=1)
        return torch.tanh(self.conv_img(F.leaky_relu(self.norm_0(self.conv_0(x)), 0.2)))


class TinyEncoder(nn.Module):
    """Strided conv -> global average -> (mu, logvar)."""

    def __init__(self, z_dim: int = 4, nef: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, nef, 3, stride=2, padding=1)
        self.fc_mu = nn.Linear(nef, z_dim)
        self.fc_var = nn.Linear(nef, z_dim)

    def forward(self, image: torch.Tensor, semantics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.leaky_relu(self.conv(image), 0.2).mean(dim=(2, 3))
        return self.fc_mu(h), self.fc_var(h)


class TinyDiscriminator(nn.Module):
    """One scale: strided conv -> lrelu -> conv to logits; the hidden map is the feature."""

    def __init__(self, label_channels: int, ndf: int = 4) -> None:
        super().__init__()
        self.conv_0 = nn.Conv2d(label_channels + 3, ndf, 4, stride=2, padding=1)
        self.conv_1 = nn.Conv2d(ndf, 1, 3, padding=1)

    def forward(self, image: torch.Tensor, semantics: torch.Tensor) -> DiscriminatorOutput:
        h = F.leaky_relu(self.conv_0(torch.cat([semantics, image], dim=1)), 0.2)
        return DiscriminatorOutput([self.conv_1(h)], [[h]])


class Hinge(nn.Module):
    role = "gan"

    def forward(
        self, outputs: DiscriminatorOutput, target_is_real: bool, for_discriminator: bool = True
    ) -> torch.Tensor:
        losses = []
        for logits in outputs.logits:
            if not for_discriminator:
                losses.append(-logits.mean())
            else:
                losses.append(F.relu(1 - logits).mean() if target_is_real else F.relu(1 + logits).mean())
        return sum(losses) / len(losses)


class FeatureMatching(nn.Module):
    role = "feature-matching"

    def forward(self, fake: DiscriminatorOutput, real: DiscriminatorOutput) -> torch.Tensor:
        total = sum(F.l1_loss(f, r.detach()) for fs, rs in zip(fake.features, real.features) for f, r in zip(fs, rs))
        return total / len(fake.features)


class KL(nn.Module):
    role = "kl"

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class NaNAfter(nn.Module):
    """L1 between fake and real that becomes NaN after `after_calls` calls."""

    role = "perceptual"

    def __init__(self, after_calls: int = 2) -> None:
        super().__init__()
        self.after_calls = after_calls
        self.calls = 0

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        value = F.l1_loss(fake, real)
        return value * float("nan") if self.calls > self.after_calls else value


class TinyData(torch.utils.data.Dataset):
    """Blocky random label maps and images coloured by class; item `bad_index` holds an out-of-schema value."""

    def __init__(
        self, labels: LabelSchema, image_size: tuple[int, int], length: int = 8, bad_index: int | None = None
    ) -> None:
        self.labels = labels
        self.size = tuple(image_size)
        self.length = length
        self.bad_index = bad_index
        self.colours = torch.rand(labels.one_hot_channels, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(index)
        coarse = torch.randint(0, self.labels.num_classes, (1, 1, 4, 4), generator=g)
        label = F.interpolate(coarse.float(), size=self.size, mode="nearest").long()[0]
        image = self.colours[label[0]].permute(2, 0, 1) + 0.1 * torch.randn(3, *self.size, generator=g)
        if index == self.bad_index:
            label[0, 1, 2] = self.labels.num_classes + 40
        return {"label": label, "image": image.clamp(-1, 1), "instance": label.clone(), "path": f"tiny/{index:03d}.png"}


COMPONENTS = [
    (GENERATORS, "test-tiny-gen", TinyGenerator),
    (ENCODERS, "test-tiny-enc", TinyEncoder),
    (DISCRIMINATORS, "test-tiny-disc", TinyDiscriminator),
    (LOSSES, "test-hinge", Hinge),
    (LOSSES, "test-fm", FeatureMatching),
    (LOSSES, "test-kl", KL),
    (LOSSES, "test-nan-after", NaNAfter),
    (DATASETS, "test-tiny-data", TinyData),
]


@contextmanager
def quiet_cpu(onednn: bool = False) -> Iterator[None]:
    """One thread and (unless `onednn`) no oneDNN, as the test subprocesses run too.

    Tiny convs gain nothing from a second thread and lose 10-50x when the two cores are shared with
    other processes; oneDNN compiles a kernel on the first call of every conv shape (about 10 s for a
    tiny CC-FPSE step, 50 ms without it). Same settings in and out of process also keep results bit-equal.
    """
    enabled, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = onednn
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = enabled
        torch.set_num_threads(threads)


def register() -> None:
    """Register the test components (idempotent)."""
    for registry, name, obj in COMPONENTS:
        registry.register(name)(obj)


def unregister() -> None:
    """Remove them again, so the rest of the test session never sees them."""
    for registry, name, _ in COMPONENTS:
        if name in registry:
            registry.unregister(name)


def tiny_spec(**train: Any) -> dict[str, Any]:
    """A spec of the tiny components at 16x16 (3 classes + dontcare + instance edges); `train` patches train:."""
    return {
        "name": "tiny",
        "labels": {"num_classes": 3, "dontcare": True, "instance_edges": True},
        "image_size": [16, 16],
        "generator": {"name": "test-tiny-gen", "ngf": 4},
        "discriminator": {"name": "test-tiny-disc", "ndf": 4},
        "losses": {"gan": {"name": "test-hinge"}, "feature_matching": {"name": "test-fm", "weight": 10.0}},
        "data": {"name": "test-tiny-data", "length": 8},
        "train": {"steps": 4, "batch_size": 2, "log_every": 1, "device": "cpu", **train},
    }


def tiny_overrides(name: str, **extra: object) -> list[str]:
    """`--set` items shrinking a named spec to the registered components' tiny test widths and a few steps."""
    spec = semsyn.load_spec(name)
    items = {"train.steps": 2, "train.batch_size": 2, "train.device": "cpu", "train.log_every": 1, "data.length": 8}
    registries = {"generator": GENERATORS, "encoder": ENCODERS, "discriminator": DISCRIMINATORS}
    for section, registry in registries.items():
        if spec.data.get(section):
            for key, value in registry.entry(spec.data[section]["name"]).test_params.items():
                items[f"{section}.{key}"] = value
    for term, cfg in (spec.data.get("losses") or {}).items():
        for key, value in LOSSES.entry(cfg["name"]).test_params.items():
            items[f"losses.{term}.{key}"] = value
    items.update(extra)
    return [a for k, v in items.items() for a in ("--set", f"{k}={json.dumps(v)}")]


if __name__ == "__main__":
    register()
    from semsyn.cli.train import main

    with quiet_cpu():
        sys.exit(main(sys.argv[1:]))
