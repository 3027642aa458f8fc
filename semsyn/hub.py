"""The Hugging Face Hub as semsyn's model store: pull, push, model cards.

A semsyn repo holds everything needed to rebuild the model: `spec.yaml` (resolved), `model.safetensors`
(keys prefixed `generator.`, `encoder.`, `discriminator.`) and a model card `README.md`
(`library_name: semsyn`). All transfers go through the real `huggingface_hub` client, so its cache,
`HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_HUB_CACHE` and tokens work as they do for any HF library; semsyn
reads those variables at call time, not only at import.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from semsyn.errors import HubError, SemsynError
from semsyn.spec import Spec

__all__ = [
    "parse_hub_source",
    "download_spec",
    "download_file",
    "load_from_hub",
    "push_model",
    "push_folder",
    "write_model_card",
    "render_model_card",
]

logger = logging.getLogger(__name__)
CARD_BEGIN = "<!-- semsyn:begin (generated; edit outside these markers) -->"
CARD_END = "<!-- semsyn:end -->"
_LICENSES = {"cc-by-nc-sa-4.0": "cc-by-nc-sa-4.0", "apache-2.0": "apache-2.0", "mit": "mit", "cc-by-4.0": "cc-by-4.0"}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _client_kwargs() -> dict[str, Any]:
    """Endpoint and cache from the environment at call time (the client reads them only at import)."""
    out: dict[str, Any] = {}
    if os.environ.get("HF_ENDPOINT"):
        out["endpoint"] = os.environ["HF_ENDPOINT"].rstrip("/")
    if os.environ.get("HF_HUB_CACHE"):
        out["cache_dir"] = os.environ["HF_HUB_CACHE"]
    return out


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or _env_flag("HF_HUB_OFFLINE")


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """'hf-hub:org/name@rev' -> ('org/name', 'rev')."""
    body = source[len("hf-hub:") :] if source.startswith("hf-hub:") else source
    repo_id, _, revision = body.partition("@")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise HubError(f"{source!r} is not a Hub source: write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return repo_id, (revision or None)


def _fix_for_name(name: str | None, repo_id: str) -> str:
    if not name:
        return "check the repo id, or publish the model with SynthesisModel.push_to_hub / semsyn-push"
    return (
        f"the weights of {name!r} are not published there: convert the official checkpoint with "
        f"'semsyn-convert official CHECKPOINT_DIR --out DIR --name {name} --push-to-hub {repo_id}' "
        "(see docs/hub.md), or load a folder you converted with create_model('local-dir:DIR', pretrained=True)"
    )


def download_file(
    repo_id: str, filename: str, revision: str | None = None, *, token: str | None = None, name: str | None = None
) -> Path:
    """One file of a Hub repo through `hf_hub_download` (cache, offline mode, tokens); HubError on failure."""
    from huggingface_hub import errors as hf_errors
    from huggingface_hub import hf_hub_download

    rev = revision or "main"
    where = f"{repo_id}@{rev}"
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, token=token, local_files_only=_offline(), **_client_kwargs()
        )
    except hf_errors.RepositoryNotFoundError:
        raise HubError(
            f"Hub repo {repo_id} does not exist (or is private and no token was given); {_fix_for_name(name, repo_id)}"
        ) from None
    except hf_errors.RevisionNotFoundError:
        raise HubError(
            f"Hub repo {repo_id} has no revision {rev!r}; use an existing branch, tag or commit id "
            "(huggingface_hub.list_repo_refs lists them)"
        ) from None
    except hf_errors.LocalEntryNotFoundError:
        raise HubError(
            f"{filename} of {where} is not in the Hub cache and the Hub cannot be reached "
            f"({'HF_HUB_OFFLINE is set' if _offline() else 'no connection'}); load it once online, or unset "
            "HF_HUB_OFFLINE"
        ) from None
    except hf_errors.EntryNotFoundError:
        missing = f"it has no {filename}"
        if filename == "spec.yaml":
            raise HubError(
                f"{where} is not a semsyn model: {missing}; semsyn repos hold spec.yaml and "
                "model.safetensors (publish with push_to_hub)"
            ) from None
        raise HubError(f"{where} is incomplete: {missing}; publish it again with push_to_hub") from None
    except (hf_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise HubError(f"cannot download {filename} of {where}: {type(exc).__name__}: {exc}") from None
    return Path(path)


def download_spec(source: str, revision: str | None = None) -> Path:
    """The spec.yaml of an 'hf-hub:org/name[@rev]' source."""
    repo_id, rev = parse_hub_source(source)
    return download_file(repo_id, "spec.yaml", revision or rev)


def load_from_hub(
    source: str, *, pretrained: bool, revision: str | None, with_discriminator: bool, overrides: Mapping[str, Any]
) -> Any:
    """The model of a hub_configs name or an 'hf-hub:' source, with weights when `pretrained`."""
    from semsyn.builder import build_model
    from semsyn.checkpoint import load_safetensors
    from semsyn.spec import load_spec

    if source.startswith("hf-hub:"):
        repo_id, rev = parse_hub_source(source)
        rev = revision or rev
        spec = load_spec(download_file(repo_id, "spec.yaml", rev), overrides=overrides)
        name = None
    else:
        spec = load_spec(source, overrides=overrides)
        name = source
        repo_id = spec.pretrained.get("repo_id")
        rev = revision or spec.pretrained.get("revision")
        if not repo_id:
            raise HubError(
                f"{source!r} names no Hub repo (its spec has no pretrained.repo_id): no weights to pull; "
                "build it with pretrained=False"
            )
    model = build_model(spec, with_discriminator=with_discriminator)
    if pretrained:
        weights = download_file(repo_id, "model.safetensors", rev, name=name)
        try:
            state = load_safetensors(weights)
        except SemsynError as exc:
            raise type(exc)(f"{exc} (from Hub repo {repo_id}@{rev or 'main'})") from None
        model.load_weights(state, f"{repo_id}@{rev or 'main'}/model.safetensors")
    return model


# -- model cards ---------------------------------------------------------------------------------
def _split_card(text: str) -> tuple[dict[str, Any], str]:
    if text.startswith("---"):
        parts = text.split("\n---", 1)
        if len(parts) == 2:
            try:
                meta = yaml.safe_load(parts[0][3:]) or {}
            except yaml.YAMLError:
                meta = {}
            body = parts[1].split("\n", 1)[1] if "\n" in parts[1] else ""
            return (meta if isinstance(meta, dict) else {}), body
    return {}, text


def _license_id(text: str | None) -> str:
    if not text:
        return "other"
    key = text.strip().split()[0].lower()
    return _LICENSES.get(key, "other")


def _save_samples(folder: Path, samples: Mapping[str, Any]) -> list[str]:
    from semsyn.images import save_image

    names = []
    for name, image in samples.items():
        rel = f"samples/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        save_image(image, folder / rel)
        names.append(rel)
    return names


def render_model_card(
    spec: Spec, *, card: Mapping[str, Any] | None = None, parts: Iterable[str] = (), sample_files: Iterable[str] = ()
) -> tuple[dict[str, Any], str]:
    """Front-matter metadata and the generated body of a model card."""
    card = dict(card or {})
    pre = spec.pretrained
    gen = spec.data["generator"]["name"]
    labels = spec.labels
    license_text = card.pop("license", None) or pre.get("license")
    meta: dict[str, Any] = {
        "library_name": "semsyn",
        "license": _license_id(license_text),
        "tags": sorted(
            {
                "semsyn",
                "semantic-image-synthesis",
                "image-generation",
                f"generator-{gen}",
                *card.pop("tags", []),
                *pre.get("tags", []),
            }
        ),
        "pipeline_tag": "image-to-image",
    }
    datasets = (
        card.pop("datasets", None) or pre.get("datasets") or ([labels.names] if isinstance(labels.names, str) else [])
    )
    if datasets:
        meta["datasets"] = list(datasets)
    if meta["license"] == "other" and license_text:
        meta["license_name"] = "see-model-card"
    source = card.pop("source", None) or (
        f"hf-hub:{card.pop('repo_id')}" if card.get("repo_id") else "local-dir:PATH_TO_THIS_FOLDER"
    )
    h, w = spec.image_size
    lines = [
        f"# {spec.name or 'semsyn model'}",
        "",
        card.pop("description", None)
        or spec.data.get("description")
        or "A semantic image synthesis model (label map in, image out).",
        "",
        f"- generator: `{gen}`"
        + (f", encoder: `{spec.data['encoder']['name']}`" if spec.data.get("encoder") else "")
        + (f", discriminator: `{spec.data['discriminator']['name']}`" if spec.data.get("discriminator") else ""),
        f"- weights in this repo: {', '.join(parts) or 'none'}",
        f"- labels: {labels.describe()}; instance edges: {'yes' if labels.instance_edges else 'no'}; output {h}x{w}",
        f"- origin: {card.pop('origin', None) or pre.get('origin') or 'trained with semsyn'}",
        f"- licence: {license_text or 'not stated'}",
        "",
        "## Usage",
        "",
        "```python",
        "import torch, semsyn",
        f'model = semsyn.create_model("{source}", pretrained=True)',
        f"label = torch.randint(0, {labels.num_classes}, (1, {h}, {w}))   # integer label map",
        "image = model.synthesize(label, seed=0)                 # (1, 3, H, W) in [-1, 1]",
        "```",
    ]
    for rel in sample_files:
        lines += ["", f"![{Path(rel).stem}]({rel})"]
    for key, value in card.items():
        meta.setdefault(key, value)
    return meta, "\n".join(lines) + "\n"


def write_model_card(
    folder: str | os.PathLike[str],
    spec: Spec,
    *,
    card: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | None = None,
    parts: Iterable[str] = (),
) -> Path:
    """Write README.md; an existing card is merged: its metadata kept (ours added) and its own text kept."""
    from semsyn.checkpoint import atomic_write_text

    folder = Path(folder)
    path = folder / "README.md"
    sample_files = (
        _save_samples(folder, samples)
        if samples
        else sorted(str(p.relative_to(folder)) for p in (folder / "samples").glob("*.png"))
        if (folder / "samples").is_dir()
        else []
    )
    meta, generated = render_model_card(spec, card=card, parts=parts, sample_files=sample_files)
    old_meta, old_body = _split_card(path.read_text(encoding="utf-8")) if path.is_file() else ({}, "")
    merged = {**meta, **{k: v for k, v in old_meta.items() if k not in ("library_name",)}}
    merged["tags"] = sorted(set(meta.get("tags", [])) | set(old_meta.get("tags", []) or []))
    block = f"{CARD_BEGIN}\n{generated}{CARD_END}"
    if CARD_BEGIN in old_body and CARD_END in old_body:
        before, _, rest = old_body.partition(CARD_BEGIN)
        body = before + block + rest.partition(CARD_END)[2]
    else:
        body = block + ("\n\n" + old_body.strip() + "\n" if old_body.strip() else "\n")
    text = "---\n" + yaml.safe_dump(merged, sort_keys=False) + "---\n" + body
    return atomic_write_text(path, text)


# -- push ----------------------------------------------------------------------------------------
def _api(token: str | None) -> Any:
    from huggingface_hub import HfApi

    kwargs = _client_kwargs()
    kwargs.pop("cache_dir", None)
    return HfApi(token=token, **kwargs)


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a semsyn model folder to a Hub repo (created if needed); returns the commit id."""
    from huggingface_hub import errors as hf_errors

    folder = Path(folder)
    for needed in ("spec.yaml", "model.safetensors"):
        if not (folder / needed).is_file():
            raise HubError(
                f"{folder} is not a semsyn model folder: it has no {needed} (write one with save_pretrained)"
            )
    api = _api(token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with semsyn",
        )
    except (hf_errors.HfHubHTTPError, OSError, ValueError) as exc:
        raise HubError(
            f"pushing {folder} to {repo_id}@{revision or 'main'} failed: {type(exc).__name__}: {exc}"
        ) from None
    return info.oid


def _existing_card(repo_id: str, revision: str | None, token: str | None, into: Path) -> None:
    """Fetch the repo's current README.md (if any) so the new card merges into it."""
    try:
        text = download_file(repo_id, "README.md", revision, token=token).read_text(encoding="utf-8")
    except HubError:  # no repo or no card yet: nothing to merge
        return
    (into / "README.md").write_text(text, encoding="utf-8")


def push_model(
    model: Any,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
    card: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | None = None,
) -> str:
    """`SynthesisModel.push_to_hub`: stage the model folder (merging the existing card) and upload it."""
    with tempfile.TemporaryDirectory(prefix="semsyn-push-") as tmp:
        staging = Path(tmp)
        _existing_card(repo_id, revision, token, staging)
        model.save_pretrained(
            staging,
            card={"repo_id": repo_id, **(card or {})},
            samples=samples,
            parts=sorted(model.trained_parts) or None,
        )
        return push_folder(
            staging, repo_id, revision=revision, private=private, token=token, commit_message=commit_message
        )
