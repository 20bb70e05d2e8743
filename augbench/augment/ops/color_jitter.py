"""color_jitter: torchvision's `ColorJitter` (Kornia's `ColorJitter`, not `ColorJiggle`):
brightness, contrast, saturation and hue factors drawn per sample from their ranges, the four
steps in a random order, with probability p. Hue is in turns of the colour wheel.

Order: `jitter_order="batch"` (the engine's default) draws ONE order per call and view, like
Kornia 0.9 (from a CPU generator: no device sync); "sample" one per image like torchvision; a
tuple such as (0, 1, 2, 3) fixes it (indices into brightness, contrast, saturation, hue).
Formulas: `fused_torch` (the torch path) and the numba / Triton kernels.
"""
from __future__ import annotations

from typing import Any

import torch

from augbench.augment.backends import fused_torch
from augbench.augment.ops.draw import gate, uniform
from augbench.augment.ops.spec import AutoOp, OpSpec, jitter_factor, prob

JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")


def jitter_orders(b: int, jitter_order: Any, gen, device, order_gen) -> torch.Tensor:
    if jitter_order == "sample":
        return torch.rand(b, 4, generator=gen, device=device).argsort(1)
    if jitter_order == "batch":
        return torch.randperm(4, generator=order_gen)  # CPU: iterating it costs no sync
    return torch.tensor(list(jitter_order), dtype=torch.long)


def sample(b, hw, p, gen, device, ctx):
    d = {k: uniform(b, *p[k], gen, device) for k in JITTER_KEYS}
    d["applied"] = gate(b, p["p"], gen, device)
    d["order"] = jitter_orders(b, ctx.jitter_order, gen, device, ctx.order_gen)
    return d


def apply(x, p, d, ctx):
    return fused_torch.color_jitter(x.clone(), [d[k] for k in JITTER_KEYS], d["applied"], d["order"])


def kornia(p, jitter_order: Any = "batch", **settings):
    import kornia.augmentation as K

    order = tuple(jitter_order) if isinstance(jitter_order, (tuple, list)) else None
    return K.ColorJitter(p["brightness"], p["contrast"], p["saturation"], p["hue"], p=p["p"], order=order)


def albumentations(p):
    import albumentations as A

    return A.ColorJitter(brightness=p["brightness"], contrast=p["contrast"], saturation=p["saturation"],
                         hue=p["hue"], p=p["p"])


def from_kornia(data, module):
    d = {k: data[f"{k}_factor"] for k in JITTER_KEYS}
    order = module._fixed_order  # a fixed order is not in the params
    d["order"] = torch.tensor(order) if order is not None else data["order"]
    d["applied"] = data["batch_prob"] > 0.5
    return d


def _one_step(i: int):
    """RandAugment's brightness / contrast / color: one step of the jitter with factor v, alone."""
    def params(v, hw, sampled):
        ones = torch.ones_like(v)
        d = dict(zip(JITTER_KEYS, (ones, ones, ones, torch.zeros_like(v))))
        d[JITTER_KEYS[i]] = v
        d["order"] = torch.tensor([i])  # a CPU tensor: only this step runs
        return d
    return params


# RandAugment's colour candidates with torchvision's (PIL ImageEnhance) formulas, those of this op and of
# Kornia's ColorJitter; Kornia's own auto ops use ColorJiggle's (additive brightness, no mean in contrast)
AUTO = (
    AutoOp("brightness", "color_jitter", 0.1, 1.9, params=_one_step(0), doc="brightness factor (PIL / torchvision)"),
    AutoOp("contrast", "color_jitter", 0.1, 1.9, params=_one_step(1), doc="contrast factor (PIL / torchvision)"),
    AutoOp("color", "color_jitter", 0.1, 1.9, params=_one_step(2), doc="saturation factor (PIL / torchvision)"),
)

SPEC = OpSpec(
    "color_jitter", {
        "brightness": (0.4, jitter_factor()),
        "contrast": (0.4, jitter_factor()),
        "saturation": (0.4, jitter_factor()),
        "hue": (0.1, jitter_factor(max_delta=0.5, centre=0.0)),
        "p": (0.8, prob),
    }, "torchvision ColorJitter (brightness, contrast, saturation, hue in a random order) with probability p",
    sample=sample, apply=apply, group="jitter", auto=AUTO, kornia=kornia, albumentations=albumentations, from_kornia=from_kornia, module=__name__)
