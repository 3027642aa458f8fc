"""Where the named specs live (`hub_configs/*.yaml`, shipped as `semsyn/hub_configs` in a wheel).

The bottom of the loading stack: it knows file names, not what the files hold.
"""

from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path

__all__ = ["hub_config_dir", "hub_config_path", "named_specs"]


def hub_config_dir() -> Path:
    """The folder of shipped named specs (`hub_configs/` in the checkout, `semsyn/hub_configs` in a wheel)."""
    return Path(str(resources.files("semsyn.hub_configs")))


def hub_config_path(name: str) -> Path | None:
    """Path of the named spec, or None."""
    path = hub_config_dir() / f"{name}.yaml"
    return path if path.is_file() else None


def named_specs(pattern: str = "*") -> list[str]:
    """Sorted names of the shipped specs matching a shell-style pattern."""
    return sorted(p.stem for p in hub_config_dir().glob("*.yaml") if fnmatch.fnmatchcase(p.stem, pattern))
