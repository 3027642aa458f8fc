"""Entry-point plugins: how the built-in zoo and third-party packages register their components.

A distribution declares, in its pyproject.toml::

    [project.entry-points."semsyn.plugins"]
    my_plugin = "my_package.semsyn_plugin"          # a module whose import registers components
    # or  my_plugin = "my_package:register"         # a function called once with no arguments

Plugins load lazily and once, on the first registry lookup. One that fails is reported with its
distribution's name and the error, and the others still load.
"""

from __future__ import annotations

import logging
import threading
import types
import warnings
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

__all__ = ["GROUP", "PluginFailure", "load_plugins", "loaded_plugins", "failed_plugins"]

GROUP = "semsyn.plugins"
# Core modules that register components of their own (datasets); imported with the plugins.
CORE_MODULES = ("semsyn.data",)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginFailure:
    """A plugin that could not be loaded."""

    entry_point: str
    distribution: str
    error: str


_lock = threading.RLock()
_state: dict[str, bool] = {"loading": False, "done": False}
_loaded: list[str] = []
_failed: list[PluginFailure] = []


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _load_one(ep: EntryPoint) -> None:
    try:
        obj = ep.load()
        if callable(obj) and not isinstance(obj, types.ModuleType):
            obj()
    except Exception as exc:  # a broken plugin must not take the others down
        failure = PluginFailure(f"{ep.name} = {ep.value}", _distribution(ep), f"{type(exc).__name__}: {exc}")
        _failed.append(failure)
        warnings.warn(
            f"semsyn plugin {ep.name!r} from {failure.distribution} failed to load and was skipped: {failure.error}",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    _loaded.append(ep.name)
    logger.debug("loaded semsyn plugin %s from %s", ep.name, _distribution(ep))


def load_plugins() -> None:
    """Load every `semsyn.plugins` entry point, once per process.

    Thread-safe: a second thread that asks while the first is loading waits for it to finish, so no
    thread ever sees a half-filled registry. The lock is re-entrant: a plugin that looks something up
    while it registers (the same thread) gets what is registered so far instead of recursing.
    """
    if _state["done"]:
        return
    with _lock:
        if _state["done"] or _state["loading"]:
            return
        _state["loading"] = True
        try:
            _load_all()
        finally:
            _state["loading"] = False
            _state["done"] = True


def _load_all() -> None:
    for module in CORE_MODULES:
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    eps = sorted(entry_points(group=GROUP), key=lambda e: (e.name != "semsyn_models", e.name))
    seen: set[str] = set()
    for ep in eps:
        if ep.value in seen:  # one distribution visible twice on sys.path
            continue
        seen.add(ep.value)
        _load_one(ep)


def loaded_plugins() -> list[str]:
    """Names of the entry points loaded so far."""
    return list(_loaded)


def failed_plugins() -> list[PluginFailure]:
    """Entry points that failed to load, with their distribution and error."""
    return list(_failed)
