"""semsyn: semantic image synthesis (label map in, photo out).

One registry holds the field's models, built from declarative specs, with pretrained weights on the
Hugging Face Hub and one trainer for all of them::

    import semsyn
    model = semsyn.create_model("spade-synthetic")   # a named spec; train it with `semsyn-train spade-synthetic`
    image = model.synthesize(label_map)              # (N, H, W) integers -> (N, 3, H, W) in [-1, 1]

What this module exports is the public API; nothing else is promised.
"""

from semsyn.errors import (
    CheckpointError,
    ConversionError,
    DatasetError,
    EvaluationError,
    HubError,
    LabelError,
    PluginError,
    RegistryError,
    SemsynError,
    SpecError,
    TrainingError,
)
from semsyn.evaluation import evaluate
from semsyn.factory import create_model, list_components, list_models
from semsyn.labels import LabelSchema
from semsyn.model import DiscriminatorOutput, SynthesisModel
from semsyn.registry import (
    COND_NORMS,
    DATASETS,
    DISCRIMINATORS,
    ENCODERS,
    GENERATORS,
    LOSSES,
    METRICS,
    NORMS,
    SEGMENTERS,
    Registry,
    ref,
)
from semsyn.resolve import ModelFolder, load_spec, resolve
from semsyn.spec import Range, Spec
from semsyn.style import Style

__version__ = "0.1.0"

__all__ = [
    "create_model",
    "list_models",
    "list_components",
    "load_spec",
    "resolve",
    "ModelFolder",
    "Spec",
    "Range",
    "SynthesisModel",
    "DiscriminatorOutput",
    "Style",
    "LabelSchema",
    "Registry",
    "ref",
    "GENERATORS",
    "ENCODERS",
    "DISCRIMINATORS",
    "LOSSES",
    "DATASETS",
    "METRICS",
    "SEGMENTERS",
    "NORMS",
    "COND_NORMS",
    "SemsynError",
    "SpecError",
    "RegistryError",
    "PluginError",
    "LabelError",
    "CheckpointError",
    "ConversionError",
    "DatasetError",
    "HubError",
    "TrainingError",
    "EvaluationError",
    "evaluate",
]
