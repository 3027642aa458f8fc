"""The model side of the app: what a model offers the page, and one render per request.

The renderer asks the model what it can do rather than which family it is (semsyn's core knows no
family): `style_kind` says whether a style image can be encoded and whether styles are per class,
`renders_any_size` whether 2x / 4x outputs make sense. Models without those attributes get the plain
painting page.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from semsyn.app.labelmaps import AppInputError, check_painted, decode_image_upload

__all__ = ["Renderer", "RenderRequest", "SCALES", "MAX_STYLE_IMAGES"]

SCALES = (1, 2, 4)
MAX_STYLE_IMAGES = 16  # style images kept in memory (a page uses one at a time; a few tabs a few)


@dataclass
class RenderRequest:
    """What the page asks for.

    Args:
        ids: (H, W) class ids at the model's size, 255 = unpainted / unknown.
        seed: the style seed (another seed, another image, for models that draw a latent).
        scale: 1, 2 or 4: the output size is the model's size times this (any-size models only).
        style_token: the token of an uploaded style image, or None.
        class_seeds: class id -> seed: that class's style redrawn on its own (per-class styles only).
    """

    ids: np.ndarray
    seed: int = 0
    scale: int = 1
    style_token: str | None = None
    class_seeds: dict[int, int] = field(default_factory=dict)


class Renderer:
    """Renders label maps with one model, one request at a time.

    Args:
        model: a `SynthesisModel` (eval mode, on its device).
        source: how the model was named on the command line, shown in the page.
    """

    def __init__(self, model: Any, source: str = "") -> None:
        self.model = model
        self.source = source
        self.schema = model.labels
        self.size = tuple(int(v) for v in model.spec.image_size)
        self._lock = threading.Lock()  # one forward at a time: torch already uses every core for one
        self._styles: OrderedDict[str, np.ndarray] = OrderedDict()

    # -- what the page may offer ------------------------------------------------------------------
    @property
    def style_kind(self) -> str | None:
        """The model's style kind, "global", "per-class" or None (also for models predating the style API)."""
        return getattr(self.model, "style_kind", None)

    @property
    def takes_style_image(self) -> bool:
        """Whether a style image can be encoded: a style encoder and the `encode_style` API."""
        return self.style_kind is not None and self.model.encoder is not None and hasattr(self.model, "encode_style")

    @property
    def takes_class_seeds(self) -> bool:
        """Whether one class's style can be redrawn on its own (GroupDNet-style per-class latents)."""
        return self.style_kind == "per-class" and hasattr(self.model, "sample_style")

    @property
    def scales(self) -> tuple[int, ...]:
        """Output sizes offered, as multiples of the model's size."""
        return SCALES if getattr(self.model, "renders_any_size", False) else (1,)

    def info(self) -> dict[str, Any]:
        """Everything the page needs to build itself: classes, colours, size and the features on offer."""
        device = next(self.model.parameters()).device
        return {
            "name": self.model.spec.name or self.source,
            "source": self.source,
            "size": list(self.size),
            "device": str(device),
            "dontcare": bool(self.schema.dontcare),
            "unpainted": 255,
            "classes": [
                {"id": i, "name": name, "color": list(colour)}
                for i, (name, colour) in enumerate(zip(self.schema.class_names, self.schema.colors))
            ],
            "features": {
                "style_image": self.takes_style_image,
                "class_style": self.takes_class_seeds,
                "scales": list(self.scales),
            },
        }

    # -- inputs -----------------------------------------------------------------------------------
    def add_style_image(self, data: bytes) -> str:
        """Decode and keep a style image; returns the token a render request names it by."""
        if not self.takes_style_image:
            raise AppInputError(f"model {self.info()['name']!r} has no style encoder: it cannot copy a style image")
        image = decode_image_upload(data, self.size)
        token = hashlib.sha256(image.tobytes()).hexdigest()[:16]
        self._styles[token] = image
        self._styles.move_to_end(token)
        while len(self._styles) > MAX_STYLE_IMAGES:
            self._styles.popitem(last=False)
        return token

    def _style(self, label: torch.Tensor, request: RenderRequest) -> Any:
        """The `Style` the request asks for, or None for the model's own draw from `seed`."""
        style = None
        if request.style_token:
            image = self._styles.get(request.style_token)
            if image is None:
                raise AppInputError("the style image is no longer on the server (it restarted?): upload it again")
            if not self.takes_style_image:
                raise AppInputError("this model cannot copy a style image")
            device = next(self.model.parameters()).device
            style = self.model.encode_style(torch.from_numpy(image)[None].to(device), label)
        if request.class_seeds:
            if not self.takes_class_seeds:
                raise AppInputError("this model has no per-class styles: one class's style cannot change alone")
            if style is None:
                style = self.model.sample_style(1, seed=request.seed, size=self._out_size(request))
            for cls, seed in sorted(request.class_seeds.items()):
                style = style.resample_class(cls, seed=seed)
        return style

    def _out_size(self, request: RenderRequest) -> tuple[int, int] | None:
        if request.scale not in self.scales:
            offered = ", ".join(f"{s}x" for s in self.scales)
            raise AppInputError(f"this model renders at {offered} only, not {request.scale}x")
        return None if request.scale == 1 else (self.size[0] * request.scale, self.size[1] * request.scale)

    def warm_up(self) -> float:
        """Render one canvas of class 0 so the first stroke does not pay for allocations; returns milliseconds."""
        ids = np.zeros(self.size, dtype=np.int64)
        return self.render(RenderRequest(ids=ids))[1]

    # -- the render -------------------------------------------------------------------------------
    def render(self, request: RenderRequest) -> tuple[bytes, float]:
        """Render a request; returns (PNG bytes, milliseconds the model took).

        Raises:
            AppInputError: an empty or partly unpainted canvas, a bad scale or a stale style token.
            SemsynError: whatever the model refuses (its message is meant for people too).
        """
        from semsyn.images import to_pil

        if request.ids.shape != self.size:
            raise AppInputError(
                f"the canvas is {request.ids.shape[1]}x{request.ids.shape[0]}, the model's size is "
                f"{self.size[1]}x{self.size[0]}: reload the page"
            )
        check_painted(request.ids, self.schema)
        label = torch.from_numpy(request.ids.astype(np.int64))[None]
        size = self._out_size(request)
        with self._lock:
            start = time.perf_counter()
            style = self._style(label, request)
            kwargs: dict[str, Any] = {"seed": request.seed}
            if style is not None:
                kwargs["style"] = style
            if size is not None:
                kwargs["size"] = size
            image = self.model.synthesize(label, **kwargs)
            if device_is_cuda(image):
                torch.cuda.synchronize(image.device)
            elapsed = (time.perf_counter() - start) * 1000
        out = io.BytesIO()
        to_pil(image).save(out, format="PNG")
        return out.getvalue(), elapsed


def device_is_cuda(tensor: torch.Tensor) -> bool:
    """Whether timing must wait for the GPU (CUDA runs asynchronously)."""
    return tensor.device.type == "cuda"


def check_request_fields(seed: Any, scale: Any) -> tuple[int, int]:
    """Parse the seed and scale of a render request (query strings arrive as text)."""
    try:
        seed_value, scale_value = int(seed), int(scale)
    except (TypeError, ValueError):
        raise AppInputError(f"seed and scale must be integers, got seed={seed!r}, scale={scale!r}") from None
    if not 0 <= seed_value < 2**63:
        raise AppInputError(f"seed must be between 0 and 2**63 - 1, got {seed_value}")
    return seed_value, scale_value
