"""Registries: one `Registry` class, one instance per kind of component.

Components register under explicit kebab-case names with a decorator::

    @semsyn.GENERATORS.register("my-gen")
    class MyGenerator(nn.Module): ...

The first lookup in any registry loads the `semsyn.plugins` entry points (once), so the built-in zoo
and third-party packages are found the same way.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from semsyn.contracts import check_contract
from semsyn.errors import RegistryError
from semsyn.plugins import load_plugins

__all__ = [
    "Registry",
    "RegistryRef",
    "ref",
    "close_matches",
    "GENERATORS",
    "ENCODERS",
    "DISCRIMINATORS",
    "LOSSES",
    "DATASETS",
    "METRICS",
    "SEGMENTERS",
    "NORMS",
    "COND_NORMS",
    "REGISTRIES",
]

T = TypeVar("T")
_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def close_matches(name: str, candidates: list[str], n: int = 3) -> str:
    """A ' (did you mean ...?)' suffix for an error message, or '' when nothing is close."""
    found = difflib.get_close_matches(name, candidates, n=n, cutoff=0.5)
    return f" (did you mean {', '.join(repr(f) for f in found)}?)" if found else ""


def _where(obj: Any) -> str:
    """`module.qualname (file:line)` of a registered object, for clash messages."""
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    try:
        return f"{name} ({inspect.getsourcefile(obj)}:{inspect.getsourcelines(obj)[1]})"
    except (TypeError, OSError):
        return name


@dataclass(frozen=True)
class RegistryRef:
    """Marks a constructor parameter whose value is the name of a component in another registry."""

    kind: str


def ref(kind: str) -> Any:
    """Type of a parameter naming a registered component of `kind`, e.g. ``cond_norm: ref("cond-norm")``."""
    return Annotated[str, RegistryRef(kind)]


@dataclass
class Entry:
    """One registered component: the object and the tiny parameters the conformance suite builds it with."""

    name: str
    obj: Any
    test_params: dict[str, Any]


class Registry:
    """A named collection of components of one kind.

    Args:
        kind: the kind's name as used in `list_components` and error messages ("generator", "cond-norm").
        contract: what every member must provide; shown in the docstring of the instance.
    """

    def __init__(self, kind: str, contract: str) -> None:
        self.kind = kind
        self.contract = contract
        self.__doc__ = f"Registry of {kind} components.\n\nContract: {contract}"
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, test_params: dict[str, Any] | None = None) -> Callable[[T], T]:
        """Decorator registering a class or factory under `name`.

        Args:
            name: kebab-case name, unique in this registry.
            test_params: constructor keywords giving a tiny instance, used by the conformance suite.
        """
        if not _KEBAB.match(name):
            raise RegistryError(f"{self.kind} name {name!r} is not kebab-case: use lower-case words joined by '-'")

        def decorator(obj: T) -> T:
            old = self._entries.get(name)
            if old is not None and not _same_definition(old.obj, obj):
                raise RegistryError(
                    f"{self.kind} {name!r} is registered twice: by {_where(old.obj)} and by {_where(obj)}; "
                    "rename one of them"
                )
            check_contract(self.kind, name, obj)
            self._entries[name] = Entry(name, obj, dict(test_params or {}))
            return obj

        return decorator

    def unregister(self, name: str) -> Any:
        """Remove `name` and return what was registered under it (tests, plugins replacing a component).

        Raises:
            RegistryError: nothing is registered under `name`.
        """
        try:
            return self._entries.pop(name).obj
        except KeyError:
            raise RegistryError(f"cannot unregister {self.kind} {name!r}: it is not registered") from None

    def get(self, name: str) -> Any:
        """The component registered as `name`; unknown names raise `RegistryError` with close matches."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry:
        """The full registry entry of `name`."""
        _load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = sorted(self._entries)
            hint = close_matches(name, known) or f"; known: {', '.join(known) or 'none'}"
            raise RegistryError(f"unknown {self.kind} {name!r}{hint}") from None

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching a shell-style pattern."""
        _load_plugins()
        return sorted(n for n in self._entries if fnmatch.fnmatchcase(n, pattern))

    def __contains__(self, name: object) -> bool:
        _load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _same_definition(a: Any, b: Any) -> bool:
    """A module re-imported (e.g. reloaded) re-registers the same definition: that is not a clash."""
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def _load_plugins() -> None:
    load_plugins()


GENERATORS = Registry(
    "generator",
    "nn.Module; forward(semantics (N, label_channels, H, W), z=None) -> image (N, 3, H', W') in [-1, 1]. Optional "
    "keywords it may declare: generator= (a torch.Generator for its random draws), size= (any-resolution "
    "families); the core passes them only to a forward that declares them.",
)
ENCODERS = Registry(
    "encoder",
    "nn.Module; forward(image (N, 3, H, W) in [-1, 1], semantics) -> (mu, logvar) of the generator's z.",
)
DISCRIMINATORS = Registry(
    "discriminator",
    "nn.Module; forward(image, semantics) -> semsyn.contracts.DiscriminatorOutput (per-scale logits and features).",
)
LOSSES = Registry(
    "loss",
    "nn.Module with compute(ctx: semsyn.contracts.LossContext) -> scalar tensor, {suffix: scalar}, or None when "
    "it does not apply to ctx.phase; a class attribute `needs` names the optional context fields it reads "
    "(d_real, mu, logvar).",
)
DATASETS = Registry(
    "dataset",
    "torch Dataset; constructor gets `labels` (LabelSchema) and `image_size` injected; items are dicts with "
    "'label' (1, H, W) int64, 'image' (3, H, W) in [-1, 1], optional 'instance' (1, H, W) int64 and 'path'.",
)
METRICS = Registry("metric", "callable metric over generated and real images (FID, mIoU, ...).")
SEGMENTERS = Registry("segmenter", "nn.Module; forward(image in [-1, 1]) -> class logits (N, C, H, W).")
NORMS = Registry(
    "norm",
    "parameter-free normalisation; __init__(num_features, **params), forward(x) -> x (may keep running stats).",
)
COND_NORMS = Registry(
    "cond-norm",
    "label-conditioned normalisation; __init__(num_features, label_channels, norm='instance', **params), "
    "forward(x, semantics) -> x: normalise x with the named norm block, then modulate it from the label map "
    "(resized to x's size by the block, nearest).",
)

REGISTRIES: dict[str, Registry] = {
    r.kind: r for r in (GENERATORS, ENCODERS, DISCRIMINATORS, LOSSES, DATASETS, METRICS, SEGMENTERS, NORMS, COND_NORMS)
}
