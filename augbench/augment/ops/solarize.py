"""solarize: invert the pixels >= `threshold` with probability p (Kornia's `RandomSolarize` with
a fixed threshold and no addition)."""
from __future__ import annotations

import torch

from augbench.augment.backends import fused_torch
from augbench.augment.ops.draw import gate
from augbench.augment.ops.spec import AutoOp, OpSpec, prob, unit


def sample(b, hw, p, gen, device, ctx):
    return {"threshold": torch.full((b,), p["threshold"], device=device), "applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):  # values lie in [0, 1] before normalize: a threshold of 2 never hits
    return fused_torch.solarize(x.clone(), fused_torch.fold(d["applied"], d["threshold"], 2.0))


def kornia(p, **settings):
    import kornia.augmentation as K

    t = p["threshold"]
    return K.RandomSolarize(thresholds=(t, t), additions=(0.0, 0.0), p=p["p"])


def albumentations(p):
    import albumentations as A

    t = p["threshold"]
    return A.Solarize(threshold_range=(t, t), p=p["p"])


def from_kornia(data, module):
    return {"threshold": data["thresholds"], "applied": data["batch_prob"] > 0.5}


SPEC = OpSpec("solarize", {"threshold": (0.5, unit), "p": (0.2, prob)},
              "invert pixels above `threshold` with probability p",
              sample=sample, apply=apply, group="solarize", kornia=kornia, albumentations=albumentations, from_kornia=from_kornia, module=__name__,
              auto=(AutoOp("solarize", "solarize", 0.0, 1.0, params=lambda v, hw, sampled: {"threshold": v},
                           doc="threshold = the magnitude (Kornia: m / 30 over (0, 1))"),))
