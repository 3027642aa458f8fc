"""A stand-in for models with the style API of api.md (branches groupdnet, posgen), for the app's tests.

`StyledModel` wraps a real `SynthesisModel` and adds `style_kind = "per-class"`, an encoder,
`encode_style`, `sample_style` and `renders_any_size`, recording each call, so the app's style
controls can be tested on a branch whose models have none of them.
"""

from __future__ import annotations

import torch


class FakeStyle:
    """Records the per-class operations the renderer applies."""

    def __init__(self, log: list) -> None:
        self.log = log

    def resample_class(self, cls: int, seed: int | None = None) -> FakeStyle:
        self.log.append(("resample_class", cls, seed))
        return self


class StyledModel:
    """A model with the style API of api.md (per-class styles, an encoder, any-size rendering), recording calls."""

    def __init__(self, inner) -> None:
        self.inner, self.log = inner, []
        self.labels, self.spec, self.encoder = inner.labels, inner.spec, object()
        self.style_kind, self.renders_any_size = "per-class", True

    def parameters(self):
        return self.inner.parameters()

    def encode_style(self, image, label):
        self.log.append(("encode_style", tuple(image.shape), tuple(label.shape)))
        return FakeStyle(self.log)

    def sample_style(self, batch=1, *, seed=None, size=None):
        self.log.append(("sample_style", seed, size))
        return FakeStyle(self.log)

    def synthesize(self, label, **kwargs):
        self.log.append(("synthesize", sorted(kwargs), kwargs.get("size")))
        return torch.zeros(1, 3, *(kwargs.get("size") or label.shape[-2:]))
