"""Checkpoint folders of a run: `RUN_DIR/checkpoints/step_000123/`, written atomically.

A checkpoint holds `model.safetensors` (every network, the EMA generator under `ema.`, and the run's
provenance record in the metadata), `state.pt` (optimizers, schedulers, scalers, RNG, hooks) and,
written last, the marker `complete.json`. A folder is built under a temporary name and renamed into
place, so a killed run leaves either a complete checkpoint or none.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from semsyn.checkpoint import atomic_write_text, load_safetensors, save_safetensors, torch_load, torch_save
from semsyn.errors import CheckpointError

__all__ = [
    "CHECKPOINTS_DIR",
    "MARKER",
    "WEIGHTS_FILE",
    "STATE_FILE",
    "write_checkpoint",
    "read_checkpoint",
    "list_checkpoints",
    "latest_checkpoint",
    "remove_incomplete",
    "remove_tree",
    "step_name",
]

CHECKPOINTS_DIR = "checkpoints"
MARKER = "complete.json"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
# Test-only: seconds to sleep between the checkpoint's files and its marker, so a test can kill a run mid-write.
DELAY_ENV = "SEMSYN_TEST_CHECKPOINT_DELAY"


def _step_name(step: int) -> str:
    return f"step_{step:06d}"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Rename out of the way first, so a kill during the deletion leaves nothing that looks like a checkpoint."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def write_checkpoint(
    run_dir: str | os.PathLike[str],
    step: int,
    weights: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write `checkpoints/step_XXXXXX/` atomically: files into a temporary folder, the marker last, then rename."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = _step_name(step)
    tmp = root / f".tmp-{name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_safetensors(weights, tmp / WEIGHTS_FILE, metadata={**(metadata or {}), "semsyn_step": str(step)})
    torch_save(dict(state), tmp / STATE_FILE)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    if delay > 0:
        time.sleep(delay)
    sizes = {f: (tmp / f).stat().st_size for f in (WEIGHTS_FILE, STATE_FILE)}
    atomic_write_text(tmp / MARKER, json.dumps({"step": step, "sizes": sizes}))
    _fsync_dir(tmp)
    final = root / name
    if final.exists():
        _remove_tree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    return final


def _marker_step(path: Path) -> int | None:
    """The step recorded by a checkpoint folder's marker, or None when the folder is not complete."""
    try:
        marker = json.loads((path / MARKER).read_text(encoding="utf-8"))
        sizes = marker["sizes"]
        if any((path / f).stat().st_size != size for f, size in sizes.items()):
            return None
        return int(marker["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_checkpoints(run_dir: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(step, folder) of every complete checkpoint of a run, oldest first; incomplete folders are ignored."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = []
    for path in root.glob("step_*"):
        step = _marker_step(path) if path.is_dir() else None
        if step is not None:
            found.append((step, path))
    return sorted(found)


def latest_checkpoint(run_dir: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(weights, trainer state) of a complete checkpoint folder; safetensors and `weights_only` loads only."""
    path = Path(path)
    if _marker_step(path) is None:
        raise CheckpointError(
            f"{path} is not a complete checkpoint (its {MARKER} is missing or its files changed size); "
            "resume from another one, or delete it"
        )
    return load_safetensors(path / WEIGHTS_FILE), torch_load(path / STATE_FILE)


def remove_incomplete(run_dir: str | os.PathLike[str]) -> None:
    """Delete what killed runs left half-written (temporary and trash folders); complete checkpoints stay."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    for path in root.glob(".tmp-step_*") if root.is_dir() else ():
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(".trash-*") if root.is_dir() else ():
        shutil.rmtree(path, ignore_errors=True)


# Public names for the hooks and the resolver.
step_name = _step_name
remove_tree = _remove_tree
