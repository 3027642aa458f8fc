"""A Hugging Face Hub-compatible HTTP server for tests and demos.

This module is a test aid. It lets semsyn's tests and demos drive the real ``huggingface_hub`` client
(``create_repo``, ``upload_folder``, ``create_tag``, ``hf_hub_download``, ``snapshot_download``, ...) against a
small server on the loopback interface, with no network access. It is never the way users publish models: it
accepts any ``Authorization: Bearer`` token, stores the ``private`` flag without enforcing it, and trusts its
clients. It binds 127.0.0.1 unless told otherwise.

Client setup::

    import huggingface_hub.constants
    from huggingface_hub import HfApi

    huggingface_hub.constants.HF_HUB_DISABLE_XET = True  # the server speaks plain Git LFS, never Xet
    with HubServer(tmp_path / "hub") as hub:
        api = HfApi(endpoint=hub.endpoint, token="any-token")
        api.create_repo("org/model")

From a shell: ``python -m semsyn.testing.hub_server DIR --port 8765`` prints the endpoint on its first line of
standard output, then serves until SIGINT or SIGTERM.

Behaviour worth knowing:

* Only model repos named ``<namespace>/<name>`` are served (``/api/models/...``, ``/<ns>/<name>/resolve/...``).
* ``create_repo`` makes an initial commit holding a ``.gitattributes`` file, as the real Hub does, so
  ``list_repo_files`` on a fresh repo returns ``[".gitattributes"]``.
* Preupload answers ``uploadMode: "lfs"`` for a binary sample (a NUL byte in the first 512 bytes), for a suffix
  that Hub repos usually track with LFS (``.safetensors``, ``.bin``, ``.pt``, ...) and for files of
  ``LFS_SIZE_THRESHOLD`` bytes or more; such files travel through the LFS batch API and a PUT of the raw bytes,
  whose sha256 the server checks.
* A commit to a branch that does not exist answers 404 ``RevisionNotFound`` like the Hub does; create the branch
  first with ``HfApi.create_branch``, or add ``?create_branch=1`` to the commit URL to branch from ``main``.
* Pull requests (``create_pr=True``) and the Xet protocol are not supported.
* Blobs are content-addressed and shared by every repo on one storage directory, so
  :meth:`HubServer.corrupt_file` damages every file, in every repo and commit, that holds the same bytes.

Storage layout under the storage directory (all JSON written atomically)::

    blobs/<sha256[:2]>/<sha256>          file contents, content-addressed
    repos/<namespace>--<name>/repo.json  flags, branches and tags
    repos/<namespace>--<name>/commits/<commit id>.json
    tmp/                                 uploads in flight
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

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


# ---------------------------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------------------------


class _HubHTTPServer(ThreadingHTTPServer):
    """The socket server; it remembers open connections so that ``stop`` really stops serving keep-alive clients."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], store: _Store):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Answers one connection; routing, request bodies and responses live here, storage in ``_Store``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects
    server_version = "semsyn-test-hub"
    timeout = 120  # an idle keep-alive connection must not pin a thread forever
    server: _HubHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - " + format, self.address_string(), *args)

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch()

    do_HEAD = do_POST = do_PUT = do_DELETE = do_GET

    @property
    def store(self) -> _Store:
        return self.server.store

    @property
    def base_url(self) -> str:
        """The endpoint as the client reached it, so URLs we hand out work through any loopback name."""
        host = self.headers.get("Host") or "{}:{}".format(*self.server.server_address[:2])
        return f"http://{host}"

    # -- plumbing ----------------------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._body_consumed = False
        self._headers_sent = False
        try:
            url = urlsplit(self.path)
            segments = [unquote(part) for part in url.path.split("/") if part]
            self._route(segments, parse_qs(url.query, keep_blank_values=True))
        except HubServerError as exc:
            self._send_error(exc)
        except (ValueError, KeyError, TypeError) as exc:
            self._send_error(HubServerError(400, f"bad request: {exc}"))
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as exc:  # a test server should answer 500 and keep serving, not die
            logger.exception("hub test server failed on %s %s", self.command, self.path)
            self._send_error(HubServerError(500, f"internal error: {exc!r}"))

    def _send_error(self, exc: HubServerError) -> None:
        if self._headers_sent:
            self.close_connection = True  # too late for a status line; dropping the connection tells the client
            return
        headers = dict(exc.headers)
        if exc.code:
            headers["X-Error-Code"] = exc.code
        headers["X-Error-Message"] = exc.message.encode("ascii", "replace").decode()
        if not self._body_consumed and self._announces_body():
            # The unread body would be parsed as the next request on this keep-alive connection.
            headers["Connection"] = "close"
            self.close_connection = True
        self._send_json({"error": exc.message}, status=exc.status, headers=headers)

    def _announces_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or int(self.headers.get("Content-Length") or 0) > 0

    def _start(self, status: int, headers: dict[str, str], length: int) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self._headers_sent = True

    def _send_json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(obj).encode()
        self._start(status, {"Content-Type": "application/json", **(headers or {})}, len(body))
        if self.command != "HEAD":  # a HEAD answer carrying a body breaks the client's keep-alive parsing
            self.wfile.write(body)

    def _iter_body(self) -> Iterator[bytes]:
        """Yields the request body, whether sent with Content-Length or chunked transfer encoding."""
        self._body_consumed = True
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline(1024).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers carry nothing we use
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(1024)
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, remaining: int) -> Iterator[bytes]:
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _IO_CHUNK))
            if not chunk:
                raise ConnectionError("client closed the connection mid-body")
            remaining -= len(chunk)
            yield chunk

    def _json_body(self) -> dict[str, Any]:
        raw = b"".join(self._iter_body())
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as exc:
            raise HubServerError(400, f"request body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise HubServerError(400, "request body must be a JSON object")
        return body

    # -- routing -----------------------------------------------------------------------------------------------------

    def _route(self, segments: list[str], query: dict[str, list[str]]) -> None:
        method = self.command
        if segments[:1] == ["api"]:
            return self._route_api(method, segments[1:], query)
        if len(segments) >= 5 and segments[1].endswith(".git") and segments[2:5] == ["info", "lfs", "objects"]:
            repo_id = _check_repo_name(segments[0], segments[1][: -len(".git")])
            if method == "POST" and segments[5:] == ["batch"]:
                return self._lfs_batch(repo_id)
            if method == "PUT" and len(segments) == 7 and segments[5] == "upload":
                return self._lfs_put(repo_id, segments[6], query)
        if len(segments) >= 5 and segments[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(_check_repo_name(*segments[:2]), segments[3], "/".join(segments[4:]))
        raise HubServerError(404, f"no route for {method} {urlsplit(self.path).path}")

    def _route_api(self, method: str, segments: list[str], query: dict[str, list[str]]) -> None:
        if method == "POST" and segments == ["repos", "create"]:
            return self._create_repo()
        if method == "DELETE" and segments == ["repos", "delete"]:
            return self._delete_repo()
        if method == "POST" and segments == ["validate-yaml"]:
            self._json_body()
            return self._send_json({"errors": [], "warnings": []})
        if method == "GET" and segments == ["whoami-v2"]:
            return self._send_json(
                {
                    "type": "user",
                    "name": _USER,
                    "fullname": _USER,
                    "orgs": [],
                    "auth": {"type": "access_token", "accessToken": {"role": "write"}},
                }
            )
        if len(segments) >= 3 and segments[0] == "models":
            return self._route_model(method, _check_repo_name(segments[1], segments[2]), segments[3:], query)
        if len(segments) >= 3 and segments[0] in ("datasets", "spaces"):
            raise HubServerError(404, "this test server serves model repos only", "RepoNotFound")
        raise HubServerError(404, f"no route for {method} /api/{'/'.join(segments)}")

    def _route_model(self, method: str, repo_id: str, rest: list[str], query: dict[str, list[str]]) -> None:
        action = rest[0] if rest else ""
        if action in _REVISION_ACTIONS and len(rest) < 2:
            raise HubServerError(404, f"/{action} needs a revision or name")
        arg = rest[1] if len(rest) > 1 else ""
        routes: dict[tuple[str, str], Callable[[], None]] = {
            ("GET", ""): lambda: self._model_info(repo_id, DEFAULT_BRANCH, query),
            ("GET", "revision"): lambda: self._model_info(repo_id, arg, query),
            ("GET", "refs"): lambda: self._refs(repo_id, query),
            ("GET", "tree"): lambda: self._tree(repo_id, arg, "/".join(rest[2:]), query),
            ("GET", "commits"): lambda: self._commits(repo_id, arg),
            ("POST", "paths-info"): lambda: self._paths_info(repo_id, arg),
            ("POST", "preupload"): lambda: self._preupload(repo_id, arg),
            ("POST", "commit"): lambda: self._commit(repo_id, arg, query),
            ("POST", "tag"): lambda: self._create_tag(repo_id, arg),
            ("DELETE", "tag"): lambda: self._delete_ref(repo_id, "tags", arg),
            ("POST", "branch"): lambda: self._create_branch(repo_id, arg),
            ("DELETE", "branch"): lambda: self._delete_ref(repo_id, "branches", arg),
            ("PUT", "settings"): lambda: self._settings(repo_id),
        }
        route = routes.get((method, action))
        if route is None:
            raise HubServerError(404, f"no route for {method} /api/models/{repo_id}/{'/'.join(rest)}")
        route()

    # -- repos -------------------------------------------------------------------------------------------------------

    def _create_repo(self) -> None:
        body = self._json_body()
        if body.get("type", "model") != "model":
            raise HubServerError(400, "this test server serves model repos only")
        if not body.get("organization"):
            raise HubServerError(400, "this test server needs a repo id of the form <namespace>/<name>")
        repo_id = _check_repo_name(body["organization"], body.get("name"))
        private = body.get("visibility") == "private" or body.get("private") is True
        url = f"{self.base_url}/{repo_id}"
        if not self.store.create_repo(repo_id, private):
            return self._send_json({"error": "You already created this model repo", "url": url}, status=409)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _delete_repo(self) -> None:
        body = self._json_body()
        self.store.delete_repo(_check_repo_name(body.get("organization"), body.get("name")))
        self._send_json({})

    def _settings(self, repo_id: str) -> None:
        body = self._json_body()
        if "visibility" in body or "private" in body:
            self.store.set_private(repo_id, body.get("visibility") == "private" or body.get("private") is True)
        else:
            self.store.load_repo(repo_id)
        self._send_json({})

    def _create_tag(self, repo_id: str, revision: str) -> None:
        body = self._json_body()
        self.store.create_ref(repo_id, "tags", str(body.get("tag") or ""), revision, body.get("message"))
        self._send_json({})

    def _create_branch(self, repo_id: str, branch: str) -> None:
        body = self._json_body()
        self.store.create_ref(repo_id, "branches", branch, str(body.get("startingPoint") or DEFAULT_BRANCH))
        self._send_json({})

    def _delete_ref(self, repo_id: str, kind: str, name: str) -> None:
        self.store.delete_ref(repo_id, kind, name)
        self._send_json({})

    # -- reads -------------------------------------------------------------------------------------------------------

    def _model_info(self, repo_id: str, revision: str, query: dict[str, list[str]]) -> None:
        meta, commit = self.store.resolve(repo_id, revision)
        self._send_json(_model_info_json(meta, commit, blobs=_flag(query, "blobs")))

    def _refs(self, repo_id: str, query: dict[str, list[str]]) -> None:
        meta = self.store.load_repo(repo_id)

        def refs(kind: str, prefix: str) -> list[dict[str, str]]:
            items = sorted(meta[kind].items())
            return [{"name": name, "ref": f"{prefix}{name}", "targetCommit": target} for name, target in items]

        answer: dict[str, Any] = {
            "branches": refs("branches", "refs/heads/"),
            "tags": refs("tags", "refs/tags/"),
            "converts": [],
        }
        if _flag(query, "include_prs"):
            answer["pullRequests"] = []
        self._send_json(answer)

    def _tree(self, repo_id: str, revision: str, folder: str, query: dict[str, list[str]]) -> None:
        _, commit = self.store.resolve(repo_id, revision)
        self._send_json(_tree_json(commit["files"], folder.strip("/"), recursive=_flag(query, "recursive")))

    def _commits(self, repo_id: str, revision: str) -> None:
        self._send_json([_commit_json(commit) for commit in self.store.history(repo_id, revision)])

    def _paths_info(self, repo_id: str, revision: str) -> None:
        form = parse_qs(b"".join(self._iter_body()).decode(), keep_blank_values=True)
        _, commit = self.store.resolve(repo_id, revision)
        files: dict[str, dict] = commit["files"]
        answer = []
        for path in dict.fromkeys(path.strip("/") for path in form.get("paths", [])):
            if path in files:
                answer.append(_file_json(path, files[path]))
            elif any(name.startswith(path + "/") for name in files):
                answer.append(_folder_json(files, path))
        self._send_json(answer)

    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        _, commit = self.store.resolve(repo_id, revision)
        entry = commit["files"].get(path)
        if entry is None:
            raise HubServerError(
                404, f"{path} not found at {revision}", "EntryNotFound", {"X-Repo-Commit": commit["id"]}
            )
        blob = self.store.blob_path(entry["sha256"])
        # The stored bytes go out as they are, even after corrupt_file: catching that is the client's job.
        size = blob.stat().st_size
        headers = {
            "Content-Type": "application/octet-stream",
            "X-Repo-Commit": commit["id"],
            "ETag": '"{}"'.format(entry["sha256"] if entry["lfs"] else entry["sha1"]),
            "Accept-Ranges": "bytes",
        }
        span = _parse_range(self.headers.get("Range"), size)
        start, end = span if span is not None else (0, size - 1)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._start(206 if span is not None else 200, headers, end - start + 1)
        if self.command == "HEAD":
            return
        with blob.open("rb") as fh:
            fh.seek(start)
            remaining = end - start + 1
            while remaining > 0:
                chunk = fh.read(min(remaining, _IO_CHUNK))
                if not chunk:
                    raise ConnectionError("blob shrank while being served")
                self.wfile.write(chunk)
                remaining -= len(chunk)

    # -- uploads -----------------------------------------------------------------------------------------------------

    def _preupload(self, repo_id: str, revision: str) -> None:
        body = self._json_body()
        self.store.load_repo(repo_id)
        try:
            files = self.store.resolve(repo_id, revision)[1]["files"]
        except HubServerError:
            files = {}  # a branch that the commit will create has no files to compare against yet
        answer = []
        for item in body.get("files", []):
            path = _clean_repo_path(item.get("path"))
            sample = base64.b64decode(item.get("sample") or "")
            mode = "lfs" if _wants_lfs(path, int(item.get("size", 0)), sample) else "regular"
            existing = files.get(path)
            oid = None if existing is None else existing["sha256"] if existing["lfs"] else existing["sha1"]
            answer.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._send_json({"files": answer})

    def _lfs_batch(self, repo_id: str) -> None:
        body = self._json_body()
        self.store.load_repo(repo_id)
        if body.get("operation") != "upload":
            raise HubServerError(400, "this test server's LFS batch API handles uploads only")
        objects = []
        for obj in body.get("objects", []):
            oid, size = obj.get("oid"), obj.get("size")
            if not isinstance(oid, str) or not _HEX64.fullmatch(oid) or not isinstance(size, int) or size < 0:
                objects.append({"oid": str(oid), "size": 0, "error": {"code": 422, "message": "invalid oid or size"}})
            elif self.store.has_blob(oid, size):
                objects.append({"oid": oid, "size": size})  # already stored: no actions, the client skips it
            else:
                href = f"{self.base_url}/{repo_id}.git/info/lfs/objects/upload/{oid}?size={size}"
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {"upload": {"href": href}}})
        self._send_json(
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _lfs_put(self, repo_id: str, oid: str, query: dict[str, list[str]]) -> None:
        self.store.load_repo(repo_id)
        if not _HEX64.fullmatch(oid):
            raise HubServerError(400, f"invalid LFS oid {oid!r}")
        _, size = self.store.put_blob(self._iter_body(), expected_sha256=oid)
        expected_size = query.get("size", [None])[-1]
        if expected_size is not None and int(expected_size) != size:
            raise HubServerError(400, f"uploaded {size} bytes, the batch request announced {expected_size}")
        logger.debug("stored LFS object %s (%d bytes) for %s", oid, size, repo_id)
        self._send_json({})

    def _commit(self, repo_id: str, branch: str, query: dict[str, list[str]]) -> None:
        if _flag(query, "create_pr"):
            raise HubServerError(400, "this test server does not support pull requests")
        header: dict[str, Any] | None = None
        ops: list[dict[str, Any]] = []
        for line in b"".join(self._iter_body()).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if not isinstance(item, dict):
                raise HubServerError(400, "each NDJSON line must be an object")
            if item.get("key") == "header":
                header = item.get("value") or {}
            else:
                ops.append(item)
        if header is None:
            raise HubServerError(400, "commit payload has no header line")
        commit = self.store.commit(repo_id, branch, header, ops, create_branch=_flag(query, "create_branch"))
        self._send_json(
            {
                "commitUrl": f"{self.base_url}/{repo_id}/commit/{commit['id']}",
                "commitOid": commit["id"],
                "pullRequestUrl": None,
            }
        )


# ---------------------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HubServer:
    """A Hub-compatible test server over a storage directory, served from a daemon thread.

    Args:
        storage_dir: Where blobs, repos, refs and commits live; created if missing. A server started again on
            the same directory serves the same data.
        host: Address to bind. Keep the loopback default: the server has no authentication.
        port: Port to bind; 0 picks a free one (read it back from :attr:`endpoint`).

    Example:
        >>> with HubServer(tmp_path / "hub") as hub:  # doctest: +SKIP
        ...     HfApi(endpoint=hub.endpoint).create_repo("org/model")
    """

    def __init__(self, storage_dir: str | os.PathLike, host: str = "127.0.0.1", port: int = 0):
        self.storage_dir = Path(storage_dir)
        self.host = host
        self.port = port
        self._store = _Store(self.storage_dir)
        self._httpd: _HubHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        """Binds the socket and serves in a daemon thread.

        Returns:
            This server, so that ``HubServer(dir).start()`` can be assigned.

        Raises:
            RuntimeError: If the server is already running.
        """
        if self._httpd is not None:
            raise RuntimeError("HubServer is already running")
        if not _is_loopback(self.host):
            logger.warning("hub test server binds %s, not loopback: it has no authentication", self.host)
        self._httpd = _HubHTTPServer((self.host, self.port), self._store)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="semsyn-hub-server", daemon=True
        )
        self._thread.start()
        logger.debug("hub test server at %s serving %s", self.endpoint, self.storage_dir)
        return self

    def stop(self) -> None:
        """Stops serving, closes open client connections and releases the port. Safe to call twice."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def endpoint(self) -> str:
        """The base URL to give the client, e.g. ``http://127.0.0.1:54321``.

        Raises:
            RuntimeError: If the server is not running (the port is only known once bound).
        """
        if self._httpd is None:
            raise RuntimeError("HubServer is not running; call start() first")
        host, port = self._httpd.server_address[:2]
        if host in ("0.0.0.0", "::"):
            host = "127.0.0.1" if host == "0.0.0.0" else "::1"
        return f"http://[{host}]:{port}" if ":" in str(host) else f"http://{host}:{port}"

    def corrupt_file(self, repo_id: str, path: str, revision: str = DEFAULT_BRANCH) -> None:
        """Flips the first bytes of a stored file in place, keeping its recorded size and hashes.

        Downloads of the file then get wrong bytes under the original ETag, which lets tests prove that
        corruption is caught downstream. Blobs are shared by content, so every file holding the same bytes, in
        any repo or commit on this storage directory, is corrupted too.

        Args:
            repo_id: ``namespace/name`` of the repo.
            path: File path inside the repo.
            revision: Branch, tag or commit id at which ``path`` is looked up.

        Raises:
            HubServerError: If the repo, revision or file does not exist.
            ValueError: If the file is empty.
        """
        self._store.corrupt(repo_id, path, revision)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Runs the server from the command line until SIGINT or SIGTERM.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    parser = argparse.ArgumentParser(
        prog="python -m semsyn.testing.hub_server",
        description="Hugging Face Hub-compatible server for tests and demos (no authentication; loopback only).",
    )
    parser.add_argument("storage_dir", help="directory holding the repos; reused across restarts")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: 0, a free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, stream=sys.stderr)

    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set from there
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        with HubServer(args.storage_dir, host=args.host, port=args.port) as server:
            print(server.endpoint, flush=True)
            while not stop.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
