"""Spec -> modules: `build_model` for a whole `SynthesisModel`, and the component builders it rests on.

`build_component`, `build_networks`, `build_losses` and `injected_values` live in `semsyn.components`
(below the model layer, so `SynthesisModel.from_pretrained` can build without importing this module);
they are re-exported here, where callers have always found them.
"""

from __future__ import annotations

from semsyn.components import build_component, build_losses, build_networks, injected_values
from semsyn.model import SynthesisModel, build_model

__all__ = ["build_component", "build_model", "build_networks", "build_losses", "injected_values", "SynthesisModel"]
