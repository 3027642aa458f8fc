"""One resolver for every model source, and the one writer of model folders.

`resolve(source, revision=None)` turns any source into a `ModelFolder`:

* a named spec (`"spade-coco"`): `hub_configs/spade-coco.yaml`; weights from its `pretrained.repo_id`,
  only when `published: true`;
* `"hf-hub:org/name[@rev]"`: `spec.yaml` and `model.safetensors` at the one commit `rev` points to;
* `"local-dir:PATH"` or a model folder: `PATH/spec.yaml` and `PATH/model.safetensors`;
* a run folder (`semsyn-train --out`): its `final/`, else its newest complete checkpoint (with the EMA
  generator when there is one);
* `"path/to/spec.yaml"`: the spec, no weights.

A Hub folder is pinned to one commit when resolved, so its spec and its weights always come from one
snapshot. `write_model_folder` writes spec.yaml, model.safetensors (with the provenance record in its
metadata) and the model card; `push_folder` stages a folder (merging the repo's existing card) and
uploads it. `SynthesisModel.save_pretrained` / `push_to_hub`, `semsyn-push`, the converter and the
trainer all use these two.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from semsyn import hub
from semsyn.card import write_card
from semsyn.checkpoint import load_safetensors, read_metadata, save_safetensors
from semsyn.errors import CheckpointError, HubError, SemsynError
from semsyn.named import hub_config_path
from semsyn.provenance import METADATA_KEY, Provenance
from semsyn.spec import Spec
from semsyn.spec import load_spec as load_local_spec
from semsyn.training.checkpoints import WEIGHTS_FILE as CHECKPOINT_WEIGHTS
from semsyn.training.checkpoints import latest_checkpoint

__all__ = [
    "ModelFolder",
    "resolve",
    "load_spec",
    "write_model_folder",
    "push_folder",
    "unpublished_message",
    "PARTS",
    "SPEC_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
]

PARTS = ("generator", "encoder", "discriminator")
SPEC_NAME = "spec.yaml"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
PARTS_KEY = "semsyn_parts"


def unpublished_message(name: str, pretrained: Mapping[str, Any]) -> str:
    """How to get weights for a named spec whose semsyn weights are not on the Hub."""
    official = pretrained.get("official_checkpoint")
    if not official:
        return (
            f"no weights are published for {name!r} and no official checkpoint of it exists: train it with "
            f"'semsyn-train {name}', then load it with semsyn.create_model('local-dir:RUN_DIR/final', pretrained=True)"
        )
    return (
        f"no semsyn weights are published for {name!r} (its spec says published: false). To get them: download "
        f"the official checkpoint ({official}), convert it with 'semsyn-convert official CHECKPOINT_DIR --out DIR "
        f"--name {name} --push-to-hub ORG/NAME', then load it with "
        f'semsyn.create_model("hf-hub:ORG/NAME", pretrained=True) (or "local-dir:DIR" without pushing)'
    )


@dataclass
class ModelFolder:
    """What one model source holds: a spec, maybe weights, their provenance; a Hub one pinned to a commit.

    Args:
        source: the source as given.
        spec_file: a local spec.yaml (downloaded for Hub sources).
        weights_file: the local weights file, or None (fetched on demand for a Hub folder).
        repo_id, revision, commit: the Hub repo, the revision asked for, and the commit it was pinned to.
        name: the named spec this folder is (named sources only).
        checkpoint: the weights are a training checkpoint's (EMA generator under `ema.`).
    """

    source: str
    spec_file: Path
    weights_file: Path | None = None
    repo_id: str | None = None
    revision: str | None = None
    commit: str | None = None
    name: str | None = None
    checkpoint: bool = False
    _pretrained: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """How errors name this folder."""
        if self.repo_id:
            return f"{self.repo_id}@{self.revision or 'main'}"
        return str(self.weights_file or self.spec_file)

    @property
    def load_source(self) -> str:
        """What create_model loads this very folder from again (a Hub folder at its pinned commit)."""
        if self.repo_id:
            return f"hf-hub:{self.repo_id}@{self.commit or self.revision or 'main'}"
        if self.weights_file is not None and not self.checkpoint:
            return f"local-dir:{self.weights_file.parent.resolve()}"
        return self.source

    def spec(self, overrides: Iterable[str] | Mapping[str, Any] | None = None) -> Spec:
        """The folder's spec (validated), with overrides applied."""
        return load_local_spec(self.spec_file, overrides=overrides or None)

    def published(self, revision: str | None = None) -> ModelFolder:
        """For a named spec: the Hub folder of its published weights; HubError at once when there are none."""
        if self.name is None:
            return self
        if not self._pretrained.get("published"):
            raise HubError(unpublished_message(self.name, self._pretrained))
        repo_id = self._pretrained.get("repo_id")
        if not repo_id:
            raise HubError(f"{self.spec_file}: published: true but no pretrained.repo_id says where; fix the spec")
        return resolve(f"hf-hub:{repo_id}", revision or self._pretrained.get("revision"))

    def weights_path(self) -> Path:
        """The local weights file (downloaded at the pinned commit for a Hub folder)."""
        if self.weights_file is not None:
            return self.weights_file
        if self.name is not None:
            return self.published().weights_path()
        if self.repo_id is None:
            raise HubError(
                f"{self.source} is a spec file: it holds no weights. Use 'local-dir:FOLDER' for a saved model, "
                "'hf-hub:org/name' for a Hub repo, or a name from semsyn.list_models()"
            )
        self.weights_file = hub.download_file(self.repo_id, WEIGHTS_NAME, self.commit, where=self.where)
        return self.weights_file

    def read_weights(self) -> tuple[dict[str, torch.Tensor], Provenance]:
        """(weights keyed `generator.` / `encoder.` / `discriminator.`, their provenance record)."""
        path = self.weights_path()
        if not path.is_file():
            raise CheckpointError(
                f"{path.parent} has no {path.name}; pass pretrained=False to build the model untrained"
            )
        try:
            state = load_safetensors(path)
            meta = read_metadata(path)
        except SemsynError as exc:
            raise type(exc)(f"{exc} (from {self.where})" if self.repo_id else str(exc)) from None
        if self.checkpoint:
            # A run checkpoint: the EMA generator (when there is one) is the generator a user wants.
            ema = {k[4:]: v for k, v in state.items() if k.startswith("ema.")}
            state = {k: v for k, v in state.items() if not k.startswith("ema.")}
            if ema:
                state = {k: v for k, v in state.items() if not k.startswith("generator.")}
                state.update({f"generator.{k}": v for k, v in ema.items()})
        parts = sorted({k.partition(".")[0] for k in state})
        spec_name = self.spec().name
        return state, Provenance.from_metadata(meta, spec_name, parts)


def _local(source: str, folder: Path) -> ModelFolder:
    return ModelFolder(source=source, spec_file=folder / SPEC_NAME, weights_file=folder / WEIGHTS_NAME)


def _from_directory(source: str, folder: Path) -> ModelFolder:
    if (folder / "final" / SPEC_NAME).is_file():
        return _local(source, folder / "final")
    checkpoint = latest_checkpoint(folder) if (folder / SPEC_NAME).is_file() else None
    if checkpoint is not None:
        return ModelFolder(
            source=source, spec_file=folder / SPEC_NAME, weights_file=checkpoint / CHECKPOINT_WEIGHTS, checkpoint=True
        )
    if (folder / SPEC_NAME).is_file():
        return _local(source, folder)
    raise SemsynError(f"{folder} is neither a model folder nor a run folder: it has no {SPEC_NAME}")


def resolve(source: str | os.PathLike[str], revision: str | None = None, *, token: str | None = None) -> ModelFolder:
    """The `ModelFolder` of any source (see the module docstring); Hub sources are pinned to a commit now.

    Args:
        source: a named spec, "hf-hub:org/name[@rev]", "local-dir:PATH", a model or run folder, a spec file.
        revision: Hub branch, tag or commit (wins over an @rev in the source and a named spec's revision).
        token: Hub token for private repos.

    Raises:
        HubError: the repo, revision or spec.yaml cannot be had.  SpecError: an unknown name or missing file.
    """
    text = os.fspath(source)
    if text.startswith("hf-hub:"):
        repo_id, rev = hub.parse_hub_source(text)
        rev = revision or rev
        where = f"{repo_id}@{rev or 'main'}"
        commit = hub.pin_revision(repo_id, rev, token=token)
        spec_file = hub.download_file(repo_id, SPEC_NAME, commit, token=token, where=where)
        hub.remember_revision(spec_file, rev, commit)
        return ModelFolder(source=text, spec_file=spec_file, repo_id=repo_id, revision=rev, commit=commit)
    if text.startswith("local-dir:"):
        return _local(text, Path(text[len("local-dir:") :]))
    path = Path(text)
    if path.is_dir():
        return _from_directory(text, path)
    named = hub_config_path(text) if not path.is_file() else None
    if named is not None:
        pre = load_local_spec(named).pretrained
        return ModelFolder(source=text, spec_file=named, name=text, revision=revision, _pretrained=pre)
    if not path.is_file() and not text.endswith((".yaml", ".yml")):
        load_local_spec(text)  # raises the SpecError that names the close matches
    return ModelFolder(source=text, spec_file=path)


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Iterable[str] | Mapping[str, Any] | None = None,
    *,
    revision: str | None = None,
) -> Spec:
    """Load and validate the spec of any source (`resolve`'s sources, or a mapping).

    Args:
        source: a named spec, a spec file, "local-dir:PATH", a run folder, "hf-hub:org/name[@rev]", or a mapping.
        overrides: `--set` style strings or a nested patch; an error in a field they set names the override.
        revision: Hub revision for hf-hub sources.
    """
    if isinstance(source, Mapping):
        return load_local_spec(source, overrides)
    return resolve(source, revision).spec(overrides)


# -- writing ------------------------------------------------------------------------------------------
def _tensor_counts(weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for key, value in weights.items():
        part = key.partition(".")[0]
        counts[part] = counts.get(part, 0) + value.numel()
    return counts


def _stored_spec(spec: Spec) -> Spec:
    """The spec a model folder stores: resolved, and without the `pretrained` section of a named spec
    (that says where published weights of the name live, not what this folder is)."""
    resolved = spec.resolved()
    if resolved.data.get("pretrained") is None:
        return resolved
    data = resolved.to_dict()
    data.pop("pretrained")
    return Spec(data, resolved.source, resolved.where.lines)


def write_model_folder(
    folder: str | os.PathLike[str],
    spec: Spec,
    weights: Mapping[str, torch.Tensor],
    provenance: Provenance,
    *,
    source: str | None = None,
    card: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | None = None,
) -> Path:
    """Write spec.yaml, model.safetensors (provenance in its metadata) and README.md; returns the folder.

    Args:
        source: what the card's usage snippet loads (default "local-dir:<absolute folder>").
        card, samples: extra card fields and sample images (see `semsyn.card.render_card`).
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _stored_spec(spec).dump(out / SPEC_NAME)
    parts = sorted({k.partition(".")[0] for k in weights})
    metadata = {PARTS_KEY: ",".join(parts), METADATA_KEY: provenance.to_json()}
    save_safetensors(weights, out / WEIGHTS_NAME, metadata=metadata)
    write_card(
        out,
        spec,
        provenance,
        source=source or f"local-dir:{out.resolve()}",
        card=card,
        samples=samples,
        parameters=_tensor_counts(weights),
    )
    return out


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    card: Mapping[str, Any] | None = None,
) -> str:
    """Publish a model folder to a Hub repo (created if needed); returns the commit id.

    The folder is staged: the repo's current card (if any) replaces the folder's and the generated part is
    rendered anew from the folder's spec and provenance, with the usage snippet for `repo_id`; what others
    wrote on the Hub outside semsyn's markers survives.
    """
    folder = Path(folder)
    for needed in (SPEC_NAME, WEIGHTS_NAME):
        if not (folder / needed).is_file():
            raise HubError(
                f"{folder} is not a semsyn model folder: it has no {needed} (write one with save_pretrained)"
            )
    local = _local(str(folder), folder)
    spec = local.spec()
    parts = sorted(p for p in read_metadata(folder / WEIGHTS_NAME).get(PARTS_KEY, "").split(",") if p)
    provenance = Provenance.from_metadata(read_metadata(folder / WEIGHTS_NAME), spec.name, parts)
    with tempfile.TemporaryDirectory(prefix="semsyn-push-") as tmp:
        staging = Path(tmp) / "model"
        shutil.copytree(folder, staging, ignore=shutil.ignore_patterns(".*"))
        existing = hub.fetch_text(repo_id, CARD_NAME, revision, token)
        if existing is not None:
            (staging / CARD_NAME).write_text(existing, encoding="utf-8")
        counts = _tensor_counts(load_safetensors(staging / WEIGHTS_NAME, verify=False))
        write_card(staging, spec, provenance, source=f"hf-hub:{repo_id}", card=card, parameters=counts)
        return hub.upload_folder(
            staging, repo_id, revision=revision, private=private, token=token, commit_message=commit_message
        )
