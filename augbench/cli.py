"""`augbench` console entry point. Each sub-command lives in the module that does the work,
which exposes ``add_arguments(parser)`` and ``main(args) -> int``; this file only routes, and
turns every expected failure into one message and a non-zero exit (``--debug``: the traceback)."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import traceback

from augbench.errors import UserError, common_options

# name -> (module, purpose: one line in `augbench --help`, at most ~55 characters). Modules are imported
# only when their command runs (torch is slow to import), except to build their own arguments.
COMMANDS = {
    "policies": ("augbench.augment.listing", "list the named augmentation policies and their ops"),
    "ops": ("augbench.augment.ops.listing", "list the augmentation ops and their parameters"),
    "preview": ("augbench.augment.preview", "write a PNG of real images and their augmented views"),
    "bench-aug": ("augbench.bench.augment", "time the augmentation backends (views/s)"),
    "bench-train": ("augbench.bench.train", "time each method's epoch and its evaluation"),
    "recipes": ("augbench.recipes", "list the training recipes and where each value comes from"),
    "data": ("augbench.data.download", "download a dataset (cifar10, cifar100, stl10)"),
    "train": ("augbench.run", "pretrain + evaluate one config and write its result row"),
    "sweep": ("augbench.sweeps.cli", "run, inspect or cancel a sweep (SLURM or local)"),
    "collect": ("augbench.store.collect", "gather result rows into results/runs.csv"),
    "rows": ("augbench.sweeps.verify", "import result rows made elsewhere (a folder or .tar)"),
    "export": ("augbench.export", "write a run's backbone (weights + card) to take away"),
    "report": ("analysis.report", "figures, tables and results/REPORT.md from the rows"),
}
# the longer text at the top of `augbench COMMAND --help` (default: the purpose)
DETAILS = {
    "ops": "list every augmentation op (built-in and those $AUGBENCH_OPS registers) with its parameters and "
           "defaults, the fused backend's fast paths that cover it, and the RandAugment / TrivialAugment candidates",
    "bench-aug": "time the augmentation backends (views/s: fused vs kornia vs albumentations) and write "
                 "results/bench/*.json",
    "bench-train": "time each method's epoch (with/without augmentation, eager/compiled) and the evaluation; "
                   "writes results/bench/",
    "recipes": "list the training recipes (optimizer, lr, heads, ...) and where each value comes from",
    "data": "download a dataset's official archive, check its published md5 and unpack it under "
            "$AUGBENCH_DATA (default ./data) where training finds it; offline, --archive unpacks a copy "
            "fetched elsewhere",
    "sweep": "run, inspect or cancel a sweep (SLURM job arrays through submitit, or local worker processes)",
    "rows": "import result rows produced elsewhere (a folder or a .tar) into results/runs",
}
DESCRIPTION = ("augbench: which augmentation matters for which self-supervised method. Train one run, "
               "run ablation sweeps (SLURM or local) and turn the result rows into figures and tables.")
EPILOG = ("`augbench COMMAND --help` shows a command's options. Datasets resolve under $AUGBENCH_DATA "
          "(default ./data); on a machine without them, `augbench data get cifar10` fetches CIFAR-10.")
MAX_DISCARDS = 100  # --discard-corrupt: at most this many files set aside in one command


def _version() -> str:
    """The installed distribution's version; the source tree's when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("augbench")
    except PackageNotFoundError:
        from augbench import __version__

        return __version__


class _TopFormatter(argparse.HelpFormatter):
    """The command list with each purpose on its command's line (argparse undercounts the indent of
    sub-commands, which pushed `bench-train`'s onto the next line)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=17)
        self._action_max_length = 15


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augbench", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=_TopFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    common = common_options()
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=DETAILS.get(name, help_), parents=[common])
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:  # a command whose module is not built yet
            p.set_defaults(_missing=str(e))
    return parser


def main(argv: list[str] | None = None) -> int:
    worker = bool(os.environ.get("AUGBENCH_PARALLEL")) and hasattr(signal, "SIGUSR1")
    if worker:
        # a local sweep worker: a stop request (SIGUSR1) before `augbench train` has set up its
        # handler is ignored, not fatal; the parent repeats it (see augbench.sweeps.local)
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        return _main(argv)
    finally:
        if worker:  # ignored again while exiting: Python's shutdown would reset a handler to "terminate"
            signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "_missing", None):
        print(f"augbench {args.command}: not available ({args._missing})", file=sys.stderr)
        return 2
    from augbench.store.rows import CorruptFile, discard

    def fail(msg: str) -> None:
        if args.debug:
            traceback.print_exc()
        print(f"augbench {args.command}: error: {msg}", file=sys.stderr)

    for _ in range(MAX_DISCARDS):
        try:
            return int(importlib.import_module(args._module).main(args) or 0)
        except CorruptFile as e:
            if not args.discard_corrupt:
                fail(str(e))
                return 2
            print(f"augbench: moved corrupt {e.path} to {discard(e.path)}", file=sys.stderr)
        except UserError as e:
            fail(str(e))
            return 2
        except OSError as e:  # a folder or file the user points at: permissions, disk full, missing
            fail(f"{e}; check that path (--debug shows where it happened)")
            return 1
        except KeyboardInterrupt:
            print(f"\naugbench {args.command}: interrupted. Checkpoints are kept: run the same command again "
                  f"to resume where it stopped (`augbench sweep status` lists what is left).", file=sys.stderr)
            return 130
    fail(f"more than {MAX_DISCARDS} corrupt files; look at the results folder")
    return 2


if __name__ == "__main__":
    sys.exit(main())
