"""Model cards rendered from the provenance record and the resolved spec, with `huggingface_hub.ModelCard`.

The card's metadata is a `ModelCardData`, so it is what the Hub validates. What semsyn writes sits
between two markers in the body; an existing card is merged: text outside the markers and metadata
keys semsyn does not own are kept, the keys semsyn owns (licence, tags, ...) are written anew, so an
old card can never keep claiming a licence the new weights do not have.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from semsyn.checkpoint import atomic_write_text
from semsyn.images import save_image
from semsyn.provenance import Provenance
from semsyn.spec import Spec

__all__ = ["render_card", "write_card", "license_id", "CARD_BEGIN", "CARD_END", "describe_spec"]

CARD_BEGIN = "<!-- semsyn:begin (generated; edit outside these markers) -->"
CARD_END = "<!-- semsyn:end -->"
_LICENSES = ("cc-by-nc-sa-4.0", "cc-by-nc-4.0", "cc-by-sa-4.0", "cc-by-4.0", "apache-2.0", "mit", "bsd-3-clause")
OWNED_KEYS = ("library_name", "license", "license_name", "pipeline_tag", "datasets", "base_model")
KIND_TEXT = {
    "random-init": "random initialisation (untrained)",
    "trained": "trained from scratch with semsyn",
    "fine-tuned": "fine-tuned with semsyn",
    "converted-official": "official checkpoint converted with semsyn-convert",
    "unknown": "no provenance record (saved before semsyn recorded one)",
}


def license_id(text: str | None) -> str | None:
    """The Hub licence id of a licence text ('CC-BY-NC-SA-4.0 (NVIDIA ...)' -> 'cc-by-nc-sa-4.0'), or None."""
    if not text:
        return None
    key = text.strip().split()[0].lower().rstrip(",;:")
    return key if key in _LICENSES else None


def _params(section: Mapping[str, Any] | None) -> str:
    if not section:
        return ""
    shown = [f"{k}={v}" for k, v in section.items() if k != "name" and isinstance(v, (int, float, str, bool))]
    return f"`{section['name']}`" + (f" ({', '.join(shown)})" if shown else "")


def describe_spec(spec: Spec, parameters: Mapping[str, int] | None = None) -> list[str]:
    """Card lines describing the networks from the real spec: widths, sizes, labels, parameter counts."""
    labels, (h, w) = spec.labels, spec.image_size
    lines = [f"- generator: {_params(spec.data['generator'])}"]
    for part in ("encoder", "discriminator"):
        if spec.data.get(part):
            lines.append(f"- {part}: {_params(spec.data[part])}")
    names = f" ({labels.names})" if isinstance(labels.names, str) else ""
    lines.append(
        f"- labels: {labels.num_classes} classes{names}, dontcare {'yes' if labels.dontcare else 'no'}, instance "
        f"edges {'yes' if labels.instance_edges else 'no'} -> {labels.label_channels} input channels"
    )
    lines.append(f"- output: {h}x{w} images in [-1, 1]")
    if parameters:
        lines.append("- stored weights: " + ", ".join(f"{p} {n / 1e6:.2f} M values" for p, n in parameters.items()))
    return lines


def _provenance_lines(prov: Provenance, license_text: str | None) -> list[str]:
    lines = [
        f"- kind: {prov.kind} ({KIND_TEXT[prov.kind]})",
        f"- origin: {prov.origin}",
        f"- licence: {license_text or 'not specified: whoever made these weights has not chosen one'}",
    ]
    if prov.parts:
        lines.append(f"- weights in this repo: {', '.join(prov.parts)}")
    if prov.untrained:
        lines.append(f"- stored untrained (random initialisation): {', '.join(prov.untrained)}")
    for name, digest in sorted(prov.sources.items()):
        lines.append(f"- source file `{name}` sha256 `{digest}`")
    if prov.steps is not None:
        lines.append(f"- training: {prov.steps} steps on {prov.dataset or 'an unnamed dataset'} (spec {prov.spec})")
    if prov.parent:
        lines.append(f"- parent: {prov.parent.get('source')} ({prov.parent.get('kind')}: {prov.parent.get('origin')})")
    lines.append(f"- recorded by semsyn {prov.semsyn_version}")
    return lines


def render_card(
    spec: Spec,
    provenance: Provenance,
    *,
    source: str,
    card: Mapping[str, Any] | None = None,
    sample_files: Iterable[str] = (),
    parameters: Mapping[str, int] | None = None,
) -> tuple[dict[str, Any], str]:
    """(metadata, generated body) of a model card.

    Args:
        spec: the resolved spec saved with the weights.
        provenance: the record stored with the weights.
        source: what `create_model` loads this model from ("hf-hub:org/name" or "local-dir:/abs/path").
        card: extra fields: tags, datasets, license (the maker's own choice for trained weights),
            description; other keys go into the metadata as they are.
        sample_files: images (paths relative to the folder) shown in the card.
        parameters: part -> parameter count.
    """
    extra = dict(card or {})
    gen = spec.data["generator"]["name"]
    license_text = extra.pop("license", None) or provenance.license
    lid = license_id(license_text)
    meta: dict[str, Any] = {
        "library_name": "semsyn",
        "license": lid or "other",
        "pipeline_tag": "image-to-image",
        "tags": sorted(
            {
                "semsyn",
                "semantic-image-synthesis",
                "image-generation",
                f"generator-{gen}",
                f"provenance-{provenance.kind}",
                *extra.pop("tags", []),
            }
        ),
    }
    if lid is None:
        meta["license_name"] = "see-model-card" if license_text else "not-specified"
    labels = spec.labels
    datasets = extra.pop("datasets", None) or ([labels.names] if isinstance(labels.names, str) else [])
    if datasets:
        meta["datasets"] = list(datasets)
    parent_source = (provenance.parent or {}).get("source", "")
    if provenance.kind == "fine-tuned" and parent_source.startswith("hf-hub:"):
        meta["base_model"] = parent_source[len("hf-hub:") :].partition("@")[0]
    h, w = spec.image_size
    title = spec.name or "semsyn model"
    description = extra.pop("description", None) or (
        f"A semantic image synthesis model ({gen} generator): a {labels.num_classes}-class label map in, "
        f"a {h}x{w} image out. Its weights: {KIND_TEXT[provenance.kind]}."
    )
    lines = [
        f"# {title}",
        "",
        description,
        "",
        *describe_spec(spec, parameters),
        "",
        "## Provenance",
        "",
        *_provenance_lines(provenance, license_text),
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
    for key, value in extra.items():
        meta.setdefault(key, value)
    return meta, "\n".join(lines) + "\n"


def _save_samples(folder: Path, samples: Mapping[str, Any]) -> list[str]:
    names = []
    for name, image in samples.items():
        rel = f"samples/{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        save_image(image, folder / rel)
        names.append(rel)
    return names


def write_card(
    folder: str | os.PathLike[str],
    spec: Spec,
    provenance: Provenance,
    *,
    source: str,
    card: Mapping[str, Any] | None = None,
    samples: Mapping[str, Any] | None = None,
    parameters: Mapping[str, int] | None = None,
) -> Path:
    """Write (or merge into) `folder/README.md`; returns its path."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    path = folder / "README.md"
    if samples:
        sample_files = _save_samples(folder, samples)
    elif (folder / "samples").is_dir():
        sample_files = sorted(str(p.relative_to(folder)) for p in (folder / "samples").glob("*.png"))
    else:
        sample_files = []
    meta, generated = render_card(
        spec, provenance, source=source, card=card, sample_files=sample_files, parameters=parameters
    )
    old = ModelCard(path.read_text(encoding="utf-8"), ignore_metadata_errors=True) if path.is_file() else None
    old_meta = old.data.to_dict() if old is not None else {}
    merged = {**{k: v for k, v in old_meta.items() if k not in OWNED_KEYS and k != "tags"}, **meta}
    # The old card's provenance and generator tags described other weights.
    kept = {t for t in old_meta.get("tags") or [] if not str(t).startswith(("provenance-", "generator-"))}
    merged["tags"] = sorted(set(meta["tags"]) | kept)
    old_body = old.text if old is not None else ""
    block = f"{CARD_BEGIN}\n{generated}{CARD_END}"
    if CARD_BEGIN in old_body and CARD_END in old_body:
        before, _, rest = old_body.partition(CARD_BEGIN)
        body = before + block + rest.partition(CARD_END)[2]
    else:
        body = block + ("\n\n" + old_body.strip() + "\n" if old_body.strip() else "\n")
    data = ModelCardData(**merged)
    return atomic_write_text(path, f"---\n{data.to_yaml()}\n---\n{body}")
