"""gaussian_blur: a separable Gaussian blur of `kernel_size` taps, sigma drawn per sample from
`sigma`, reflect padding, with probability p (Kornia's `RandomGaussianBlur`)."""
from __future__ import annotations

from augbench.augment.backends import fused_torch
from augbench.augment.ops.draw import gate, uniform
from augbench.augment.ops.spec import OpSpec, pos_int, prob, range_in


def sample(b, hw, p, gen, device, ctx):
    return {"sigma": uniform(b, *p["sigma"], gen, device), "applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    return fused_torch.gaussian_blur(x, fused_torch.blur_weights(d["sigma"], d["applied"], p["kernel_size"]))


def kornia(p, **settings):
    import kornia.augmentation as K

    k = p["kernel_size"]
    return K.RandomGaussianBlur((k, k), tuple(p["sigma"]), p=p["p"])


def albumentations(p):
    import albumentations as A

    k = p["kernel_size"]
    return A.GaussianBlur(blur_limit=(k, k), sigma_limit=tuple(p["sigma"]), p=p["p"])


def from_kornia(data, module):
    return {"sigma": data["sigma"], "applied": data["batch_prob"] > 0.5}


SPEC = OpSpec(
    "gaussian_blur", {
        "kernel_size": (3, pos_int(3, odd=True)),
        "sigma": ((0.1, 2.0), range_in(0.0, 1e3, open_lo=True)),
        "p": (0.5, prob),
    }, "Gaussian blur with a per-sample sigma drawn from `sigma`, with probability p",
    sample=sample, apply=apply, group="blur", kornia=kornia, albumentations=albumentations, from_kornia=from_kornia, module=__name__)
