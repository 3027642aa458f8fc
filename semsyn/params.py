"""Constructor parameters as a schema: types, registry references and allowed ranges, checked against specs.

A component's constructor signature is its spec schema. `validate_params` checks a spec section's keywords
against it: unknown names (with close matches), types (including `Literal` choices), names of other
registered components (`semsyn.ref`), and the ranges declared with `Range` in an `Annotated` hint.
"""

from __future__ import annotations

import copy
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from semsyn.errors import RegistryError, SpecError
from semsyn.registry import REGISTRIES, RegistryRef, close_matches

__all__ = ["Range", "INJECTED", "validate_params", "component_params", "SIZE_RANGE", "NUM_CLASSES_RANGE"]

# Label facts the builder passes to any constructor that names them.
INJECTED = ("label_channels", "num_classes", "image_size", "labels")


@dataclass(frozen=True)
class Range:
    """The allowed values of a numeric constructor parameter, declared in its annotation.

    ``ngf: Annotated[int, Range(ge=1)] = 64``: the spec loader rejects a value outside the range with a
    `SpecError` naming file, line, field and the range, before anything is built. For list values (sizes)
    every element is checked.

    Args:
        ge, gt: lower bound (inclusive, exclusive).
        le, lt: upper bound (inclusive, exclusive).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def contains(self, value: float) -> bool:
        """Whether a number lies in the range."""
        return not (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def describe(self) -> str:
        """The range as text, e.g. '>= 1' or '>= 1 and <= 8'."""
        parts = [
            f"{op} {v}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)) if v is not None
        ]
        return " and ".join(parts) or "any"

    def violation(self, value: Any) -> Any:
        """The first number in `value` (a number or a list of them) outside the range, or None."""
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, (int, float)) and not isinstance(item, bool) and not self.contains(item):
                return item
        return None


SIZE_RANGE = Range(ge=1, le=16384)
NUM_CLASSES_RANGE = Range(ge=1)


def _signature_params(obj: Any) -> tuple[dict[str, inspect.Parameter], dict[str, Any], bool]:
    target = obj.__init__ if inspect.isclass(obj) else obj
    sig = inspect.signature(target)
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:  # unresolvable annotations only cost us the type check
        hints = {}
    params = {
        n: p for n, p in sig.parameters.items() if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    return params, hints, var_kw


def component_params(obj: Any) -> dict[str, Any]:
    """Constructor keywords of a component and their defaults (`inspect.Parameter.empty` when required)."""
    params, _, _ = _signature_params(obj)
    return {n: p.default for n, p in params.items()}


def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether a YAML value fits an annotation; the second item names the expected type."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is inspect.Parameter.empty:
        return True, "any"
    if origin is typing.Annotated:
        return _type_ok(value, args[0])
    if origin is typing.Literal:
        return value in args, " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        checks = [_type_ok(value, a) for a in args]
        return any(ok for ok, _ in checks), " or ".join(d for _, d in checks)
    if hint is type(None):
        return value is None, "null"
    if hint is bool:
        return isinstance(value, bool), "bool"
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), "int"
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), "float"
    if hint is str:
        return isinstance(value, str), "str"
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, "list"
        inner = [a for a in args if a is not Ellipsis]
        if origin is tuple and inner and Ellipsis not in args and len(inner) != len(value):
            return False, f"list of {len(inner)}"
        if inner:
            kinds = inner if (origin is tuple and Ellipsis not in args) else [inner[0]] * len(value)
            return all(
                _type_ok(v, k)[0] for v, k in zip(value, kinds)
            ), f"list of {getattr(inner[0], '__name__', inner[0])}"
        return True, "list"
    if origin is dict or hint is dict:
        return isinstance(value, dict), "mapping"
    return True, getattr(hint, "__name__", str(hint))


def _registry_ref(hint: Any) -> RegistryRef | None:
    if typing.get_origin(hint) is typing.Annotated:
        return next((a for a in typing.get_args(hint)[1:] if isinstance(a, RegistryRef)), None)
    if typing.get_origin(hint) is typing.Union:
        return next((r for r in map(_registry_ref, typing.get_args(hint)) if r is not None), None)
    return None


def _ranges(hint: Any) -> list[Range]:
    """The `Range`s declared in an annotation (inside Optional / unions too)."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        args = typing.get_args(hint)
        return [a for a in args[1:] if isinstance(a, Range)] + _ranges(args[0])
    if origin in (typing.Union, types.UnionType):
        return [r for a in typing.get_args(hint) for r in _ranges(a)]
    return []


def _plain(value: Any) -> Any:
    """Defaults as YAML-able values (tuples become lists)."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def validate_params(
    obj: Any,
    given: Mapping[str, Any],
    where: Callable[..., str],
    section: tuple[str, ...],
    what: str,
    skip: Iterable[str] = INJECTED,
) -> dict[str, Any]:
    """Check keywords against a constructor; return them with every default filled in."""
    params, hints, var_kw = _signature_params(obj)
    skip = set(skip)
    allowed = [n for n in params if n not in skip]
    for key, value in given.items():
        if key in skip and key in params:
            raise SpecError(f"{where(*section, key)}: {key} is set by semsyn from the label schema; remove it")
        if key not in params:
            if var_kw:
                continue
            raise SpecError(
                f"{where(*section, key)}: {what} has no parameter {key!r}{close_matches(key, allowed)}; "
                f"valid: {', '.join(allowed) or 'none'}"
            )
        hint = hints.get(key, params[key].annotation)
        ok, expected = _type_ok(value, hint)
        if not ok:
            raise SpecError(f"{where(*section, key)}: {key} = {value!r} is not a valid {expected} for {what}")
        for allowed_range in _ranges(hint):
            bad = allowed_range.violation(value)
            if bad is not None:
                raise SpecError(
                    f"{where(*section, key)}: {key} = {value!r} is out of range for {what}: "
                    f"allowed {allowed_range.describe()}"
                    + (f" (element {bad!r})" if isinstance(value, (list, tuple)) else "")
                )
        reg = _registry_ref(hint)
        if reg is not None and value is not None:
            try:
                REGISTRIES[reg.kind].get(value)
            except RegistryError as exc:
                raise SpecError(f"{where(*section, key)}: {exc}") from None
    out: dict[str, Any] = {}
    for name in allowed:
        if name in given:
            out[name] = copy.deepcopy(given[name])
        elif params[name].default is inspect.Parameter.empty:
            raise SpecError(f"{where(*section)}: {what} needs parameter {name!r}; add it to the spec")
        else:
            out[name] = _plain(params[name].default)
    out.update({k: v for k, v in given.items() if k not in out and k not in skip})
    return out
