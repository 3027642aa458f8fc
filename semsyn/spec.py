"""YAML specs: what a model (and a training run) is made of, checked against the components' signatures.

A spec names registered components and gives their constructor keywords::

    schema: 1
    name: spade-coco
    labels: {num_classes: 182, dontcare: true, instance_edges: true, names: coco-stuff}
    image_size: [256, 256]
    generator: {name: spade, ngf: 64}
    discriminator: {name: patchgan-multiscale}
    losses: {gan: {name: hinge}, feature_matching: {weight: 10.0}}

`base: <name or path>` inherits another spec and patches it. Errors are `SpecError`s naming the file,
line, field and the closest valid names. `Spec.resolved()` fills every default in, drops `base`, and
dumps flat: loading the dump gives the same spec.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from semsyn.checkpoint import atomic_write_text
from semsyn.errors import RegistryError, SpecError
from semsyn.labels import LabelSchema
from semsyn.named import hub_config_path, named_specs
from semsyn.params import (
    INJECTED,
    NUM_CLASSES_RANGE,
    SIZE_RANGE,
    Range,
    _plain,
    component_params,
    validate_params,
)
from semsyn.registry import (
    DATASETS,
    DISCRIMINATORS,
    ENCODERS,
    GENERATORS,
    LOSSES,
    Registry,
    close_matches,
)
from semsyn.training.config import TrainConfig

__all__ = [
    "Spec",
    "Range",
    "load_spec",
    "parse_overrides",
    "apply_overrides",
    "INJECTED",
    "LOSS_DEFAULT_NAMES",
    "component_params",
]

SCHEMA_VERSION = 1
# Label facts the builder passes to any constructor that names them.
TOP_LEVEL = (
    "schema",
    "name",
    "description",
    "base",
    "labels",
    "image_size",
    "generator",
    "encoder",
    "discriminator",
    "losses",
    "pretrained",
    "data",
    "train",
)
COMPONENT_SECTIONS: dict[str, Registry] = {
    "generator": GENERATORS,
    "encoder": ENCODERS,
    "discriminator": DISCRIMINATORS,
}
LABEL_KEYS = ("num_classes", "dontcare", "instance_edges", "names", "palette")
# Where semsyn weights of a named spec live and whether they are there; never where a model came from
# (that is provenance, recorded in the weights' metadata).
PRETRAINED_KEYS = ("repo_id", "revision", "published", "license", "official_checkpoint")
# The standard loss terms name their loss by default; any other term names it with `name:`.
LOSS_DEFAULT_NAMES = {"gan": "hinge", "feature_matching": "feature-matching", "vgg": "vgg-perceptual", "kl": "kl"}


def _flatten_patch(patch: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], str]:
    """Leaf path -> 'a.b=value' text of a nested override patch, for error messages."""
    out: dict[tuple[str, ...], str] = {}
    for key, value in patch.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and value:
            out.update(_flatten_patch(value, path))
        else:
            text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10_000).strip()
            out[path] = f"{'.'.join(path)}={text.removesuffix('...').strip()}"
    return out


class _Where:
    """File and line lookup for spec fields; a field set by an override is reported as that override."""

    def __init__(
        self,
        source: str | None,
        lines: Mapping[tuple[str, ...], int] | None = None,
        overrides: Mapping[tuple[str, ...], str] | None = None,
    ) -> None:
        self.source = source
        self.lines = dict(lines or {})
        self.overrides = dict(overrides or {})

    def __call__(self, *path: str) -> str:
        field = ".".join(path) or "(top level)"
        origin = self.source or "<spec>"
        for n in range(len(path), 0, -1):
            if path[:n] in self.overrides:
                return f"override {self.overrides[path[:n]]} (applied to {origin}): field '{field}'"
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return f"{origin}:{self.lines[path[:n]]}: field '{field}'"
        return f"{origin}: field '{field}'"


def _line_map(node: yaml.Node, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    out: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            out[path] = key.start_mark.line + 1
            out.update(_line_map(value, path))
    return out


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: `1e-4` is a number (YAML 1.1 wants `1.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """YAML text -> Python data, safely (no objects), with YAML 1.2 floats such as `4e-4`."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file {path} does not exist; check the path, or use a name from semsyn.list_models()"
        ) from None
    except OSError as exc:
        raise SpecError(f"spec file {path} cannot be read: {exc}") from None
    try:
        data = load_yaml(text)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}{line}: malformed YAML ({problem}); fix the syntax at that line") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping of sections, got {type(data).__name__}")
    return data, (_line_map(node) if node is not None else {})


def deep_merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """`patch` over `base`; nested mappings merge, a `name` change in a component replaces it whole."""
    out = copy.deepcopy(dict(base))
    for key, value in patch.items():
        old = out.get(key)
        replaces = (
            isinstance(value, Mapping)
            and "name" in value
            and isinstance(old, Mapping)
            and (old.get("name") != value.get("name"))
        )
        if isinstance(value, Mapping) and isinstance(old, Mapping) and not replaces:
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`["train.steps=100", "generator.ngf=32"]` -> nested dict; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not p for p in key.split(".")):
            raise SpecError(f"override {item!r} is not of the form section.field=value (e.g. train.steps=100)")
        try:
            value = load_yaml(raw) if raw else None
        except yaml.YAMLError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SpecError(f"override {item!r} sets a field below {part!r}, which another override set")
        node[leaf] = value
    return out


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any]) -> dict[str, Any]:
    """`data` with `--set` style overrides (strings) or a nested patch (mapping) applied."""
    patch = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
    return deep_merge(data, patch)


def _check_component(registry: Registry, cfg: Any, where: _Where, section: tuple[str, ...]) -> dict[str, Any]:
    if isinstance(cfg, str):
        cfg = {"name": cfg}
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("name"), str):
        raise SpecError(f"{where(*section)}: give a mapping with a 'name' of a registered {registry.kind}")
    try:
        obj = registry.get(cfg["name"])
    except RegistryError as exc:
        raise SpecError(f"{where(*section, 'name')}: {exc}") from None
    params = {k: v for k, v in cfg.items() if k != "name"}
    return {"name": cfg["name"], **validate_params(obj, params, where, section, f"{registry.kind} {cfg['name']!r}")}


class Spec:
    """A validated spec: plain nested data plus where each field came from.

    Build one with `load_spec` or `Spec.from_dict`; the data is validated on construction.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        source: str | None = None,
        lines: Mapping[tuple[str, ...], int] | None = None,
        overrides: Mapping[tuple[str, ...], str] | None = None,
    ) -> None:
        self.source = source
        self.where = _Where(source, lines, overrides)
        self.data = self._validate(copy.deepcopy(dict(data)))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | None = None) -> Spec:
        """A spec from a mapping (e.g. built in code or patched by overrides)."""
        return cls(data, source)

    # -- validation -------------------------------------------------------------------------------
    def _validate(self, data: dict[str, Any]) -> dict[str, Any]:
        w = self.where
        for key in data:
            if key not in TOP_LEVEL:
                raise SpecError(f"{w(key)}: unknown section {key!r}{close_matches(key, list(TOP_LEVEL))}")
        schema = data.setdefault("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise SpecError(
                f"{w('schema')}: spec schema {schema!r} is not supported (this semsyn reads {SCHEMA_VERSION})"
            )
        labels = data.get("labels")
        if not isinstance(labels, Mapping):
            raise SpecError(
                f"{w('labels')}: a spec needs labels: {{num_classes: N, dontcare: bool, instance_edges: bool}}"
            )
        for key in labels:
            if key not in LABEL_KEYS:
                raise SpecError(
                    f"{w('labels', key)}: unknown label field {key!r}{close_matches(key, list(LABEL_KEYS))}"
                )
        n = labels.get("num_classes")
        if not isinstance(n, int) or isinstance(n, bool) or not NUM_CLASSES_RANGE.contains(n):
            raise SpecError(
                f"{w('labels', 'num_classes')}: num_classes must be an integer {NUM_CLASSES_RANGE.describe()}, "
                f"got {n!r}"
            )
        for key in ("dontcare", "instance_edges"):
            if not isinstance(labels.get(key, False), bool):
                raise SpecError(f"{w('labels', key)}: {key} must be true or false")
        palette = labels.get("palette")
        if palette is not None and (
            not isinstance(palette, list)
            or len(palette) != n
            or not all(
                isinstance(c, list) and len(c) == 3 and all(isinstance(v, int) and 0 <= v < 256 for v in c)
                for c in palette
            )
        ):
            raise SpecError(f"{w('labels', 'palette')}: palette must be {n} [r, g, b] triples of 0..255, one per class")
        size = data.get("image_size")
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
        ):
            raise SpecError(f"{w('image_size')}: image_size must be [height, width] in pixels, got {size!r}")
        if SIZE_RANGE.violation(size) is not None:
            raise SpecError(
                f"{w('image_size')}: image_size {list(size)} is out of range: each side must be "
                f"{SIZE_RANGE.describe()} pixels"
            )
        if "generator" not in data:
            raise SpecError(f"{w()}: a spec needs a generator section, e.g. generator: {{name: spade}}")
        for section, registry in COMPONENT_SECTIONS.items():
            if data.get(section) is not None:
                data[section] = _check_component(registry, data[section], w, (section,))
        self._check_z_dim(data)
        if data.get("losses") is not None:
            data["losses"] = self._validate_losses(data["losses"])
        if data.get("pretrained") is not None:
            self._validate_pretrained(data["pretrained"])
        if data.get("data") is not None:
            data["data"] = _check_component(DATASETS, data["data"], w, ("data",))
        if data.get("train") is not None:
            data["train"] = self._validate_train(data["train"])
        return data

    def _check_z_dim(self, data: dict[str, Any]) -> None:
        gen, enc = data.get("generator") or {}, data.get("encoder") or {}
        if "z_dim" in gen and "z_dim" in enc and gen["z_dim"] != enc["z_dim"]:
            raise SpecError(
                f"{self.where('encoder', 'z_dim')}: encoder z_dim {enc['z_dim']} differs from generator z_dim "
                f"{gen['z_dim']}; make them equal"
            )

    def _validate_losses(self, losses: Any) -> dict[str, Any]:
        w = self.where
        if not isinstance(losses, Mapping):
            raise SpecError(f"{w('losses')}: losses is a mapping of term -> {{name, weight, ...}}")
        out = {}
        for term, cfg in losses.items():
            cfg = {} if cfg is None else ({"weight": cfg} if isinstance(cfg, (int, float)) else dict(cfg))
            cfg.setdefault("name", LOSS_DEFAULT_NAMES.get(term, str(term).replace("_", "-")))
            weight = cfg.pop("weight", 1.0)
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise SpecError(f"{w('losses', term, 'weight')}: weight must be a number, got {weight!r}")
            checked = _check_component(LOSSES, cfg, w, ("losses", term))
            out[term] = {"name": checked.pop("name"), "weight": float(weight), **checked}
        return out

    def _validate_pretrained(self, pre: Any) -> None:
        w = self.where
        if not isinstance(pre, Mapping):
            raise SpecError(f"{w('pretrained')}: pretrained is a mapping with {', '.join(PRETRAINED_KEYS)}")
        for key in pre:
            if key not in PRETRAINED_KEYS:
                hint = (
                    " (origin is provenance: it is recorded in the weights' metadata, not in a spec)"
                    if key == "origin"
                    else close_matches(key, list(PRETRAINED_KEYS))
                )
                raise SpecError(f"{w('pretrained', key)}: unknown field {key!r}{hint}")
        if not isinstance(pre.get("published", False), bool):
            raise SpecError(f"{w('pretrained', 'published')}: published must be true or false")
        for key in ("repo_id", "revision", "license", "official_checkpoint"):
            if pre.get(key) is not None and not isinstance(pre[key], str):
                raise SpecError(f"{w('pretrained', key)}: {key} must be a string or null, got {pre[key]!r}")

    def _validate_train(self, train: Any) -> dict[str, Any]:
        if not isinstance(train, Mapping):
            raise SpecError(f"{self.where('train')}: train is a mapping of trainer settings (steps, batch_size, ...)")
        return validate_params(TrainConfig, train, self.where, ("train",), "train", skip=())

    # -- access -----------------------------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """The spec's name (`<paper>-<dataset>` for named models)."""
        return self.data.get("name")

    @property
    def labels(self) -> LabelSchema:
        """The label schema."""
        lab = self.data["labels"]
        palette = lab.get("palette")
        return LabelSchema(
            num_classes=lab["num_classes"],
            dontcare=bool(lab.get("dontcare", False)),
            instance_edges=bool(lab.get("instance_edges", False)),
            names=lab.get("names"),
            palette=tuple(tuple(c) for c in palette) if palette else None,
        )

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) the model is built for."""
        h, w = self.data["image_size"]
        return int(h), int(w)

    def section(self, key: str) -> Any:
        """A copy of one top-level section (None when absent)."""
        return copy.deepcopy(self.data.get(key))

    @property
    def pretrained(self) -> dict[str, Any]:
        """The `pretrained` section ({} when absent)."""
        return dict(self.data.get("pretrained") or {})

    def train_config(self) -> Any:
        """The `train:` section as a `TrainConfig` (defaults when absent)."""
        return TrainConfig(**(self.data.get("train") or {}))

    # -- transforms -------------------------------------------------------------------------------
    def with_overrides(self, overrides: Iterable[str] | Mapping[str, Any]) -> Spec:
        """A new spec with `--set` style overrides or a nested patch applied, validated again."""
        patch = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        where = {**self.where.overrides, **_flatten_patch(patch)}
        return Spec(deep_merge(self.data, patch), self.source, self.where.lines, where)

    def resolved(self) -> Spec:
        """The spec with every default filled in and no `base`: what a model folder stores."""
        data = copy.deepcopy(self.data)
        data.pop("base", None)
        if data.get("train") is not None:
            data["train"] = _plain(dataclasses.asdict(TrainConfig(**data["train"])))
        return Spec(data, self.source, self.where.lines, self.where.overrides)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the data."""
        return copy.deepcopy(self.data)

    def dump(self, path: str | os.PathLike[str] | None = None) -> str:
        """The spec as YAML text; written atomically to `path` when given."""
        text = yaml.safe_dump(_plain(self.data), sort_keys=False, default_flow_style=None, width=120)
        if path is not None:
            atomic_write_text(Path(path), text)
        return text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Spec) and self.data == other.data

    def __repr__(self) -> str:
        return f"Spec(name={self.name!r}, source={self.source!r})"


def _load_data(source: str | os.PathLike[str], seen: tuple[str, ...] = ()) -> tuple[dict, dict, str]:
    text = os.fspath(source)
    path = Path(text)
    if not (text.endswith((".yaml", ".yml")) or path.is_file()):
        named = hub_config_path(text)
        if named is None:
            raise SpecError(
                f"no spec named {text!r}{close_matches(text, named_specs())}: give a name from "
                "semsyn.list_models(), a path to a .yaml file, or 'local-dir:PATH'"
            )
        path = named
    data, lines = _read_yaml(path)
    base = data.get("base")
    if base is not None:
        if str(path) in seen:
            raise SpecError(f"{path}: 'base' chain loops back to itself ({' -> '.join(seen)})")
        base_src = base
        if isinstance(base, str) and base.endswith((".yaml", ".yml")) and not os.path.isabs(base):
            base_src = str(path.parent / base)
        base_data, _, _ = _load_data(base_src, (*seen, str(path)))
        base_data.pop("name", None)
        base_data.pop("pretrained", None)  # where the base's weights live says nothing of a derived spec
        data = deep_merge(base_data, {k: v for k, v in data.items() if k != "base"})
    return data, lines, str(path)


def load_spec(
    source: str | os.PathLike[str] | Mapping[str, Any], overrides: Iterable[str] | Mapping | None = None
) -> Spec:
    """Load and validate a spec from this machine (`semsyn.load_spec` also reads Hub repos).

    Args:
        source: a hub_configs name ("spade-coco"), a path to a YAML file, or a mapping
            (`semsyn.load_spec` reads every source `semsyn.resolve` knows).
        overrides: `--set` style strings or a nested patch applied before validation; an error in a
            field they set names the override.
    """
    if isinstance(source, Mapping):
        data, lines, where = dict(source), {}, None
    else:
        text = os.fspath(source)
        if text.startswith(("hf-hub:", "local-dir:")):
            # Sources are parsed in one place, the resolver; this function reads spec files and names.
            raise SpecError(f"{text}: semsyn.spec.load_spec reads spec files and names; use semsyn.load_spec")
        data, lines, where = _load_data(text)
    marks: dict[tuple[str, ...], str] = {}
    if overrides:
        patch = overrides if isinstance(overrides, Mapping) else parse_overrides(overrides)
        marks = _flatten_patch(patch)
        data = deep_merge(data, patch)
    return Spec(data, where, lines, marks)
