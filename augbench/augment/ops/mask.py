"""patch_mask: mask a fraction `ratio` of the `patch_size` x `patch_size` patches of each view,
with probability p: a pixel mask (value `fill`, after normalisation) for ConvNets, or the kept
token indices (`mask_mode="token"`) for ViTs. Always runs last, after normalize. A ragged border
outside the patch grid is never masked. Neither Kornia nor albumentations has it: their backends
run this one on their output, drawn the same way (`fused.patch_mask_like_fused`)."""
from __future__ import annotations

import torch

from augbench.augment.backends import fused_torch
from augbench.augment.ops.draw import gate
from augbench.augment.ops.spec import LAST, OpSpec, mask_ratio, number, pos_int, prob


def sample_patch_mask(b: int, out_hw: tuple[int, int], p: dict, gen, device, mask_mode: str) -> dict:
    oh, ow = out_hw
    n = (oh // p["patch_size"]) * (ow // p["patch_size"])
    n_mask = round(p["ratio"] * n)
    ids = torch.rand(b, n, generator=gen, device=device).argsort(1)
    applied = gate(b, p["p"], gen, device)
    mask = torch.zeros(b, n, dtype=torch.bool, device=device).scatter_(1, ids[:, :n_mask], True)
    d = {"mask": mask & applied[:, None], "applied": applied}
    if mask_mode == "token":
        d["keep_idx"] = ids[:, n_mask:].sort(1).values
    return d


def sample(b, hw, p, gen, device, ctx):
    return sample_patch_mask(b, hw, p, gen, device, ctx.mask_mode)


def apply(x, p, d, ctx):
    if ctx.mask_mode != "pixel":  # token mode: the model drops the tokens (d["keep_idx"])
        return x
    return fused_torch.apply_patch_mask(x, d["mask"], p["patch_size"], p["fill"])


SPEC = OpSpec(
    "patch_mask", {
        "ratio": (0.5, mask_ratio),
        "patch_size": (4, pos_int(1)),
        "p": (1.0, prob),
        "fill": (0.0, number),
    }, "mask a fraction `ratio` of `patch_size` patches: a pixel mask (value `fill` after normalisation) "
       "for ConvNets, or the kept token indices for ViTs",
    sample=sample, apply=apply, group="mask", stage=LAST, module=__name__)
