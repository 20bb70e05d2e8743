"""`augbench` console entry point. Each sub-command lives in the module that does the work,
which exposes ``add_arguments(parser)`` and ``main(args) -> int``; this file only routes."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from augbench.errors import UserError

# name -> (module, help). Modules are imported only when their command runs (torch is slow to import),
# except to build their own arguments.
COMMANDS = {
    "policies": ("augbench.augment.listing", "list the named augmentation policies and their ops"),
    "preview": ("augbench.augment.preview", "write a PNG grid of real images and their augmented views"),
    "bench-aug": ("augbench.bench", "time the augmentation backends (views/s) and write results/bench/*.json"),
    "train": ("augbench.run", "pretrain + evaluate one config and write its result row"),
    "sweep": ("augbench.sweep", "run, inspect or cancel a sweep (SLURM arrays through submitit, or local)"),
    "collect": ("augbench.results_cli", "gather result rows into results/runs.csv"),
    "report": ("analysis.report", "figures, tables and results/REPORT.md from the result rows"),
}


def _version() -> str:
    """The installed distribution's version; the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("augbench")
    except PackageNotFoundError:
        from augbench import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:  # a command whose module is not built yet
            p.set_defaults(_missing=str(e))
    return parser


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("AUGBENCH_PARALLEL") and hasattr(signal, "SIGUSR1"):
        # a `sweep run --parallel` worker: a stop request (SIGUSR1) before `augbench train` has set up
        # its handler is ignored, not fatal; the parent repeats it (see augbench.parallel)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"augbench {args.command}: not available ({args._missing})", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).main(args) or 0)
    except UserError as e:
        print(f"augbench {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
