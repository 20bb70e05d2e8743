"""equalize: histogram equalization of each channel of each image, with probability p (Kornia's
`RandomEqualize`; `kornia.enhance.equalize`, i.e. PIL's `ImageOps.equalize` of the 8-bit levels).

Batched over (B, C) in one pass, no host sync: a 256-bin histogram of the level each pixel reads,
(x 255) truncated; the lookup table is the running count shifted by half a step, divided by the
step (the pixel count minus the last non-empty bin's, over 255); a channel whose step is 0 is
returned unchanged. Values are clamped to [0, 1] first (Kornia's convention), so it belongs
before normalize.
"""
from __future__ import annotations

import torch

from augbench.augment.ops.draw import gate, where_gate
from augbench.augment.ops.spec import AutoOp, OpSpec, prob


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Kornia's `enhance.equalize` of a float batch in [0, 1] (B, C, H, W), the same arithmetic."""
    shape = x.shape
    n = shape[0] * shape[1]
    scaled = x.clamp(0, 1).flatten(0, 1).flatten(1) * 255.0  # (N, P)
    count_dtype = torch.float64 if scaled.dtype == torch.float64 else torch.float32
    index = scaled.long()
    histo = torch.zeros(n, 256, device=x.device, dtype=count_dtype)
    histo.scatter_add_(1, index, torch.ones_like(scaled, dtype=count_dtype))
    total = histo.sum(1)
    ar = torch.arange(256, device=x.device)
    last_idx = torch.where(histo > 0, ar, torch.zeros_like(ar)).amax(1)
    last_count = histo.gather(1, last_idx.unsqueeze(1)).squeeze(1)
    step = torch.div(total - last_count, 255, rounding_mode="trunc")
    step_col = step.unsqueeze(1)
    half = torch.div(step, 2, rounding_mode="trunc").unsqueeze(1)
    lut = torch.div(histo.cumsum(1) + half, step_col.clamp(min=1), rounding_mode="trunc")
    lut = torch.cat([torch.zeros(n, 1, device=x.device, dtype=lut.dtype), lut[:, :-1]], 1)
    lut = torch.clamp(lut, 0, 255).to(scaled.dtype)
    out = torch.where(step_col == 0, scaled, lut.gather(1, index))
    return (out / 255.0).reshape(shape)


def sample(b, hw, p, gen, device, ctx):
    return {"applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    return where_gate(d["applied"], equalize(x), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomEqualize(p=p["p"])


def from_kornia(data, module):
    return {"applied": data["batch_prob"] > 0.5}


SPEC = OpSpec("equalize", {"p": (0.5, prob)}, "equalize each channel's histogram (PIL / Kornia) with probability p",
              sample=sample, apply=apply, group="equalize", kornia=kornia, from_kornia=from_kornia, module=__name__,
              auto=(AutoOp("equalize", "equalize", 0.0, 1.0, doc="no magnitude"),))
