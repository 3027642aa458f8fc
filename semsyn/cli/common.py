"""What every semsyn CLI shares: one-line errors with exit code 2, `--set` overrides, logging set-up."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from semsyn.errors import SemsynError

__all__ = ["run", "add_set_argument", "setup_logging", "EXIT_USER_ERROR"]

EXIT_USER_ERROR = 2


def add_set_argument(parser: argparse.ArgumentParser) -> None:
    """`--set section.field=value`, repeatable: spec overrides parsed as YAML scalars."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, e.g. --set train.steps=100 (repeatable)",
    )


def setup_logging(verbose: bool = False) -> None:
    """Info-level logging to stderr for CLIs (rank 0 decides elsewhere whether to log at info)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for chatty in ("httpx", "httpx2", "httpcore", "huggingface_hub"):  # one line per HTTP request otherwise
        logging.getLogger(chatty).setLevel(logging.DEBUG if verbose else logging.WARNING)


def run(
    main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None, prog: str = "semsyn"
) -> int:
    """Call a CLI body; a `SemsynError` becomes one line on stderr and exit code 2, never a traceback."""
    try:
        code = main(argv)
    except SemsynError as exc:
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
