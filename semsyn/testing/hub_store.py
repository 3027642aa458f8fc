"""Storage of the test Hub server: blobs, repos, commits and refs on disk, and the JSON shapes the client parses.

Split from `semsyn.testing.hub_server` (the HTTP side); see that module's docstring for the layout on disk.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_BRANCH = "main"
"""The branch that ``create_repo`` makes and that a revision-less request reads."""

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
"""Files of at least this many bytes are uploaded through LFS, like on the real Hub."""

LFS_SUFFIXES = (
    ".7z", ".arrow", ".bin", ".bz2", ".ckpt", ".ftz", ".gguf", ".gz", ".h5", ".joblib", ".mlmodel", ".model",
    ".msgpack", ".npy", ".npz", ".onnx", ".ot", ".parquet", ".pb", ".pickle", ".pkl", ".pt", ".pth", ".rar",
    ".safetensors", ".tar", ".tflite", ".tgz", ".wasm", ".xz", ".zip", ".zst",
)  # fmt: skip
"""Suffixes that the initial ``.gitattributes`` tracks with LFS and that preupload sends through LFS."""

_USER = "semsyn-test"
_IO_CHUNK = 1024 * 1024
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_REVISION_ACTIONS = {"revision", "preupload", "commit", "tag", "branch", "tree", "commits", "paths-info"}


class HubServerError(Exception):
    """An error answered to the client as JSON, with the Hub's ``X-Error-Code`` header when one applies.

    Args:
        status: HTTP status code.
        message: Human-readable message, sent as ``{"error": message}`` and in ``X-Error-Message``.
        code: ``RepoNotFound``, ``RevisionNotFound`` or ``EntryNotFound``; the client maps it to its exceptions.
        headers: Extra response headers.
    """

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def _now_iso() -> str:
    """Returns the current UTC time in the Hub's ``%Y-%m-%dT%H:%M:%S.%fZ`` style, with milliseconds."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _git_blob_sha1(data: bytes) -> str:
    """Returns the id git gives ``data`` as a blob, which the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    """Returns the Git LFS pointer file that git stores in place of an LFS file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _write_json_atomic(path: Path, obj: Any) -> None:
    """Writes ``obj`` as JSON so that readers and a crash never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _clean_repo_path(path: Any) -> str:
    """Validates a file path inside a repo, refusing anything that could escape or confuse the tree."""
    if not isinstance(path, str) or not path or path.startswith("/") or "\\" in path or "\0" in path:
        raise HubServerError(400, f"invalid path in repo: {path!r}")
    if any(part in ("", ".", "..") for part in path.split("/")) or path == ".git" or path.startswith(".git/"):
        raise HubServerError(400, f"invalid path in repo: {path!r}")
    return path


def _check_repo_name(namespace: Any, name: Any) -> str:
    """Returns ``namespace/name`` after checking both parts the way the client's ``validate_repo_id`` does."""
    for part in (namespace, name):
        if not isinstance(part, str) or not _NAME.fullmatch(part) or "--" in part or ".." in part:
            raise HubServerError(400, f"invalid repo id part {part!r}; this test server needs <namespace>/<name>")
    if name.endswith(".git"):
        raise HubServerError(400, "a repo name cannot end with .git")
    return f"{namespace}/{name}"


def _wants_lfs(path: str, size: int, sample: bytes) -> bool:
    return size >= LFS_SIZE_THRESHOLD or b"\0" in sample or path.lower().endswith(LFS_SUFFIXES)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    """Reads a boolean query parameter the way the client spells it (``true``, ``True``, ``1``)."""
    values = query.get(name) or [""]
    return values[-1].lower() in ("1", "true", "yes")


def _parse_range(value: str | None, size: int) -> tuple[int, int] | None:
    """Returns the inclusive byte span of a single-range ``Range`` header, or None to send the whole file.

    Raises:
        HubServerError: 416 when the range starts past the end of the file.
    """
    match = _RANGE.fullmatch(value.strip()) if value else None
    if match is None or not (match[1] or match[2]):
        return None  # absent, malformed or multi-range: answering 200 with the whole file is allowed
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
        if int(match[2]) == 0:
            start = size
    if start >= size or start > end:
        raise HubServerError(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})
    return start, end


# ---------------------------------------------------------------------------------------------------------------
# Storage: blobs, repos, commits and refs on disk
# ---------------------------------------------------------------------------------------------------------------


class _Store:
    """Everything the server knows, kept on disk so that a restart on the same directory serves the same data.

    One re-entrant lock serialises changes to repo metadata; blob writes run outside it because they are
    content-addressed and land with an atomic rename.
    """

    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / "blobs"
        self.repos = root / "repos"
        self.tmp = root / "tmp"
        for directory in (self.blobs, self.repos, self.tmp):
            directory.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    # -- blobs ---------------------------------------------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def has_blob(self, sha256: str, size: int) -> bool:
        path = self.blob_path(sha256)
        return path.is_file() and path.stat().st_size == size

    def put_blob(self, chunks: Iterable[bytes], expected_sha256: str | None = None) -> tuple[str, int]:
        """Stores a blob, checking its sha256 when the caller announced one.

        Returns:
            The sha256 and size of the stored bytes.

        Raises:
            HubServerError: 400 when the bytes do not hash to ``expected_sha256``.
        """
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(prefix="blob-", dir=self.tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    fh.write(chunk)
            sha256 = digest.hexdigest()
            if expected_sha256 is not None and sha256 != expected_sha256:
                raise HubServerError(400, f"uploaded bytes hash to sha256 {sha256}, expected {expected_sha256}")
            target = self.blob_path(sha256)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)
            raise
        return sha256, size

    # -- repos and commits ---------------------------------------------------------------------------------------

    def repo_dir(self, repo_id: str) -> Path:
        return self.repos / repo_id.replace("/", "--")

    def load_repo(self, repo_id: str) -> dict[str, Any]:
        path = self.repo_dir(repo_id) / "repo.json"
        if not path.is_file():
            raise HubServerError(404, f"repository {repo_id} not found", "RepoNotFound")
        return _read_json(path)

    def save_repo(self, meta: dict[str, Any]) -> None:
        _write_json_atomic(self.repo_dir(meta["id"]) / "repo.json", meta)

    def load_commit(self, repo_id: str, commit_id: str) -> dict[str, Any]:
        return _read_json(self.repo_dir(repo_id) / "commits" / f"{commit_id}.json")

    def new_commit(self, repo_id: str, parent: str | None, header: dict[str, Any], files: dict) -> dict[str, Any]:
        """Records a commit; its id is the sha1 of its canonical JSON, so it is stable and 40-hex like git's."""
        commit = {
            "parent": parent,
            "title": str(header.get("summary") or ""),
            "message": str(header.get("description") or ""),
            "date": _now_iso(),
            "authors": [_USER],
            "files": files,
        }
        canonical = json.dumps(commit, sort_keys=True, separators=(",", ":")).encode()
        commit["id"] = hashlib.sha1(canonical).hexdigest()
        _write_json_atomic(self.repo_dir(repo_id) / "commits" / f"{commit['id']}.json", commit)
        return commit

    def resolve(self, repo_id: str, revision: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Finds the commit a branch, tag or full commit id names.

        Returns:
            The repo metadata and the commit.

        Raises:
            HubServerError: 404 ``RepoNotFound`` or ``RevisionNotFound``.
        """
        with self.lock:
            meta = self.load_repo(repo_id)
            name = revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
            commit_id = meta["branches"].get(name) or meta["tags"].get(name)
            commit_file = self.repo_dir(repo_id) / "commits" / f"{revision}.json"
            if commit_id is None and _HEX40.fullmatch(revision) and commit_file.is_file():
                commit_id = revision
            if commit_id is None:
                raise HubServerError(404, f"revision {revision} not found in {repo_id}", "RevisionNotFound")
            return meta, self.load_commit(repo_id, commit_id)

    def history(self, repo_id: str, revision: str) -> list[dict[str, Any]]:
        """Returns the commits reachable from ``revision``, newest first."""
        with self.lock:
            _, commit = self.resolve(repo_id, revision)
            commits = [commit]
            while commits[-1]["parent"] is not None:
                commits.append(self.load_commit(repo_id, commits[-1]["parent"]))
            return commits

    # -- repo-level operations -----------------------------------------------------------------------------------

    def create_repo(self, repo_id: str, private: bool) -> bool:
        """Creates a repo with an initial ``.gitattributes`` commit; returns False when it already exists."""
        with self.lock:
            if (self.repo_dir(repo_id) / "repo.json").is_file():
                return False
            gitattributes = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
            data = gitattributes.encode()
            sha256, size = self.put_blob([data])
            files = {".gitattributes": {"size": size, "sha256": sha256, "sha1": _git_blob_sha1(data), "lfs": False}}
            commit = self.new_commit(repo_id, None, {"summary": "initial commit"}, files)
            meta = {
                "id": repo_id,
                "private": private,
                "createdAt": commit["date"],
                "branches": {DEFAULT_BRANCH: commit["id"]},
                "tags": {},
                "tagMessages": {},
            }
            self.save_repo(meta)
            return True

    def delete_repo(self, repo_id: str) -> None:
        with self.lock:
            self.load_repo(repo_id)
            shutil.rmtree(self.repo_dir(repo_id))

    def set_private(self, repo_id: str, private: bool) -> None:
        with self.lock:
            meta = self.load_repo(repo_id)
            meta["private"] = private
            self.save_repo(meta)

    def create_ref(self, repo_id: str, kind: str, name: str, revision: str, message: str | None = None) -> None:
        """Creates a branch or tag (``kind`` is ``branches`` or ``tags``) pointing at ``revision``."""
        with self.lock:
            meta, commit = self.resolve(repo_id, revision)
            if not name or name in meta["branches"] or name in meta["tags"] or _HEX40.fullmatch(name):
                raise HubServerError(409, f"reference {name!r} already exists or is not a valid name")
            meta[kind][name] = commit["id"]
            if kind == "tags" and message:
                meta["tagMessages"][name] = message
            self.save_repo(meta)

    def delete_ref(self, repo_id: str, kind: str, name: str) -> None:
        with self.lock:
            meta = self.load_repo(repo_id)
            if kind == "branches" and name == DEFAULT_BRANCH:
                raise HubServerError(403, f"the {DEFAULT_BRANCH} branch cannot be deleted")
            if meta[kind].pop(name, None) is None:
                raise HubServerError(404, f"{kind[:-1]} {name} not found", "RevisionNotFound")
            if kind == "tags":
                meta["tagMessages"].pop(name, None)
            self.save_repo(meta)

    # -- commits ---------------------------------------------------------------------------------------------------

    def commit(self, repo_id: str, branch: str, header: dict, ops: list[dict], create_branch: bool) -> dict:
        """Applies NDJSON commit operations on top of ``branch`` and moves the branch to the new commit.

        Raises:
            HubServerError: when the branch, a deleted entry or an LFS blob is missing, or the parent is stale.
        """
        with self.lock:
            meta = self.load_repo(repo_id)
            head = meta["branches"].get(branch)
            if head is None:
                if branch in meta["tags"] or _HEX40.fullmatch(branch):
                    raise HubServerError(400, f"{branch} is not a branch; commits go to branches only")
                if not create_branch:
                    raise HubServerError(404, f"branch {branch} not found in {repo_id}", "RevisionNotFound")
                head = meta["branches"][DEFAULT_BRANCH]
            expected_parent = header.get("parentCommit")
            if expected_parent and expected_parent != head:
                raise HubServerError(412, f"parent commit {expected_parent} is not the head of {branch} ({head})")
            files = dict(self.load_commit(repo_id, head)["files"])
            for op in ops:
                self._apply(files, op)
            _check_no_file_dir_clash(files)
            commit = self.new_commit(repo_id, head, header, files)
            meta["branches"][branch] = commit["id"]
            self.save_repo(meta)
            return commit

    def _apply(self, files: dict[str, dict], op: dict[str, Any]) -> None:
        key, value = op.get("key"), op.get("value")
        if not isinstance(value, dict):
            raise HubServerError(400, f"commit operation {key!r} has no object value")
        path = value.get("path")
        if key == "deletedFolder" and isinstance(path, str):
            path = path.rstrip("/")  # the client keeps the trailing slash that marks a folder
        path = _clean_repo_path(path)
        if key == "file":
            files[path] = self._regular_entry(value)
        elif key == "lfsFile":
            files[path] = self._lfs_entry(value)
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise HubServerError(404, f"cannot delete {path}: no such file", "EntryNotFound")
        elif key == "deletedFolder":
            doomed = [name for name in files if name.startswith(path + "/")]
            if not doomed:
                raise HubServerError(404, f"cannot delete folder {path}: no such folder", "EntryNotFound")
            for name in doomed:
                del files[name]
        else:
            raise HubServerError(400, f"unknown commit operation {key!r}")

    def _regular_entry(self, value: dict[str, Any]) -> dict[str, Any]:
        content = value.get("content", "")
        try:
            data = base64.b64decode(content, validate=True) if value.get("encoding") == "base64" else content.encode()
        except (binascii.Error, AttributeError) as exc:
            raise HubServerError(400, f"file {value.get('path')!r} has undecodable content") from exc
        sha256, size = self.put_blob([data])
        return {"size": size, "sha256": sha256, "sha1": _git_blob_sha1(data), "lfs": False}

    def _lfs_entry(self, value: dict[str, Any]) -> dict[str, Any]:
        oid = value.get("oid")
        if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str) or not _HEX64.fullmatch(oid):
            raise HubServerError(400, f"lfsFile {value.get('path')!r} needs a sha256 oid")
        blob = self.blob_path(oid)
        if not blob.is_file():
            raise HubServerError(422, f"LFS object {oid} for {value.get('path')!r} was never uploaded")
        # A copy operation names the oid without a size: the stored blob knows it.
        size = value.get("size", blob.stat().st_size)
        if size != blob.stat().st_size:
            raise HubServerError(422, f"LFS object {oid} has {blob.stat().st_size} bytes, the commit says {size}")
        return {"size": size, "sha256": oid, "sha1": _git_blob_sha1(_lfs_pointer(oid, size)), "lfs": True}

    def corrupt(self, repo_id: str, path: str, revision: str) -> None:
        """Flips the first bytes of a file's stored blob, leaving every recorded hash as it was."""
        with self.lock:
            _, commit = self.resolve(repo_id, revision)
            entry = commit["files"].get(path)
            if entry is None:
                raise HubServerError(404, f"{path} not found at {revision} in {repo_id}", "EntryNotFound")
            with self.blob_path(entry["sha256"]).open("r+b") as fh:
                head = fh.read(16)
                if not head:
                    raise ValueError(f"{path} is empty: there are no bytes to corrupt")
                fh.seek(0)
                fh.write(bytes(byte ^ 0xFF for byte in head))


def _check_no_file_dir_clash(files: dict[str, dict]) -> None:
    """Refuses a tree where one path is both a file and a folder, which git cannot store."""
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in files:
                raise HubServerError(400, f"{path} needs {'/'.join(parts[:depth])} to be a folder, but it is a file")


# ---------------------------------------------------------------------------------------------------------------
# JSON shapes the client parses
# ---------------------------------------------------------------------------------------------------------------


def _file_json(path: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A tree or paths-info entry for a file (``RepoFile`` in the client)."""
    item: dict[str, Any] = {"type": "file", "path": path, "size": entry["size"], "oid": entry["sha1"]}
    if entry["lfs"]:
        pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
        item["lfs"] = {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}
    return item


def _folder_json(files: dict[str, dict], folder: str) -> dict[str, Any]:
    """A tree entry for a folder; its oid hashes the folder's content so it changes when the content does."""
    prefix = folder + "/"
    listing = "".join(f"{path}:{entry['sha1']}\n" for path, entry in sorted(files.items()) if path.startswith(prefix))
    return {"type": "directory", "path": folder, "oid": hashlib.sha1(listing.encode()).hexdigest()}


def _tree_json(files: dict[str, dict], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """Lists a folder of a commit's file table like ``/api/models/<id>/tree/<rev>/<folder>``.

    Raises:
        HubServerError: 404 ``EntryNotFound`` when ``folder`` holds nothing.
    """
    prefix = folder + "/" if folder else ""
    folders: set[str] = set()
    listed: list[dict[str, Any]] = []
    for path, entry in sorted(files.items()):
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        depth_limit = len(parts) if recursive else 2
        folders.update(prefix + "/".join(parts[:depth]) for depth in range(1, min(len(parts), depth_limit)))
        if recursive or len(parts) == 1:
            listed.append(_file_json(path, entry))
    if folder and not listed and not folders:
        raise HubServerError(404, f"folder {folder} not found", "EntryNotFound")
    listed.extend(_folder_json(files, name) for name in folders)
    return sorted(listed, key=lambda item: item["path"])


def _model_info_json(meta: dict[str, Any], commit: dict[str, Any], blobs: bool) -> dict[str, Any]:
    siblings = []
    for path, entry in sorted(commit["files"].items()):
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=entry["size"], blobId=entry["sha1"])
            if entry["lfs"]:
                pointer_size = len(_lfs_pointer(entry["sha256"], entry["size"]))
                sibling["lfs"] = {"size": entry["size"], "sha256": entry["sha256"], "pointerSize": pointer_size}
        siblings.append(sibling)
    return {
        "_id": hashlib.sha1(meta["id"].encode()).hexdigest()[:24],
        "id": meta["id"],
        "modelId": meta["id"],
        "author": meta["id"].split("/")[0],
        "sha": commit["id"],
        "lastModified": commit["date"],
        "createdAt": meta["createdAt"],
        "private": meta["private"],
        "disabled": False,
        "gated": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(entry["size"] for entry in commit["files"].values()),
    }


def _commit_json(commit: dict[str, Any]) -> dict[str, Any]:
    authors = [{"user": user} for user in commit["authors"]]
    return {
        "id": commit["id"],
        "title": commit["title"],
        "message": commit["message"],
        "date": commit["date"],
        "authors": authors,
    }
