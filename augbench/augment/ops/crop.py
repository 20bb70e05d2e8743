"""random_resized_crop: a random area (fraction `scale` of the image, aspect `ratio`) resized to
`size` (Kornia's / torchvision's `RandomResizedCrop`).

Boxes are drawn as torchvision's `RandomResizedCrop.get_params`, vectorised over all 10 tries
(the first that fits, else the whole image cut to the ratio range), with Kornia's rounding and
integer pixel boxes (x0, y0, w, h); resizing is bilinear with `align_corners=True` (Kornia's
default), so output pixel j reads source x0 + j (w - 1) / (W_out - 1). The p-gate is per sample
(Kornia gates per batch): a sample whose gate is off gets the whole image resized.

Fused: every path (torch, numba, Triton) folds the crop, the resize, the flip and the uint8 ->
float conversion into one resampling (`fused_torch.resample`); the CUDA sampler draws the boxes
in one kernel (`triton_sample`).
"""
from __future__ import annotations

import math

import torch

from augbench.augment.backends.fused_torch import interp_matrix
from augbench.augment.ops.draw import gate
from augbench.augment.ops.spec import RESAMPLE, OpSpec, prob, range_in, size


def sample_crop(b: int, hw: tuple[int, int], scale, ratio, gen, device) -> torch.Tensor:
    """(B, 4) boxes x0, y0, w, h in whole pixels, torchvision's RandomResizedCrop.get_params
    vectorised over all 10 tries, Kornia's rounding and fallback."""
    u = [torch.rand(shape, generator=gen, device=device) for shape in ((b, 10), (b, 10), b, b)]
    return crop_from_uniforms(*u, hw, scale, ratio)


def fallback_size(hw: tuple[int, int], ratio) -> tuple[int, int]:
    """(w, h) when no try fits: the whole image, cut to the ratio range (torchvision's rule)."""
    H, W = hw
    in_ratio = W / H
    if in_ratio < min(ratio):
        return W, math.floor(round(W / min(ratio)))
    if in_ratio > max(ratio):
        return math.floor(round(H * max(ratio))), H
    return W, H


def crop_from_uniforms(u_area, u_logr, u_x, u_y, hw: tuple[int, int], scale, ratio) -> torch.Tensor:
    """The crop maths of `sample_crop` from its uniforms (B, 10), (B, 10), (B,), (B,)."""
    H, W = hw
    area = (u_area * (scale[1] - scale[0]) + scale[0]) * (H * W)
    log_r = u_logr * (math.log(ratio[1]) - math.log(ratio[0])) + math.log(ratio[0])
    ar = torch.exp(log_r)
    w = torch.sqrt(area * ar).round()
    h = torch.sqrt(area / ar).round()
    ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = (ok.cumsum(1) == 1) & ok  # one-hot of the first try that fits
    any_ok = ok.any(1)
    wf, hf = fallback_size(hw, ratio)
    w = torch.where(any_ok, (w * first).sum(1), torch.full_like(area[:, 0], wf)).clamp(1, W)
    h = torch.where(any_ok, (h * first).sum(1), torch.full_like(area[:, 0], hf)).clamp(1, H)
    x0 = (u_x * (W - w + 1)).floor()
    y0 = (u_y * (H - h + 1)).floor()
    return torch.stack([x0, y0, w, h], 1)


def full_box(b: int, hw: tuple[int, int], device) -> torch.Tensor:
    H, W = hw
    box = torch.zeros(b, 4, device=device)
    box[:, 2], box[:, 3] = W, H  # scalar fills: no host -> device copy
    return box


def sample(b, hw, p, gen, device, ctx):
    box = sample_crop(b, hw, p["scale"], p["ratio"], gen, device)
    applied = gate(b, p["p"], gen, device)
    return {"box": torch.where(applied[:, None], box, full_box(b, hw, device)), "applied": applied}


def resample_box(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor | None, out: tuple[int, int]) -> torch.Tensor:
    """The reference resampling: crop `box` (x0, y0, w, h) of the float batch `x`, mirror where
    `flip`, resize bilinearly (align_corners=True) to `out`, as two batched matmuls."""
    H, W = x.shape[-2:]
    box = box.to(x.dtype)
    ry = interp_matrix(box[:, 1], box[:, 3], out[0], H, None)  # (B, oh, H)
    rx = interp_matrix(box[:, 0], box[:, 2], out[1], W, flip)  # (B, ow, W)
    return ry[:, None] @ (x @ rx.transpose(1, 2)[:, None])


def apply(x, p, d, ctx):
    return resample_box(x, d["box"], None, tuple(p["size"]))


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomResizedCrop(tuple(p["size"]), scale=p["scale"], ratio=p["ratio"], p=p["p"])


def albumentations(p):
    import albumentations as A
    import cv2

    return A.RandomResizedCrop(size=tuple(p["size"]), scale=tuple(p["scale"]), ratio=tuple(p["ratio"]),
                               interpolation=cv2.INTER_LINEAR, p=p["p"])


def box_from_kornia(data) -> torch.Tensor:
    """Kornia's crop corners (src, (B, 4, 2)) -> boxes x0, y0, w, h."""
    src = data["src"]
    x0, y0 = src[:, 0, 0], src[:, 0, 1]
    return torch.stack([x0, y0, src[:, 1, 0] - x0 + 1, src[:, 2, 1] - y0 + 1], 1).float()


def from_kornia(data, module):
    return {"box": box_from_kornia(data), "applied": data["batch_prob"] > 0.5}


SPEC = OpSpec(
    "random_resized_crop", {
        "size": (32, size),
        "scale": ((0.08, 1.0), range_in(0.0, 1.0, open_lo=True)),
        "ratio": ((3 / 4, 4 / 3), range_in(0.0, 1e6, open_lo=True)),
        "p": (1.0, prob),
    }, "crop a random area (fraction `scale` of the image, aspect `ratio`) and resize to `size`",
    sample=sample, apply=apply, group="crop", stage=RESAMPLE, output_size=lambda p: tuple(p["size"]),
    kornia=kornia, albumentations=albumentations, from_kornia=from_kornia, module=__name__)
