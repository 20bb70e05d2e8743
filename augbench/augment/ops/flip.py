"""horizontal_flip: mirror left-right with probability p (Kornia's `RandomHorizontalFlip`), per
sample. Fused: a sign in the one resampling (output pixel j reads the mirrored source column)."""
from __future__ import annotations

from augbench.augment.ops.draw import gate, where_gate
from augbench.augment.ops.spec import RESAMPLE, OpSpec, prob


def sample(b, hw, p, gen, device, ctx):
    return {"applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    return where_gate(d["applied"], x.flip(-1), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomHorizontalFlip(p=p["p"])


def albumentations(p):
    import albumentations as A

    return A.HorizontalFlip(p=p["p"])


SPEC = OpSpec("horizontal_flip", {"p": (0.5, prob)}, "mirror left-right with probability p",
              sample=sample, apply=apply, group="flip", stage=RESAMPLE, kornia=kornia, albumentations=albumentations,
              from_kornia=lambda data, module: {"applied": data["batch_prob"] > 0.5}, module=__name__)
