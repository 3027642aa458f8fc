"""Provenance: where a model's weights came from, recorded when they are made and never inferred.

One JSON record lives in the metadata of `model.safetensors` under `semsyn_provenance`:

* ``kind``: ``random-init`` (built from a spec, untrained), ``trained`` (trained from scratch with
  semsyn), ``fine-tuned`` (trained from other weights: ``parent`` holds their record) or
  ``converted-official`` (an official checkpoint converted with semsyn-convert: ``sources`` holds the
  sha256 of every official file);
* ``origin`` (one sentence), ``license`` (the licence that applies to these weights, or None),
  ``parts`` (the networks the record covers), ``untrained`` (networks stored but random-init),
  ``spec``, ``steps``, ``dataset``, ``semsyn_version``.

Whoever makes weights writes the record: a fresh build is random-init, the converter and the trainer
write theirs. The model card is rendered from it. A record is only ever made less specific when parts
of a model are random: weights with random parts never claim an official origin or licence.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from semsyn.errors import CheckpointError

__all__ = ["Provenance", "KINDS", "METADATA_KEY", "semsyn_version", "trained"]

# "unknown" is only read, never written: weights saved before semsyn recorded provenance.
KINDS = ("random-init", "trained", "fine-tuned", "converted-official", "unknown")
METADATA_KEY = "semsyn_provenance"
RANDOM_ORIGIN = "randomly initialised by semsyn from the spec; untrained"


@functools.lru_cache(maxsize=1)
def semsyn_version() -> str:
    """The installed semsyn version (from the distribution's metadata)."""
    try:
        return metadata.version("semsyn")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Provenance:
    """The provenance record of a set of weights (see the module docstring).

    Args:
        kind: one of `KINDS`.
        origin: one sentence saying where the weights come from.
        license: the licence that applies to the weights, or None when none is known / chosen.
        parts: the networks the record covers.
        untrained: networks stored with the weights but never trained (random initialisation).
        sources: official file name -> sha256 (conversions).
        spec: the spec name the weights were made with.
        steps: training steps (trained and fine-tuned weights).
        dataset: the training dataset (its registry name).
        parent: the record of the weights a fine-tune started from, with their source under "source".
        semsyn_version: the semsyn that wrote the record.
    """

    kind: str = "random-init"
    origin: str = RANDOM_ORIGIN
    license: str | None = None
    parts: list[str] = field(default_factory=list)
    untrained: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    spec: str | None = None
    steps: int | None = None
    dataset: str | None = None
    parent: dict[str, Any] | None = None
    semsyn_version: str = field(default_factory=semsyn_version)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CheckpointError(f"provenance kind {self.kind!r} is not one of {', '.join(KINDS)}")

    # -- constructors -------------------------------------------------------------------------------
    @classmethod
    def random_init(cls, spec: str | None, parts: Iterable[str] = ()) -> Provenance:
        """The record of a freshly built model: every part random."""
        return cls(kind="random-init", spec=spec, untrained=sorted(parts))

    @classmethod
    def from_json(cls, text: str, where: str = "weights metadata") -> Provenance:
        """Parse the JSON record; CheckpointError for a damaged one."""
        try:
            data = json.loads(text)
            names = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in names})
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"{where}: the provenance record is not valid ({exc})") from None

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], spec: str | None, parts: Iterable[str]) -> Provenance:
        """The record in a safetensors metadata mapping.

        Weights written before records existed carry none: they are reported as of unknown origin (kind
        unknown, no licence), never as official.
        """
        text = meta.get(METADATA_KEY)
        if text is not None:
            return cls.from_json(text)
        origin = "unknown: these weights carry no provenance record"
        return cls(kind="unknown", origin=origin, spec=spec, parts=sorted(parts))

    # -- transforms ---------------------------------------------------------------------------------
    def to_json(self) -> str:
        """The record as compact JSON (what the weights' metadata stores)."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"))

    def to_dict(self) -> dict[str, Any]:
        """A plain copy."""
        return dataclasses.asdict(self)

    def stored(self, stored_parts: Iterable[str], trained_parts: Iterable[str]) -> Provenance:
        """The record of the weights actually written: parts stored but untrained are named as such.

        Stored weights with no trained part at all are random-init, whatever record the model carried.
        """
        stored, trained = sorted(set(stored_parts)), set(trained_parts)
        covered = [p for p in stored if p in trained]
        untrained = [p for p in stored if p not in trained]
        if not covered:
            return Provenance.random_init(self.spec, stored)
        return dataclasses.replace(self, parts=covered, untrained=untrained)

    def as_parent(self, source: str) -> dict[str, Any]:
        """This record as the `parent` of weights trained from it."""
        return {"source": source, **self.to_dict()}

    def fine_tuned(
        self, source: str, *, spec: str | None, steps: int, dataset: str | None, parts: Iterable[str]
    ) -> Provenance:
        """The record of weights trained `steps` steps from these (from `source`).

        Random-init parents do not make a fine-tune: training from random weights is training.
        """
        if self.kind == "random-init":
            return trained(spec, steps, dataset, parts)
        return Provenance(
            kind="fine-tuned",
            origin=f"fine-tuned with semsyn-train for {steps} steps on {dataset or 'a dataset'} from {source} "
            f"({self.kind}: {self.origin})",
            # A fine-tune is a derivative: the parent's licence (e.g. CC-BY-NC-SA) still binds it.
            license=self.license,
            spec=spec,
            steps=steps,
            dataset=dataset,
            parts=sorted(parts),
            parent=self.as_parent(source),
        )


def _trained_origin(spec: str | None, steps: int, dataset: str | None) -> str:
    return f"trained from scratch with semsyn-train ({spec or 'a spec'}, {steps} steps on {dataset or 'a dataset'})"


def trained(spec: str | None, steps: int, dataset: str | None, parts: Iterable[str]) -> Provenance:
    """The record of weights trained from scratch."""
    return Provenance(
        kind="trained",
        origin=_trained_origin(spec, steps, dataset),
        spec=spec,
        steps=steps,
        dataset=dataset,
        parts=sorted(parts),
    )
