"""semsyn-push: publish a semsyn model folder to a Hub repo.

    semsyn-push DIR ORG/NAME [--revision BRANCH] [--private] [--token TOKEN] [--message TEXT]

DIR is a model folder (save_pretrained, semsyn-convert) or a run folder (its final/). The model card is
rendered anew from the folder's provenance record and merged with the one already in the repo.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from semsyn.cli.common import run, setup_logging

logger = logging.getLogger("semsyn.push")


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="semsyn-push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", help="a model folder (spec.yaml, model.safetensors) or a run folder")
    parser.add_argument("repo_id", help="ORG/NAME of the Hub repo (created if needed)")
    parser.add_argument("--revision", help="branch to commit to (created from main if needed)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token")
    parser.add_argument("--message", help="commit message")
    args = parser.parse_args(argv)
    setup_logging()
    from pathlib import Path

    from semsyn.resolve import push_folder

    folder = Path(args.folder)
    if (folder / "final" / "spec.yaml").is_file():
        folder = folder / "final"
    commit = push_folder(
        folder,
        args.repo_id,
        revision=args.revision,
        private=args.private,
        token=args.token,
        commit_message=args.message,
    )
    print(commit)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-push")


if __name__ == "__main__":
    raise SystemExit(main())
