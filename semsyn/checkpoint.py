"""Reading and writing weights and state safely: safetensors, `weights_only` torch files, atomic writes.

Nothing is ever unpickled: weights are safetensors, and trainer state is read with
`torch.load(weights_only=True)`. Every write goes to a temporary file in the same folder, then
`os.replace`, so a killed process leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semsyn.errors import CheckpointError

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "save_safetensors",
    "load_safetensors",
    "torch_save",
    "torch_load",
    "load_strict",
    "tensor_digest",
    "file_sha256",
    "read_metadata",
    "prefixed_state",
    "split_prefixed",
]

DIGEST_KEY = "semsyn_sha256"


_umask_lock = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`, fsync it, then rename it over `path`.

    The file gets the permissions a plain `open(path, "w")` would give (0666 less the umask), not the
    owner-only 0600 of the temporary file: saved models are shared through folders and caches.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write a text file atomically."""
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over keys, dtypes, shapes and bytes, in key order: detects any corrupted tensor data."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write tensors to a safetensors file atomically, with a content digest in its metadata."""
    from safetensors.torch import save_file

    plain = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {"format": "pt", **(metadata or {}), DIGEST_KEY: tensor_digest(plain)}
    return atomic_write(path, lambda p: save_file(plain, str(p), metadata=meta))


def load_safetensors(path: str | os.PathLike[str], verify: bool = True) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a damaged file or a digest mismatch raises `CheckpointError`."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated: delete it and "
            "download or convert it again"
        ) from None
    expected = meta.get(DIGEST_KEY)
    if verify and expected is not None and tensor_digest(tensors) != expected:
        raise CheckpointError(
            f"{path} is corrupt: its tensor data does not match the sha256 recorded when it was written; "
            "delete it (and its Hub cache entry) and download it again"
        )
    return tensors


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (no tensors are read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (recorded for converted official checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """`torch.save` atomically (trainer state: tensors and plain containers only)."""
    return atomic_write(path, lambda p: torch.save(obj, p))


def torch_load(path: str | os.PathLike[str]) -> Any:
    """`torch.load(weights_only=True)`: plain data only; pickled code is refused with `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds pickled objects other than tensors and plain containers, and semsyn never unpickles "
            f"code; refusing to load it ({str(exc).splitlines()[0][:200]}). Re-save it as a plain state_dict."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} cannot be read as a torch checkpoint ({exc}); it is corrupt or truncated"
        ) from None


def _short(keys: list[str], n: int = 12) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """Load a state dict strictly; any missing, unexpected or mis-shaped key raises `CheckpointError`."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {_short(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_short(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {_short(shapes)}")
    if problems:
        raise CheckpointError(
            f"{where} does not match the model built from its spec; "
            + "; ".join(problems)
            + ". The weights were made for another configuration: use the spec saved with them."
        )
    module.load_state_dict(dict(state), strict=True)


def prefixed_state(modules: Mapping[str, nn.Module | None]) -> dict[str, torch.Tensor]:
    """One state dict of several networks, keys prefixed by their names (`generator.fc.weight`); None skipped."""
    return {f"{name}.{k}": v for name, m in modules.items() if m is not None for k, v in m.state_dict().items()}


def split_prefixed(state: Mapping[str, torch.Tensor], names: tuple[str, ...], where: str) -> dict[str, dict]:
    """`prefixed_state`'s inverse: {name: state dict}; a key with another prefix raises `CheckpointError`."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        part, _, rest = key.partition(".")
        if part not in names or not rest:
            raise CheckpointError(
                f"{where}: key {key!r} does not start with one of {', '.join(p + '.' for p in names)}; "
                "this is not a semsyn weights file (convert official checkpoints with semsyn-convert)"
            )
        groups.setdefault(part, {})[rest] = value
    return groups
