"""semsyn-push: publish a semsyn model folder to a Hub repo.

    semsyn-push DIR ORG/NAME [--revision BRANCH] [--private] [--token TOKEN] [--message TEXT]

The folder's model card (README.md) is merged with the one already in the repo, not overwritten.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

from semsyn.cli.common import run, setup_logging

logger = logging.getLogger("semsyn.push")


def _main(argv: Sequence[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="semsyn-push", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", help="a model folder (spec.yaml, model.safetensors)")
    parser.add_argument("repo_id", help="ORG/NAME of the Hub repo (created if needed)")
    parser.add_argument("--revision", help="branch to commit to (created from main if needed)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--token")
    parser.add_argument("--message", help="commit message")
    args = parser.parse_args(argv)
    setup_logging()
    import shutil

    from semsyn.hub import _existing_card, push_folder, write_model_card
    from semsyn.spec import load_spec

    folder = Path(args.folder)
    spec = load_spec(folder / "spec.yaml") if (folder / "spec.yaml").is_file() else None
    with tempfile.TemporaryDirectory(prefix="semsyn-push-") as tmp:
        staging = Path(tmp) / "model"
        shutil.copytree(folder, staging)
        if spec is not None:
            # The repo's card (if any) replaces the folder's, then the generated part is written anew:
            # what others wrote on the Hub outside semsyn's markers survives the push.
            _existing_card(args.repo_id, args.revision, args.token, staging)
            write_model_card(staging, spec, card={"repo_id": args.repo_id})
        commit = push_folder(
            staging,
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
