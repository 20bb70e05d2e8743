"""`augbench policies`: each named policy with its ops and parameters (or one policy in full)."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one policy (a name or a .yaml path) as YAML")
    p.add_argument("--ops", action="store_true", help="list the ops a policy may use, with defaults")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def describe(policy) -> list[str]:
    lines = []
    for op, params in policy.ops:
        lines.append(f"    {op}(" + ", ".join(f"{k}={_fmt(v)}" for k, v in params.items()) + ")")
    for i, ov in enumerate(policy.views):
        body = "; ".join(f"{op}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in ps.items()) for op, ps in ov.items())
        lines.append(f"    view {i}: {body}")
    return lines


def main(args: argparse.Namespace) -> int:
    from augbench.augment.ops import OPS
    from augbench.augment.policy import NAMED, Policy

    if args.ops:
        for name, spec in OPS.items():
            print(f"{name}: {spec.doc}")
            print("    " + ", ".join(f"{k}={_fmt(d)}" for k, (d, _) in spec.params.items()))
        return 0
    if args.name:
        print(Policy.named(args.name).to_yaml(), end="")
        return 0
    for name in NAMED:
        print(f"{name}:")
        print("\n".join(describe(Policy.named(name))))
    return 0
