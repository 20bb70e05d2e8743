"""rotation: rotate each sample about the image centre by an angle drawn from `degrees`, with
probability p (Kornia's `RandomRotation`: a scalar s means [-s, s]; a positive angle turns the
image counter-clockwise on screen; bilinear, zeros outside, the size kept). The warp is
`affine.warp`. Runs where it stands in the policy, on the view's size."""
from __future__ import annotations

import torch

from augbench.augment.ops.affine import centre, rotation_matrix, warp
from augbench.augment.ops.draw import gate, uniform, where_gate
from augbench.augment.ops.spec import AutoOp, OpSpec, prob, symmetric_range


def sample(b, hw, p, gen, device, ctx):
    return {"degrees": uniform(b, *p["degrees"], gen, device), "applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    angle = d["degrees"].to(x.dtype)
    m = rotation_matrix(centre(tuple(x.shape[-2:]), x.shape[0], angle), angle, torch.ones_like(angle)[:, None].expand(-1, 2))
    return where_gate(d["applied"], warp(x, m), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomRotation(degrees=tuple(p["degrees"]), p=p["p"])


def from_kornia(data, module):
    return {"degrees": data["degrees"], "applied": data["batch_prob"] > 0.5}


SPEC = OpSpec("rotation", {"degrees": ((-30.0, 30.0), symmetric_range(-360.0, 360.0)), "p": (0.5, prob)},
              "rotate about the centre by an angle drawn from `degrees` with probability p",
              sample=sample, apply=apply, group="rotation", kornia=kornia, from_kornia=from_kornia, module=__name__,
              auto=(AutoOp("rotate", "rotation", -30.0, 30.0, signed=True, params=lambda v, hw, s: {"degrees": v},
                           doc="rotate by m degrees, random sign (Kornia's Rotate)"),))
