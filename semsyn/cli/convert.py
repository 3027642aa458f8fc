"""semsyn-convert: official checkpoints (SPADE, CC-FPSE, ...) -> a semsyn model folder, optionally pushed.

    semsyn-convert official CHECKPOINT_DIR --out DIR [--name NAME] [--push-to-hub ORG/NAME]
    semsyn-convert official --opt opt.json --generator G.pth [--encoder E.pth] [--discriminator D.pth] --out DIR

CHECKPOINT_DIR is an official run folder: `<epoch>_net_G.pth`, `_E`, `_D` and `opt.txt` (opt.pkl is never read).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from semsyn.cli.common import run, setup_logging
from semsyn.errors import ConversionError

logger = logging.getLogger("semsyn.convert")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="semsyn-convert", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    off = sub.add_parser("official", help="convert official checkpoints of SPADE, CC-FPSE and friends")
    off.add_argument("checkpoint_dir", nargs="?", help="official run folder (latest_net_G.pth, ..., opt.txt)")
    off.add_argument("--opt", help="opt.txt or an options JSON (default: CHECKPOINT_DIR/opt.txt)")
    off.add_argument("--generator", help="generator .pth (default: CHECKPOINT_DIR/<epoch>_net_G.pth)")
    off.add_argument("--encoder", help="encoder .pth")
    off.add_argument("--discriminator", help="discriminator .pth")
    off.add_argument("--which-epoch", default="latest", help="epoch prefix of the files in CHECKPOINT_DIR")
    off.add_argument("--out", required=True, help="model folder to write")
    off.add_argument("--name", help="spec name, e.g. spade-coco (default: the folder's name)")
    off.add_argument(
        "--origin", help="where the checkpoint comes from (recorded in the weights' provenance and on the card)"
    )
    off.add_argument(
        "--license", help="the official weights' licence (default: the named spec's, for --name of a named model)"
    )
    off.add_argument("--push-to-hub", metavar="ORG/NAME", help="also publish the folder to this Hub repo")
    off.add_argument("--revision", help="Hub branch to push to")
    off.add_argument("--private", action="store_true", help="create the Hub repo private")
    off.add_argument("--token", help="Hub token (default: the client's stored token / HF_TOKEN)")
    return parser


def _files(args: argparse.Namespace) -> tuple[Path, dict[str, Path]]:
    folder = Path(args.checkpoint_dir) if args.checkpoint_dir else None
    if folder is not None and not folder.is_dir():
        raise ConversionError(f"checkpoint folder {folder} does not exist")
    files: dict[str, Path] = {}
    for part, letter in (("generator", "G"), ("encoder", "E"), ("discriminator", "D")):
        given = getattr(args, part)
        if given:
            files[part] = Path(given)
        elif folder is not None and (folder / f"{args.which_epoch}_net_{letter}.pth").is_file():
            files[part] = folder / f"{args.which_epoch}_net_{letter}.pth"
    for part, path in files.items():
        if not path.is_file():
            raise ConversionError(f"{part} checkpoint {path} does not exist")
    opt = Path(args.opt) if args.opt else None
    if opt is None and folder is not None:
        opt = next((folder / n for n in ("opt.txt", "opt.json") if (folder / n).is_file()), folder / "opt.txt")
    if opt is None:
        raise ConversionError("give CHECKPOINT_DIR or --opt with the run's options (opt.txt or JSON)")
    if not files:
        raise ConversionError(
            f"no checkpoint found: expected {args.which_epoch}_net_G.pth / _E / _D in {folder} or "
            "--generator / --encoder / --discriminator"
        )
    return opt, files


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    from semsyn.convert import convert_official

    opt, files = _files(args)
    out = convert_official(opt, files, args.out, name=args.name, origin=args.origin, license=args.license)
    logger.info("wrote %s (%s)", out, ", ".join(sorted(files)))
    if args.push_to_hub:
        from semsyn.resolve import push_folder

        commit = push_folder(
            out,
            args.push_to_hub,
            revision=args.revision,
            private=args.private,
            token=args.token,
            commit_message=f"Convert official {', '.join(sorted(files))} with semsyn-convert",
        )
        logger.info("pushed to %s at commit %s", args.push_to_hub, commit)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point."""
    return run(_main, argv, prog="semsyn-convert")


if __name__ == "__main__":
    raise SystemExit(main())
