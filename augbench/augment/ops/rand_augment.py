"""rand_augment: RandAugment / TrivialAugment as one op: per sample, `n` distinct candidates of
`ops` drawn uniformly (without replacement) and applied in the order drawn, each at a magnitude
m in [0, 30] -- fixed (`magnitude: 9`, RandAugment) or drawn per sample and op from a range
(`magnitude: [0, 30]`, TrivialAugment) -- with probability p.

The candidates and what their magnitude means are Kornia's (`kornia.augmentation.auto`): each op
module declares its own (`OpSpec.auto`): rotate, shear_x / shear_y, translate_x / translate_y
(symmetric: a random sign per sample), posterize (reversed, whole bits), solarize, equalize, and
brightness / contrast / color with torchvision's formulas. `ops` lists them by name (their
default range) or as [name, low, high] (a symmetric one needs low = -high), as Kornia's
`policy=[[(name, low, high)], ...]`. A magnitude m maps to low + (high - low) m / 30.

One deliberate difference: Kornia picks the candidates once per call, for the whole batch; here
every sample draws its own (as torchvision and timm do per image), so a batch of SSL views is not
made of one op. The per-op frequency (n / len(ops)) and the magnitude distributions are Kornia's.
Build policies with `augbench.augment.policy.rand_augment` / `trivial_augment` (also sweep
generators: `{rand_augment: full, n: [1, 2], m: [5, 9]}`, `{trivial_augment: full}`).
Reference path only (no fused kernel covers it); backend="kornia" cannot run it.
"""
from __future__ import annotations

from typing import Any

import torch

from augbench.augment.ops import registry
from augbench.augment.ops.draw import gate, uniform, whole_draw, whole_range
from augbench.augment.ops.spec import OpSpec, PolicyError, number, pos_int, prob, range_in

MAX_MAGNITUDE = 30.0
# Kornia's default candidates that augbench implements (without auto_contrast, invert, solarize_add,
# sharpness), with Kornia's ranges
RAND_AUGMENT_OPS = ("equalize", "rotate", "posterize", "solarize", "color", "contrast", "brightness",
                    "shear_x", "shear_y", "translate_x", "translate_y")
TRIVIAL_AUGMENT_OPS = ("equalize", ("rotate", -30.0, 30.0), ("posterize", 0.0, 4.0), ("solarize", 0.0, 1.0),
                       ("contrast", 0.1, 1.9), ("brightness", 0.1, 1.9), ("shear_x", -0.3, 0.3),
                       ("shear_y", -0.3, 0.3), ("translate_x", -0.5, 0.5), ("translate_y", -0.5, 0.5))


def candidates(path: str, v: Any) -> tuple[tuple[str, float, float], ...]:
    space = registry.auto_space()
    if not isinstance(v, (list, tuple)) or not v:
        raise PolicyError(f"{path}: expected a non-empty list of candidate names or [name, low, high]")
    out = []
    for i, item in enumerate(v):
        at = f"{path}[{i}]"
        name = item if isinstance(item, str) else item[0] if isinstance(item, (list, tuple)) and item else None
        if name not in space:
            raise PolicyError(f"{at}: unknown candidate {name!r}; known: {sorted(space)}")
        a = space[name]
        if isinstance(item, str):
            lo, hi = a.low, a.high
        elif len(item) == 3:
            lo, hi = range_in(-1e9, 1e9)(at, item[1:])
        else:
            raise PolicyError(f"{at}: expected a name or [name, low, high], got {item!r}")
        if a.signed and lo != -hi:
            raise PolicyError(f"{at}: {name} is symmetric (a random sign): its range must be [-x, x], got [{lo}, {hi}]")
        if any(o[0] == name for o in out):
            raise PolicyError(f"{at}: candidate {name!r} appears twice")
        out.append((name, lo, hi))
    return tuple(out)


def magnitude(path: str, v: Any) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)):
        v = (number(path, v),) * 2
    return range_in(0.0, MAX_MAGNITUDE)(path, v)


def validate(p, where):
    if p["n"] > len(p["ops"]):
        raise PolicyError(f"{where}.n: {p['n']} ops per sample, but only {len(p['ops'])} candidates "
                          "(they are drawn without replacement)")


def sample(b, hw, p, gen, device, ctx):
    n = p["n"]
    choice = torch.rand(b, len(p["ops"]), generator=gen, device=device).argsort(1)[:, :n]
    mag = uniform((b, n), *p["magnitude"], gen, device)
    sign = torch.rand(b, n, generator=gen, device=device) < 0.5  # True: the negative side (symmetric ops)
    return {"choice": choice, "magnitude": mag, "sign": sign, "applied": gate(b, p["p"], gen, device)}


def value(a, lo: float, hi: float, mag: torch.Tensor, negative: torch.Tensor, sampled: bool = False) -> torch.Tensor:
    """A candidate's parameter value for magnitudes `mag` in [0, 30] (Kornia's mapping). A drawn
    magnitude (`sampled`) of a `whole` candidate on a whole range falls in equal buckets, one per
    whole number, as Kornia's generator draws it (posterize's bits)."""
    frac = mag / MAX_MAGNITUDE
    if a.whole and sampled and whole_range(lo, hi):
        w = whole_draw(frac, lo, hi)
        return hi + lo - w if a.reverse else w
    if a.signed:
        return torch.where(negative, -(hi * frac), hi * frac)
    return hi - (hi - lo) * frac if a.reverse else lo + (hi - lo) * frac


def apply(x, p, d, ctx):
    space = registry.auto_space()
    sampled = p["magnitude"][0] != p["magnitude"][1]
    hw = tuple(x.shape[-2:])
    y = x
    for s in range(p["n"]):  # stage s applies each sample's s-th pick: every candidate, gated
        for k, (name, lo, hi) in enumerate(p["ops"]):
            a = space[name]
            on = (d["choice"][:, s] == k) & d["applied"]
            v = value(a, lo, hi, d["magnitude"][:, s], d["sign"][:, s], sampled)
            dd = a.params(v, hw, sampled) if a.params else {}
            dd["applied"] = on
            cfg = registry.normalise_params(a.op, dict(a.config), f"rand_augment.{name}")
            y = registry.OPS[a.op].apply(y, cfg, dd, ctx)
    return y


SPEC = OpSpec(
    "rand_augment", {
        "ops": (RAND_AUGMENT_OPS, candidates),
        "n": (2, pos_int(1)),
        "magnitude": ((9.0, 9.0), magnitude),
        "p": (1.0, prob),
    }, "RandAugment / TrivialAugment: per sample, `n` of `ops` in a random order at `magnitude` in [0, 30] "
       "(a value, or a range drawn per sample)",
    sample=sample, apply=apply, group="auto", validate=validate, module=__name__)
