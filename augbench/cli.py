"""`augbench` console entry point. Each sub-command lives in the module that does the work,
which exposes ``add_arguments(parser)`` and ``main(args) -> int``; this file only routes, and
turns every expected failure into one message and a non-zero exit (``--debug``: the traceback)."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import signal
import sys
import traceback

from augbench.errors import UserError

# name -> (module, purpose: one line in `augbench --help`, at most ~55 characters). Modules are imported
# only when their command runs (torch is slow to import), except to build their own arguments.
COMMANDS = {
    "policies": ("augbench.augment.listing", "list the named augmentation policies and their ops"),
    "preview": ("augbench.augment.preview", "write a PNG of real images and their augmented views"),
    "bench-aug": ("augbench.bench", "time the augmentation backends (views/s)"),
    "bench-train": ("augbench.bench_train", "time each method's epoch and its evaluation"),
    "recipes": ("augbench.recipes", "list the training recipes and where each value comes from"),
    "data": ("augbench.data.download", "download a dataset (cifar10, cifar100, stl10)"),
    "train": ("augbench.run", "pretrain + evaluate one config and write its result row"),
    "sweep": ("augbench.sweeps.cli", "run, inspect or cancel a sweep (SLURM or local)"),
    "collect": ("augbench.results_cli", "gather result rows into results/runs.csv"),
    "rows": ("augbench.rows_import", "import result rows made elsewhere (a folder or .tar)"),
    "export": ("augbench.export", "write a run's backbone (weights + card) to take away"),
    "report": ("analysis.report", "figures, tables and results/REPORT.md from the rows"),
}
# the longer text at the top of `augbench COMMAND --help` (default: the purpose)
DETAILS = {
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


def common_options(leaf: bool = False) -> argparse.ArgumentParser:
    """--debug and --discard-corrupt for every command; `leaf`: for a command's ACTION parsers too
    (no default there, so a flag given before the ACTION is kept)."""
    p = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if leaf else False
    p.add_argument("--debug", action="store_true", default=default, help="show the traceback of an error")
    p.add_argument("--discard-corrupt", action="store_true", default=default,
                   help="move a corrupt row, ledger or checkpoint aside into <results>/corrupt/ and go on")
    return p


# `augbench train --help`: what a RunConfig field is when its comment in augbench/config.py is missing
# or does not say (the comment, where there is one, comes first)
FIELD_HELP = {
    "method": "the self-supervised method",
    "backbone": "the encoder",
    "cifar_stem": "ResNet: one 3x3 stride-1 conv in place of the 7x7 conv + max-pool (for 32 px images)",
    "dataset": "training and evaluation data, under $AUGBENCH_DATA; `augbench data get NAME` fetches "
               "cifar10, cifar100, stl10",
    "image_size": "side of the views, in pixels",
    "proj_depth": "projector depth",
    "proj_hidden": "projector hidden width",
    "proj_dim": "projector output width",
    "proj_norm": "projector norm",
    "proj_out_norm": "projector output norm",
    "pred_hidden": "predictor hidden width",
    "temperature": "softmax temperature",
    "vicreg_weights": "VICReg loss weights",
    "barlow_lambda": "Barlow Twins weight of the off-diagonal (redundancy) term",
    "epochs": "pretraining epochs",
    "batch_size": "images per step, per process",
    "optimizer": "the pretraining optimizer",
    "lr": "pretraining learning rate",
    "lr_scaling": "how the lr follows the batch size",
    "weight_decay": "weight decay of the pretraining optimizer",
    "warmup_epochs": "epochs of linear lr warm-up",
    "views": "augmented views per image",
    "backend": "the augmentation engine's backend",
    "compile": "torch.compile of the training step",
    "seed": "seed of the weights, the data order and the augmentations",
    "knn_k": "kNN evaluation: neighbours",
    "knn_t": "kNN evaluation: temperature",
    "linear_epochs": "linear probe: epochs",
    "linear_lr": "linear probe: learning rate",
    "finetune_epochs": "fine-tuning: epochs",
    "finetune_lr": "fine-tuning: learning rate",
    "progress": "show progress bars",
    "device": "auto (CUDA when there is one, else the CPU), cpu or cuda[:N]",
    "num_threads": "CPU threads for torch; none = torch's own choice",
}


def config_comments() -> dict[str, str]:
    """field -> the comment on its line in the source of augbench.config.RunConfig (read with
    tokenize; empty when the source is not available)."""
    import inspect
    import io
    import textwrap
    import tokenize

    from augbench.config import RunConfig

    try:
        src = textwrap.dedent(inspect.getsource(RunConfig))
        tokens = list(tokenize.generate_tokens(io.StringIO(src).readline))
    except (OSError, TypeError, tokenize.TokenError, SyntaxError):
        return {}
    lines: dict[int, list[tokenize.TokenInfo]] = {}
    skip = (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for t in tokens:
        if t.type not in skip:
            lines.setdefault(t.start[0], []).append(t)
    body = min((ts[0].start[1] for ts in lines.values() if ts[0].start[1] > 0), default=4)
    comments = {}
    for n in sorted(lines):
        ts = lines[n]
        if ts[0].start[0] != n or ts[0].start[1] != body:
            continue  # a continuation line, or deeper inside a method
        if ts[0].type == tokenize.NAME and ts[0].string in ("def", "class") or ts[0].string == "@":
            break  # the fields come before the methods
        if ts[0].type == tokenize.NAME and len(ts) > 2 and ts[1].string == ":" and ts[-1].type == tokenize.COMMENT:
            comments[ts[0].string] = ts[-1].string.lstrip("#").strip()
    return comments


def field_help(name: str, default, comments: dict[str, str], choices: dict[str, list[str]]) -> str:
    """One RunConfig field's help: what it is, its choices, its default."""
    from augbench.config import FROM_RECIPE

    text = "; ".join(x for x in (FIELD_HELP.get(name), comments.get(name)) if x) or name.replace("_", " ")
    if name in choices:
        text += f" (one of: {', '.join(choices[name])})"
    shown = "from the recipe" if default is FROM_RECIPE else default
    text += f" [default: {shown}]" if shown is not dataclasses.MISSING else ""
    return text.replace("%", "%%")


def field_choices() -> dict[str, list[str]]:
    """The values a RunConfig field takes, where it is one of a list."""
    from augbench import config, recipes
    from augbench.data.dataset import NAMES

    out = {"method": config.METHODS, "backbone": config.BACKBONES, "optimizer": config.OPTIMIZERS,
           "backend": config.BACKENDS, "recipe": recipes.names(), "dataset": (*NAMES, "imagefolder:<path>"),
           "compile": config.COMPILE_SETTINGS, "lr_scaling": ("linear", "none"),
           "proj_norm": getattr(config, "HEAD_NORMS", None), "proj_out_norm": getattr(config, "HEAD_OUT_NORMS", None)}
    return {k: list(v) for k, v in out.items() if v}


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
    from augbench.store import CorruptFile, discard

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
