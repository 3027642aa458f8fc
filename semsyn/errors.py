"""The exceptions semsyn raises for anything a user can cause.

Every message says what went wrong, where (file:line, spec field, state-dict key, repo and revision)
and how to fix it. Catch `SemsynError` to handle all of them; the CLIs print its message as one line.
"""

from __future__ import annotations

__all__ = [
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
]


class SemsynError(Exception):
    """Base class of every error semsyn raises for a user-caused problem."""


class SpecError(SemsynError):
    """A spec is malformed, names an unknown component, or gives a parameter the component lacks."""


class RegistryError(SemsynError):
    """A registry lookup failed (unknown name) or a registration clashed with an existing one."""


class PluginError(SemsynError):
    """A plugin entry point could not be used."""


class LabelError(SemsynError):
    """A label map holds values outside the label schema, or has the wrong shape or dtype."""


class CheckpointError(SemsynError):
    """A weights file is missing, corrupt, unsafe to read, or does not match the model."""


class ConversionError(SemsynError):
    """An official checkpoint could not be converted (unmatched, unused or mis-shaped keys)."""


class DatasetError(SemsynError):
    """A dataset folder or file is missing, malformed, or disagrees with the spec's label schema."""


class HubError(SemsynError):
    """A Hub repository, revision or file could not be had, or does not hold a semsyn model."""


class TrainingError(SemsynError):
    """Training cannot go on (a non-finite loss, a run folder that cannot be resumed)."""


class EvaluationError(SemsynError):
    """An evaluation cannot run (missing FID weights or extra, a segmenter that does not fit the data)."""
