"""A user's own augmentation op, defined outside augbench and registered by name: from then on it
is usable in any policy (a dict or a YAML file), on `Engine(..., backend="fused")` and in sweeps.

    python examples/custom_op.py                          # registers it and augments a batch
    AUGBENCH_OPS=examples/custom_op.py augbench ops invert  # any process: the CLI, sweep workers

An op is Kornia style: `sample` draws every random number a batch needs from the engine's
generator (per sample, no host sync), `apply` is the reference implementation on the float batch
(B, 3, H, W) with those draws. No fused kernel covers a user op, so a policy that has one runs
every op's reference (`engine.impl == "reference"`): still batched, per sample, no host sync.
"""
from __future__ import annotations

import torch

from augbench.augment import Engine, Policy, register_op
from augbench.augment.ops import prob, range_in


def sample(b, hw, p, gen, device, ctx):
    """Per sample: how far to invert (a blend factor drawn from `strength`) and the p-gate."""
    lo, hi = p["strength"]
    return {"strength": torch.rand(b, generator=gen, device=device) * (hi - lo) + lo,
            "applied": torch.rand(b, generator=gen, device=device) < p["p"]}


def apply(x, p, d, ctx):
    """x + s (1 - 2x): the image itself at s = 0, its negative at s = 1; unchanged where the gate is off."""
    s = torch.where(d["applied"], d["strength"], torch.zeros_like(d["strength"])).to(x.dtype).view(-1, 1, 1, 1)
    return x + s * (1 - 2 * x)


INVERT = register_op(
    name="invert",
    params={"strength": ((1.0, 1.0), range_in(0.0, 1.0)), "p": (0.2, prob)},
    doc="blend each image towards its negative by a factor drawn from `strength`, with probability p",
    sample=sample, apply=apply, group="invert", module=__name__,
    replace=True,  # this file may be imported again (a test, $AUGBENCH_OPS): redefine, do not fail
)

# a policy that names it, as a dict (a YAML file says the same)
POLICY = {"name": "simclr+invert", "ops": [
    {"op": "random_resized_crop", "size": 32}, {"op": "horizontal_flip"},
    {"op": "color_jitter", "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
    {"op": "invert", "strength": [0.5, 1.0], "p": 0.5}, {"op": "normalize"}]}


def main() -> None:
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    engine = Engine(Policy.from_dict(POLICY), backend="fused", seed=0)
    views, params = engine(x, views=2, return_params=True)
    same = engine(x, params=params)  # replay: the same pixels
    print(f"policy {engine.policy.name!r}: impl={engine.impl}, views {[tuple(v.shape) for v in views]}, "
          f"inverted {int(params[0]['invert']['applied'].sum())}/8 in view 1, "
          f"replay equal: {all(torch.equal(a, b) for a, b in zip(views, same))}")


if __name__ == "__main__":
    main()
