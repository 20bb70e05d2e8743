"""normalize: subtract the mean and divide by the std, per channel (Kornia's `Normalize`); the
policy's last op (or just before patch_mask). No draws."""
from __future__ import annotations

from augbench.augment.backends import fused_torch
from augbench.augment.ops.spec import CIFAR10_MEAN, CIFAR10_STD, OpSpec, triple


def apply(x, p, d, ctx):
    return fused_torch.gray_normalize(x, None, {"mean": tuple(p["mean"]), "std": tuple(p["std"])})


def kornia(p, **settings):
    import kornia.augmentation as K
    import torch

    return K.Normalize(mean=torch.tensor(p["mean"]), std=torch.tensor(p["std"]))


def albumentations(p):
    import albumentations as A

    return A.Normalize(mean=p["mean"], std=p["std"], max_pixel_value=255.0)


SPEC = OpSpec("normalize", {"mean": (CIFAR10_MEAN, triple(-1e9)), "std": (CIFAR10_STD, triple(0.0, open_lo=True))},
              "subtract mean, divide by std per channel", apply=apply, kornia=kornia, albumentations=albumentations,
              from_kornia=lambda data, module: None, module=__name__)
