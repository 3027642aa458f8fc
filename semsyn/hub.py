"""The Hugging Face Hub client layer: parse `hf-hub:` sources, pin a revision to a commit, download, upload.

All transfers go through the real `huggingface_hub` client, so its cache, `HF_ENDPOINT`,
`HF_HUB_OFFLINE`, `HF_HUB_CACHE` and tokens work as they do for any HF library; semsyn reads those
variables at call time, not only at import. Client errors become `HubError`s that say what to do.
This module knows files and commits, not models: `semsyn.resolve` builds model folders on top of it.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from semsyn.errors import HubError

__all__ = [
    "parse_hub_source",
    "pin_revision",
    "remember_revision",
    "download_file",
    "upload_folder",
    "fetch_text",
    "api",
    "offline",
]

logger = logging.getLogger(__name__)
_HEX40 = re.compile(r"[0-9a-f]{40}")


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


def offline() -> bool:
    """Whether HF_HUB_OFFLINE is on (in the environment now, or in the client's constants)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or _env_flag("HF_HUB_OFFLINE")


def api(token: str | None = None) -> Any:
    """An `HfApi` on the endpoint of the environment."""
    from huggingface_hub import HfApi

    kwargs = _client_kwargs()
    kwargs.pop("cache_dir", None)
    return HfApi(token=token, **kwargs)


def parse_hub_source(source: str) -> tuple[str, str | None]:
    """'hf-hub:org/name@rev' -> ('org/name', 'rev')."""
    body = source[len("hf-hub:") :] if source.startswith("hf-hub:") else source
    repo_id, _, revision = body.partition("@")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise HubError(f"{source!r} is not a Hub source: write hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    return repo_id, (revision or None)


def _raise_for(exc: Exception, repo_id: str, filename: str | None, where: str) -> None:
    """Turn a client error into the HubError a user can act on."""
    from huggingface_hub import errors as hf_errors

    if isinstance(exc, hf_errors.RepositoryNotFoundError):
        raise HubError(
            f"Hub repo {repo_id} does not exist (or is private and no token was given); check the repo id, or "
            "publish the model with SynthesisModel.push_to_hub / semsyn-push"
        ) from None
    if isinstance(exc, hf_errors.RevisionNotFoundError):
        rev = where.partition("@")[2]
        raise HubError(
            f"Hub repo {repo_id} has no revision {rev!r}; use an existing branch, tag or commit id "
            "(huggingface_hub.list_repo_refs lists them)"
        ) from None
    if isinstance(exc, hf_errors.LocalEntryNotFoundError):
        raise HubError(
            f"{filename or 'the revision'} of {where} is not in the Hub cache and the Hub cannot be reached "
            f"({'HF_HUB_OFFLINE is set' if offline() else 'no connection'}); load it once online, or unset "
            "HF_HUB_OFFLINE"
        ) from None
    if isinstance(exc, hf_errors.EntryNotFoundError):
        if filename == "spec.yaml":
            raise HubError(
                f"{where} is not a semsyn model: it has no spec.yaml; semsyn repos hold spec.yaml and "
                "model.safetensors (publish with push_to_hub)"
            ) from None
        raise HubError(f"{where} is incomplete: it has no {filename}; publish it again with push_to_hub") from None
    raise HubError(f"cannot reach {filename or 'the repo'} of {where}: {type(exc).__name__}: {exc}") from None


def _client_errors() -> tuple[type[BaseException], ...]:
    from huggingface_hub import errors as hf_errors

    return (
        hf_errors.HfHubHTTPError,
        hf_errors.LocalEntryNotFoundError,
        hf_errors.EntryNotFoundError,
        OSError,
        ValueError,
    )


def download_file(
    repo_id: str, filename: str, revision: str | None = None, *, token: str | None = None, where: str | None = None
) -> Path:
    """One file of a Hub repo through `hf_hub_download` (cache, offline mode, tokens); HubError on failure.

    Args:
        where: how to name the repo and revision in errors (default `repo_id@revision`).
    """
    from huggingface_hub import hf_hub_download

    where = where or f"{repo_id}@{revision or 'main'}"
    try:
        path = hf_hub_download(
            repo_id, filename, revision=revision, token=token, local_files_only=offline(), **_client_kwargs()
        )
    except _client_errors() as exc:
        _raise_for(exc, repo_id, filename, where)
    return Path(path)


def pin_revision(repo_id: str, revision: str | None = None, *, token: str | None = None) -> str:
    """The commit id a branch, tag or commit of a repo points to now.

    Loading files at that commit (not at the branch name) pairs files of one snapshot, even when a push
    lands between two downloads. Offline, the cache's record of the revision answers (via the snapshot
    folder its spec.yaml is in).
    """
    rev = revision or "main"
    if _HEX40.fullmatch(rev):
        return rev
    if offline():
        path = download_file(repo_id, "spec.yaml", rev)
        return path.parent.name if _HEX40.fullmatch(path.parent.name) else rev
    try:
        info = api(token).model_info(repo_id, revision=rev)
    except _client_errors() as exc:
        _raise_for(exc, repo_id, None, f"{repo_id}@{rev}")
    return str(info.sha)


def remember_revision(snapshot_file: Path, revision: str | None, commit: str) -> None:
    """Record in the client's cache that `revision` points to `commit` (as a download by that name would).

    Files are downloaded at the pinned commit; without this record an offline load by branch or tag name
    would not find them. `snapshot_file` is a file the cache holds at `commit` (models--*/snapshots/<commit>/f).
    """
    rev = revision or "main"
    if _HEX40.fullmatch(rev) or snapshot_file.parent.name != commit:
        return
    refs = snapshot_file.parent.parent.parent / "refs" / rev
    try:
        refs.parent.mkdir(parents=True, exist_ok=True)
        if not refs.is_file() or refs.read_text().strip() != commit:
            tmp = refs.with_name(f".{refs.name}.{os.getpid()}.tmp")
            tmp.write_text(commit)
            os.replace(tmp, refs)
    except OSError as exc:  # a read-only cache still loads online
        logger.debug("cannot record %s -> %s in the Hub cache: %s", rev, commit, exc)


def fetch_text(repo_id: str, filename: str, revision: str | None = None, token: str | None = None) -> str | None:
    """A text file of a repo, or None when the repo, revision or file does not exist (or cannot be reached)."""
    try:
        return download_file(repo_id, filename, revision, token=token).read_text(encoding="utf-8")
    except HubError:
        return None


def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a folder as one commit to a Hub repo (created if needed); returns the commit id."""
    folder = Path(folder)
    client = api(token)
    try:
        client.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision and revision != "main":
            client.create_branch(repo_id, branch=revision, exist_ok=True)
        info = client.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with semsyn",
        )
    except _client_errors() as exc:
        raise HubError(
            f"pushing {folder} to {repo_id}@{revision or 'main'} failed: {type(exc).__name__}: {exc}"
        ) from None
    return info.oid
