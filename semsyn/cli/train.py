"""`semsyn-train SPEC [--set k=v ...] [--resume RUN_DIR] [--out RUN_DIR] [--nproc N]`: train a spec.

SPEC is a spec file or a hub_configs name (`semsyn-train spade-synthetic`). `--nproc N` re-launches the
command in N processes through `torch.distributed.run`; `torchrun --nproc_per_node N -m semsyn.cli.train
SPEC ...` works the same. See docs/training.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from semsyn.cli.common import add_set_argument, run, setup_logging
from semsyn.errors import SpecError, TrainingError
from semsyn.resolve import load_spec
from semsyn.spec import Spec

__all__ = ["main", "build_parser", "resolve_run"]

logger = logging.getLogger("semsyn.cli.train")
# Sections a resumed run must share with the SPEC given beside --resume (train settings change with --set).
RUN_DEFINING = ("labels", "image_size", "generator", "encoder", "discriminator", "losses", "data")


def build_parser() -> argparse.ArgumentParser:
    """The command line of semsyn-train."""
    parser = argparse.ArgumentParser(
        prog="semsyn-train",
        description="Train a semantic image synthesis model "
        "from a spec (its generator, discriminator, losses, data and train sections).",
    )
    parser.add_argument("spec", nargs="?", help="spec file or hub_configs name (optional with --resume)")
    add_set_argument(parser)
    parser.add_argument(
        "--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last complete checkpoint"
    )
    parser.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/<spec name>-<date>-<time>)")
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N processes on this machine (re-launches through torch.distributed.run)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def resolve_run(args: argparse.Namespace) -> tuple[Spec, Path, bool]:
    """(spec, run folder, resume?) from the parsed command line."""
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "spec.yaml").is_file():
            raise TrainingError(f"--resume {run_dir}: not a run folder (it has no spec.yaml); check the path")
        if args.out and Path(args.out).resolve() != run_dir.resolve():
            raise TrainingError("--resume continues a run in its own folder; drop --out")
        spec = load_spec(run_dir / "spec.yaml")
        if args.spec:
            given = load_spec(args.spec).resolved()
            differ = [s for s in RUN_DEFINING if given.data.get(s) != spec.data.get(s)]
            if differ:
                raise TrainingError(
                    f"{args.spec} differs from the spec of the run in {run_dir} in {', '.join(differ)}; a run "
                    "resumes with its own spec: drop SPEC, or change train settings with --set"
                )
        return (spec.with_overrides(args.overrides) if args.overrides else spec), run_dir, True
    if not args.spec:
        raise SpecError("semsyn-train needs a SPEC (a spec file or a name from semsyn.list_models()), or --resume")
    spec = load_spec(args.spec, overrides=args.overrides or None)
    if args.out:
        return spec, Path(args.out), False
    stem = spec.name or Path(str(args.spec)).stem
    return spec, Path("runs") / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}", False


def _child_argv(args: argparse.Namespace, run_dir: Path, resume: bool) -> list[str]:
    argv = [args.spec] if args.spec else []
    for item in args.overrides:
        argv += ["--set", item]
    argv += ["--resume", str(run_dir)] if resume else ["--out", str(run_dir)]
    return argv + (["--verbose"] if args.verbose else [])


def _train(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    under_torchrun = "LOCAL_RANK" in os.environ
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger("semsyn").setLevel(logging.WARNING)  # only rank 0 logs at info level
    if args.nproc < 1:
        raise SpecError(f"--nproc {args.nproc}: give a number of processes >= 1")
    spec, run_dir, resume = resolve_run(args)
    if args.nproc > 1 and not under_torchrun:
        code = _launch(args, run_dir.resolve(), resume)
        if code:
            raise TrainingError(
                f"the {args.nproc}-process run in {run_dir} failed (exit code {code}); "
                "the processes' messages are above"
            )
        return 0
    from semsyn.training import distributed
    from semsyn.training.trainer import Trainer

    ctx = distributed.init_distributed(spec.train_config().device)
    try:
        if not args.out and not resume:
            run_dir = Path(distributed.broadcast_object(str(run_dir), ctx))  # one folder, whichever clock
        Trainer(spec, run_dir, resume=resume).fit()
    finally:
        distributed.shutdown_distributed()
    if ctx.is_main:
        print(run_dir)
    return 0


def _launch(args: argparse.Namespace, run_dir: Path, resume: bool) -> int:
    from semsyn.training.distributed import launch

    return launch(args.nproc, _child_argv(args, run_dir, resume))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (2 with one line on stderr for a user error)."""
    return run(_train, argv, prog="semsyn-train")


if __name__ == "__main__":
    sys.exit(main())
