"""resize: a deterministic resize to `size` (bilinear, align_corners=True), used in place of the
crop (the `no_crop` ablation keeps the output size). Fused: part of the one resampling."""
from __future__ import annotations

from augbench.augment.ops.crop import box_from_kornia, full_box, resample_box
from augbench.augment.ops.spec import RESAMPLE, OpSpec, size


def sample(b, hw, p, gen, device, ctx):
    return {"box": full_box(b, hw, device)}  # no draw


def apply(x, p, d, ctx):
    return resample_box(x, d["box"], None, tuple(p["size"]))


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.Resize(tuple(p["size"]), align_corners=True)


def albumentations(p):
    import albumentations as A
    import cv2

    return A.Resize(*p["size"], interpolation=cv2.INTER_LINEAR)


SPEC = OpSpec("resize", {"size": (32, size)},
              "deterministic resize to `size` (used in place of a crop, e.g. `no_crop`)",
              sample=sample, apply=apply, stage=RESAMPLE, output_size=lambda p: tuple(p["size"]),
              kornia=kornia, albumentations=albumentations, from_kornia=lambda data, module: {"box": box_from_kornia(data)}, module=__name__)
