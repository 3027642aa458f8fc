"""The app's HTTP server: the page, its static files and a small JSON / binary API, standard library only.

Endpoints (all on one host, loopback by default):

    GET  /                       the page (static/index.html)
    GET  /static/NAME            app.js, app.css
    GET  /api/info               JSON: model name, size, classes (names, colours), features on offer
    POST /api/render?seed=&scale=&style=&class_seeds=ID:SEED,...
                                 body: the canvas, H*W little-endian uint16 class ids (255 = unpainted)
                                 -> image/png, with the model's time in X-Render-Ms
    POST /api/label              body: an uploaded label map (PNG) -> uint16 ids at the model's size,
                                 with what was done to it in X-Semsyn-Note
    POST /api/style              body: a style image -> JSON {"token": ...} for /api/render?style=
    POST /api/export?format=ids|colour
                                 body: the canvas as for /api/render -> the label map as a PNG

Every refusal is JSON `{"error": "..."}` with status 400 (bad input), 413 (too large) or 500 (a bug: the
message names the exception; the traceback goes to the server's log, never to the page).
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from semsyn.app.labelmaps import MAX_UPLOAD_BYTES, AppInputError, colour_png, decode_label_upload, ids_png
from semsyn.app.renderer import Renderer, RenderRequest, check_request_fields
from semsyn.errors import SemsynError

__all__ = ["AppServer", "STATIC_FILES"]

logger = logging.getLogger(__name__)

STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
# Bodies past the upload limit are read and dropped up to this size so the browser sees the 413 answer
# (closing on an unread body makes it report a reset connection instead); larger ones are cut off.
_DRAIN_LIMIT = 256 * 1024 * 1024


def _static(name: str) -> bytes:
    return resources.files("semsyn.app").joinpath("static", name).read_bytes()


def _parse_class_seeds(text: str) -> dict[int, int]:
    """`"4:17,0:3"` -> {4: 17, 0: 3}."""
    seeds: dict[int, int] = {}
    for item in filter(None, text.split(",")):
        cls, _, seed = item.partition(":")
        try:
            seeds[int(cls)] = int(seed)
        except ValueError:
            raise AppInputError(f"class_seeds must read CLASS:SEED,..., got {item!r}") from None
    return seeds


class _Handler(BaseHTTPRequestHandler):
    server: AppServer
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class names it so)
        logger.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise AppInputError("the request has no valid Content-Length") from None
        if length > MAX_UPLOAD_BYTES:
            if length <= _DRAIN_LIMIT:
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            else:
                self.close_connection = True
            raise AppInputError(
                f"the upload is {length / 2**20:.1f} MB; the app takes files up to {MAX_UPLOAD_BYTES // 2**20} MB",
                status=413,
            )
        return self.rfile.read(length)

    def _canvas(self, body: bytes) -> np.ndarray:
        height, width = self.server.renderer.size
        if len(body) != 2 * height * width:
            raise AppInputError(
                f"the canvas holds {len(body) // 2} pixels, the model's size {width}x{height} needs {height * width}: "
                "reload the page"
            )
        return np.frombuffer(body, dtype="<u2").reshape(height, width).astype(np.int64)

    def _dispatch(self, routes: dict[str, Any]) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        handler = routes.get(url.path)
        try:
            if handler is None:
                self._error(404, f"no such page: {url.path}")
                return
            handler(query)
        except AppInputError as exc:
            self._error(exc.status, str(exc))
        except SemsynError as exc:  # the model's own refusals (a label outside the schema, ...) read as sentences
            self._error(400, " ".join(str(exc).split()))
        except Exception as exc:
            logger.exception("the app failed on %s %s", self.command, self.path)
            self._error(500, f"the server failed ({type(exc).__name__}: {exc}); its log has the details")

    # -- routes -----------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        routes = {
            "/": lambda q: self._file("index.html"),
            "/api/info": lambda q: self._json(self.server.info),
            "/favicon.ico": lambda q: self._send(204, b"", "image/x-icon"),  # browsers ask; there is none
        }
        for name in STATIC_FILES:
            routes[f"/static/{name}"] = lambda q, name=name: self._file(name)
        self._dispatch(routes)

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(
            {
                "/api/render": self._render,
                "/api/label": self._label,
                "/api/style": self._style,
                "/api/export": self._export,
            }
        )

    def _file(self, name: str) -> None:
        self._send(200, _static(name), STATIC_FILES[name])

    def _render(self, query: dict[str, str]) -> None:
        ids = self._canvas(self._body())
        seed, scale = check_request_fields(query.get("seed", "0"), query.get("scale", "1"))
        request = RenderRequest(
            ids=ids,
            seed=seed,
            scale=scale,
            style_token=query.get("style") or None,
            class_seeds=_parse_class_seeds(query.get("class_seeds", "")),
        )
        png, elapsed = self.server.renderer.render(request)
        self._send(200, png, "image/png", {"X-Render-Ms": f"{elapsed:.1f}"})

    def _label(self, query: dict[str, str]) -> None:
        renderer = self.server.renderer
        upload = decode_label_upload(self._body(), renderer.schema, renderer.size)
        body = upload.ids.astype("<u2").tobytes()
        self._send(200, body, "application/octet-stream", {"X-Semsyn-Note": upload.note})

    def _style(self, query: dict[str, str]) -> None:
        self._json({"token": self.server.renderer.add_style_image(self._body())})

    def _export(self, query: dict[str, str]) -> None:
        ids = self._canvas(self._body())
        kind = query.get("format", "ids")
        if kind == "ids":
            self._send(200, ids_png(ids), "image/png")
        elif kind == "colour":
            self._send(200, colour_png(ids, self.server.renderer.schema), "image/png")
        else:
            raise AppInputError(f"format must be 'ids' or 'colour', got {kind!r}")


class AppServer(ThreadingHTTPServer):
    """The app on `host:port` (port 0 picks a free one); `with AppServer(...) as app:` serves in a thread.

    Args:
        renderer: the model's renderer.
        host: the interface to bind; 127.0.0.1 keeps the app on this machine.
        port: the port, 0 for any free one (see `url`).
    """

    daemon_threads = True

    def __init__(self, renderer: Renderer, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.renderer = renderer
        self.info = renderer.info()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> AppServer:
        self._thread = threading.Thread(target=self.serve_forever, name="semsyn-app", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join()
