"""`augbench ops`: every registered op (built-in, and the user ops $AUGBENCH_OPS names) with its
parameters and defaults, its group, where it is defined, which fast paths of the fused backend
cover it (the others run it on the reference path) and whether backend="kornia" and
backend="albumentations" can run it;
then the RandAugment / TrivialAugment candidates."""
from __future__ import annotations

import argparse

from augbench.augment.listing import _fmt  # one number format for `augbench policies` and `augbench ops`

PATHS = ("torch", "numba", "triton")  # the fused backend's plan paths, in the order they are listed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one op only")


def fast_paths() -> dict[str, frozenset[str] | None]:
    """path -> the ops it covers, or None where its library does not load here."""
    from augbench.augment.backends import fused

    avail = {"torch": True, "numba": fused.numba_available(), "triton": fused.triton_available()}
    return {p: fused.covers(p) if avail[p] else None for p in PATHS}


def describe(spec, paths: dict[str, frozenset[str] | None]) -> list[str]:
    covered = [p for p, c in paths.items() if c is not None and spec.name in c]
    missing = [p for p, c in paths.items() if c is None]
    fast = ", ".join(covered) if covered else "none (runs on the reference path)"
    if missing:
        fast += f"; {', '.join(missing)} not installed here"
    kornia = spec.kornia is not None or spec.name == "patch_mask"  # the mask runs after Kornia's ops
    albu = spec.albumentations is not None or spec.name == "patch_mask"  # ... and after albumentations'
    lines = [f"{spec.name}: {spec.doc}",
             "    params: " + (", ".join(f"{k}={_fmt(d)}" for k, (d, _) in spec.params.items()) or "(none)"),
             f"    group: {spec.group or '-'}    fast paths: {fast}    kornia: {'yes' if kornia else 'no'}"
             f"    albumentations: {'yes' if albu else 'no'}"
             f"    defined in: {spec.module or '?'}"]
    return lines


def main(args: argparse.Namespace) -> int:
    from augbench.augment.ops import OPS, auto_space, get_op, load_plugins

    load_plugins()
    paths = fast_paths()
    if args.name:
        print("\n".join(describe(get_op(args.name, "augbench ops"), paths)))
        return 0
    for spec in OPS.values():
        print("\n".join(describe(spec, paths)))
    space = auto_space()
    print("\nRandAugment / TrivialAugment candidates (rand_augment's `ops`; magnitude m in [0, 30] -> "
          "low + (high - low) m / 30):")
    for a in space.values():
        kind = "symmetric, random sign" if a.signed else "reversed" if a.reverse else "no magnitude" if a.params is None else ""
        print(f"    {a.name}: op {a.op}, range [{_fmt(a.low)}, {_fmt(a.high)}]" + (f" ({kind})" if kind else "")
              + (f" -- {a.doc}" if a.doc else ""))
    return 0
