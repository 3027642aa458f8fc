"""semsyn-app: paint a label map in the browser and watch a model render it.

    semsyn-app MODEL [--host 127.0.0.1] [--port 7860] [--device D] [--revision REV]

MODEL is anything `semsyn.create_model` takes (a name, hf-hub:ORG/NAME[@REV], local-dir:PATH); its weights
are loaded. The first line on standard output is the page's address; Ctrl+C stops the server. See docs/app.md.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from semsyn.cli.common import run, setup_logging
from semsyn.errors import SemsynError

__all__ = ["main", "build_parser", "DEFAULT_PORT"]

logger = logging.getLogger("semsyn.app")
DEFAULT_PORT = 7860  # the port model demos (Gradio, Hugging Face Spaces) use, so muscle memory works


def build_parser() -> argparse.ArgumentParser:
    """The command line of semsyn-app."""
    parser = argparse.ArgumentParser(
        prog="semsyn-app", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a name, hf-hub:ORG/NAME[@REV] or local-dir:PATH")
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)")
    parser.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    parser.add_argument("--revision", help="Hub branch, tag or commit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (one line per request)")
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    import torch

    import semsyn
    from semsyn.app import AppServer, Renderer

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise SemsynError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise SemsynError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    model = semsyn.create_model(args.model, pretrained=True, revision=args.revision, device=device)
    renderer = Renderer(model, source=args.model)
    logger.info("first render took %.0f ms", renderer.warm_up())
    try:
        server = AppServer(renderer, host=args.host, port=args.port)
    except OSError as exc:
        raise SemsynError(
            f"cannot serve on {args.host}:{args.port} ({exc.strerror or exc}); pass another --port (0 picks a free one)"
        ) from None
    # SIGTERM (a service manager, a test) stops the server like Ctrl+C does.
    signal.signal(signal.SIGTERM, _interrupt)
    print(server.url, flush=True)
    logger.info("serving %s on %s at %s (Ctrl+C stops)", args.model, device, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopped")
    finally:
        server.server_close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-app")


if __name__ == "__main__":
    sys.exit(main())
