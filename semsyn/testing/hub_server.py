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
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from semsyn.testing.hub_store import (
    _HEX64,
    _IO_CHUNK,
    _REVISION_ACTIONS,
    _USER,
    DEFAULT_BRANCH,
    HubServerError,
    _check_repo_name,
    _clean_repo_path,
    _commit_json,
    _file_json,
    _flag,
    _folder_json,
    _model_info_json,
    _parse_range,
    _Store,
    _tree_json,
    _wants_lfs,
)

logger = logging.getLogger(__name__)

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
