"""Official checkpoints -> semsyn model folders, through per-family key tables checked both ways.

A family that can read official checkpoints registers an *official format* in `OFFICIAL_FORMATS`:
an object with

* ``section(part, opt) -> dict | None``: the spec section (`{name: ..., **params}`) of `part`
  ("generator", "encoder" or "discriminator") that the official options describe, or None when the
  options name a network of another family;
* ``key_table(part, opt) -> KeyTable``: how that part's official keys become semsyn keys.

The engine reads the options (opt.txt or a JSON of `vars(opt)`; opt.pkl is never read), asks every
format for each part, builds the model, maps the keys (a source key no rule uses, a target key no
source fills, or a shape mismatch fails, listing every offending key), loads strictly, and writes a
model folder. `.pth` files are read with `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from semsyn.checkpoint import file_sha256, torch_load
from semsyn.errors import ConversionError, SemsynError
from semsyn.model import build_model
from semsyn.named import hub_config_path
from semsyn.provenance import Provenance
from semsyn.registry import Registry
from semsyn.spec import Spec
from semsyn.spec import load_spec as load_local_spec

__all__ = ["KeyTable", "OFFICIAL_FORMATS", "read_options", "labels_from_options", "convert_official", "PARTS_FILES"]

logger = logging.getLogger(__name__)

OFFICIAL_FORMATS = Registry(
    "official-format",
    "object with section(part, opt) -> spec section | None and key_table(part, opt) -> KeyTable, for parts "
    "'generator', 'encoder', 'discriminator' of an official checkpoint folder.",
)
PARTS_FILES = {"generator": "latest_net_G.pth", "encoder": "latest_net_E.pth", "discriminator": "latest_net_D.pth"}


@dataclass(frozen=True)
class KeyTable:
    """Ordered rules mapping official keys to semsyn keys; the first rule whose regex matches wins.

    Args:
        rules: (source regex, target template) pairs; the template uses `\\1`-style groups, and None
            drops the key (for tensors the official code stores but never uses, e.g. CC-FPSE's dead
            BatchNorms). Keys no rule matches are errors.
    """

    rules: tuple[tuple[str, str | None], ...] = ((r"(.*)", r"\1"),)

    def map_key(self, key: str) -> tuple[bool, str | None]:
        """(matched, target); target None means the rule drops the key."""
        for pattern, target in self.rules:
            m = re.fullmatch(pattern, key)
            if m:
                return True, (m.expand(target) if target is not None else None)
        return False, None

    def apply(
        self, source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], where: str
    ) -> dict[str, torch.Tensor]:
        """Map `source` onto the keys and shapes of `target`; every problem is reported at once."""
        out: dict[str, torch.Tensor] = {}
        unused, shapes, twice, dropped = [], [], [], []
        for key, value in source.items():
            matched, new = self.map_key(key)
            if not matched or (new is not None and new not in target):
                unused.append(key if not matched else f"{key} (-> {new})")
                continue
            if new is None:
                dropped.append(key)
                continue
            if new in out:
                twice.append(new)
            elif tuple(value.shape) != tuple(target[new].shape):
                shapes.append(f"{key} {tuple(value.shape)} vs {new} {tuple(target[new].shape)}")
            out[new] = value
        unmatched = [k for k in target if k not in out]
        problems = []
        if unused:
            problems.append(f"source keys left unused: {', '.join(unused)}")
        if unmatched:
            problems.append(f"target keys left unmatched: {', '.join(unmatched)}")
        if shapes:
            problems.append(f"shape mismatches: {', '.join(shapes)}")
        if twice:
            problems.append(f"target keys filled twice: {', '.join(twice)}")
        if problems:
            raise ConversionError(
                f"{where}: the checkpoint does not match the network its options describe; "
                + "; ".join(problems)
                + ". Check that the options (opt.txt / --opt) are the ones this checkpoint was trained with."
            )
        if dropped:
            modules = sorted({k.rpartition(".")[0] for k in dropped})
            logger.info(
                "%s: accepted %d tensors of %d modules the official forward never uses, not converted: %s",
                where,
                len(dropped),
                len(modules),
                ", ".join(modules),
            )
        return {k: out[k].to(target[k].dtype) if target[k].is_floating_point() else out[k] for k in target}


def _parse_opt_txt(text: str) -> dict[str, Any]:
    """The official `opt.txt`: lines `name: value [default: x]` between dashed banners."""
    opt: dict[str, Any] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("-") or ":" not in line:
            continue
        name, _, rest = line.partition(":")
        raw = re.sub(r"\s*\[default:.*\]\s*$", "", rest).strip()
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        opt[name.strip()] = value
    return opt


def read_options(path: str | Path) -> dict[str, Any]:
    """Official options from opt.txt or a JSON dump of `vars(opt)`; opt.pkl is refused (never unpickled)."""
    path = Path(path)
    if path.suffix == ".pkl":
        raise ConversionError(f"{path}: opt.pkl is a pickle and semsyn never unpickles; pass opt.txt or a JSON instead")
    if not path.is_file():
        raise ConversionError(f"options file {path} does not exist; pass the run's opt.txt (or a JSON) with --opt")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            opt = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConversionError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    else:
        opt = _parse_opt_txt(text)
    if not isinstance(opt, dict) or "label_nc" not in opt:
        raise ConversionError(f"{path} does not look like official options: it has no label_nc")
    return opt


def labels_from_options(opt: Mapping[str, Any]) -> dict[str, Any]:
    """The spec's `labels` and `image_size` from official options (section 0.1 of the architecture notes)."""
    crop = int(opt.get("crop_size", 256))
    aspect = float(opt.get("aspect_ratio", 1.0))
    names = {"coco": "coco-stuff", "cityscapes": "cityscapes", "ade20k": "ade20k"}.get(opt.get("dataset_mode"))
    return {
        "labels": {
            "num_classes": int(opt["label_nc"]),
            "dontcare": bool(opt.get("contain_dontcare_label", False)),
            "instance_edges": not bool(opt.get("no_instance", False)),
            "names": names,
        },
        "image_size": [int(crop / aspect), crop],
    }


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """An official `.pth` state dict, read with weights_only=True; anything else is refused."""
    try:
        state = torch_load(path)
    except SemsynError as exc:
        raise ConversionError(str(exc)) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(
            f"{path} is not a state dict (a mapping of names to tensors), got {type(state).__name__}; "
            "save networks with torch.save(net.state_dict(), path)"
        )
    return dict(state)


def _pick_section(part: str, opt: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    found = []
    for name in OFFICIAL_FORMATS.names():
        section = OFFICIAL_FORMATS.get(name).section(part, opt)
        if section is not None:
            found.append((name, section))
    if not found:
        raise ConversionError(
            f"no official format knows the {part} these options describe (netG={opt.get('netG')!r}, "
            f"netD={opt.get('netD')!r}); known formats: {', '.join(OFFICIAL_FORMATS.names())}"
        )
    return found[0]


def convert_official(
    opt_path: str | Path,
    files: Mapping[str, str | Path],
    out_dir: str | Path,
    *,
    name: str | None = None,
    origin: str | None = None,
    license: str | None = None,
) -> Path:
    """Convert official checkpoints into a semsyn model folder and return its path.

    Args:
        opt_path: opt.txt or an options JSON.
        files: part ("generator", "encoder", "discriminator") -> .pth path; any non-empty subset.
        out_dir: the model folder to write (spec.yaml, model.safetensors, README.md).
        name: the spec name; defaults to the folder's name. For a named spec (`spade-coco`) the licence and
            official download place of its `pretrained` section are the defaults of `license` and `origin`.
        origin, license: where the checkpoint comes from and its licence, recorded with the sha256 of every
            official file in the weights' provenance record (and so on the model card).
    """
    if not files:
        raise ConversionError("nothing to convert: give at least one of --generator, --encoder, --discriminator")
    opt = read_options(opt_path)
    spec_data: dict[str, Any] = {"schema": 1, "name": name or Path(out_dir).name, **labels_from_options(opt)}
    formats: dict[str, str] = {}
    wanted = ["generator", *(p for p in ("encoder", "discriminator") if p in files)]
    if opt.get("use_vae") and "encoder" not in wanted:
        wanted.insert(1, "encoder")
    for part in wanted:
        formats[part], spec_data[part] = _pick_section(part, opt)
    if "discriminator" not in files:
        # The discriminator the options name goes into the spec (untrained) when a format knows it, so a
        # converted generator can be fine-tuned or loaded with_discriminator; otherwise the spec has none.
        with contextlib.suppress(ConversionError):
            _, spec_data["discriminator"] = _pick_section("discriminator", opt)
    spec = Spec(spec_data, source=str(opt_path))
    model = build_model(spec, with_discriminator="discriminator" in files)
    for part, path in files.items():
        table = OFFICIAL_FORMATS.get(formats[part]).key_table(part, opt)
        net = getattr(model, part)
        state = table.apply(read_state_dict(path), net.state_dict(), f"{path} ({part})")
        net.load_state_dict(state, strict=True)
        model.trained_parts.add(part)
    if model.untrained_parts:
        logger.warning(
            "converted %s; built from the options but untrained: %s",
            ", ".join(sorted(files)),
            ", ".join(model.untrained_parts),
        )
    model.provenance = _provenance(spec_data["name"], formats, opt_path, files, origin, license)
    return model.save_pretrained(out_dir, parts=sorted(model.trained_parts))


def _provenance(
    name: str,
    formats: Mapping[str, str],
    opt_path: str | Path,
    files: Mapping[str, str | Path],
    origin: str | None,
    license: str | None,
) -> Provenance:
    """The record of a conversion: origin, licence and the sha256 of every official file read."""
    named = load_local_spec(name).pretrained if hub_config_path(name) else {}
    official = named.get("official_checkpoint")
    family = ", ".join(sorted({formats[p] for p in files}))
    if origin is None:
        origin = f"official {family} checkpoint converted with semsyn-convert" + (f" ({official})" if official else "")
    sources = {Path(p).name: file_sha256(p) for p in files.values()}
    sources[Path(opt_path).name] = file_sha256(opt_path)
    return Provenance(
        kind="converted-official",
        origin=origin,
        license=license or named.get("license"),
        parts=sorted(files),
        sources=sources,
        spec=name,
    )
