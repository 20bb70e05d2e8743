"""grayscale: 3-channel grayscale (0.299 R + 0.587 G + 0.114 B) with probability p (Kornia's
`RandomGrayscale`). Fused: one pass with normalize when it follows (`fused_torch.gray_normalize`)."""
from __future__ import annotations

from augbench.augment.backends import fused_torch
from augbench.augment.ops.draw import gate
from augbench.augment.ops.spec import OpSpec, prob


def sample(b, hw, p, gen, device, ctx):
    return {"applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    return fused_torch.gray_normalize(x, d["applied"], None)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomGrayscale(p=p["p"])


def albumentations(p):
    import albumentations as A

    return A.ToGray(num_output_channels=3, p=p["p"])


SPEC = OpSpec("grayscale", {"p": (0.2, prob)}, "convert to 3-channel grayscale with probability p",
              sample=sample, apply=apply, group="gray", kornia=kornia, albumentations=albumentations,
              from_kornia=lambda data, module: {"applied": data["batch_prob"] > 0.5}, module=__name__)
