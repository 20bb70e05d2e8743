"""affine: a random affine map per sample -- rotation by `degrees`, translation by a fraction
`translate` of the size, isotropic `scale`, `shear` in degrees -- with probability p (Kornia's
`RandomAffine`, torchvision's `RandomAffine`).

Parameters as Kornia: `degrees` a scalar s (= [-s, s]) or a range; `translate` the largest
shift as fractions [of the width, of the height] (drawn from [-tx, tx] W and [-ty, ty] H pixels);
`scale` a range; `shear` a scalar s (x only: [-s, s]), [a, b] (x only) or [xa, xb, ya, yb].
Defaults change nothing (Kornia and torchvision make `degrees` a required argument): set what
you want. The matrix is Kornia's `get_affine_matrix2d` (rotation by -angle about the centre
((W - 1) / 2, (H - 1) / 2), scale, translation, then the shear about the centre). The warp
(`warp`) samples the source bilinearly at the inverse map of every output pixel, zeros outside,
as `kornia.geometry.warp_affine` does (its align_corners flag does not change a pixel-space map).
Runs where it stands in the policy, on the view's size.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from augbench.augment.ops.draw import gate, uniform, where_gate
from augbench.augment.ops.spec import AutoOp, OpSpec, PolicyError, number, prob, range_in, symmetric_range


def centre(hw: tuple[int, int], b: int, like: torch.Tensor) -> torch.Tensor:
    H, W = hw
    c = torch.empty(b, 2, dtype=like.dtype, device=like.device)
    c[:, 0], c[:, 1] = W / 2 - 0.5, H / 2 - 0.5  # scalar fills: no host -> device copy
    return c


def rotation_matrix(center: torch.Tensor, angle: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Kornia's get_rotation_matrix2d as (B, 3, 3): about `center`, `angle` degrees (counter-
    clockwise on screen for a positive angle), then `scale` (B, 2)."""
    a = angle * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    sx, sy = scale[:, 0], scale[:, 1]
    cx, cy = center[:, 0], center[:, 1]
    # shift(c) @ R @ S @ shift(-c)
    m00, m01 = cos * sx, sin * sy
    m10, m11 = -sin * sx, cos * sy
    t0 = cx - (m00 * cx + m01 * cy)
    t1 = cy - (m10 * cx + m11 * cy)
    return _mat(m00, m01, t0, m10, m11, t1)


def shear_matrix(center: torch.Tensor, sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """Kornia's get_shear_matrix2d (sx, sy in radians) as (B, 3, 3)."""
    x, y = center[:, 0], center[:, 1]
    tx, ty = torch.tan(sx), torch.tan(sy)
    one = torch.ones_like(tx)
    return _mat(one, -tx, tx * y, -ty, one + tx * ty, ty * (x - tx * y))


def _mat(a, b, c, d, e, f) -> torch.Tensor:
    zero, one = torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([a, b, c, d, e, f, zero, zero, one], 1).view(-1, 3, 3)


def affine_matrix(hw, angle, translate, scale, shear) -> torch.Tensor:
    """Kornia's get_affine_matrix2d: (B, 3, 3) source -> output pixels. angle (B,) and shear (B, 2)
    in degrees, translate (B, 2) in pixels, scale (B, 2)."""
    c = centre(hw, angle.shape[0], angle)
    m = rotation_matrix(c, -angle, scale)
    m[:, 0, 2] += translate[:, 0]
    m[:, 1, 2] += translate[:, 1]
    sh = shear * (math.pi / 180)
    return m @ shear_matrix(c, sh[:, 0], sh[:, 1])


def warp(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """`x` (B, C, H, W) through the source -> output pixel map `m` (B, 3, 3): each output pixel
    samples the source bilinearly at m^-1 (x, y), zeros outside. The 2x3 inverse in closed form
    (torch.linalg.inv checks its input on the host: a sync on CUDA)."""
    B, C, H, W = x.shape
    m = m.to(x.dtype)
    a, b, c, d, e, f = m[:, 0, 0], m[:, 0, 1], m[:, 0, 2], m[:, 1, 0], m[:, 1, 1], m[:, 1, 2]
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    ic, if_ = -(ia * c + ib * f), -(id_ * c + ie * f)
    ys = torch.arange(H, device=x.device, dtype=x.dtype).view(1, H, 1)
    xs = torch.arange(W, device=x.device, dtype=x.dtype).view(1, 1, W)
    v = lambda t: t.view(B, 1, 1)  # noqa: E731
    sx = v(ia) * xs + v(ib) * ys + v(ic)
    sy = v(id_) * xs + v(ie) * ys + v(if_)
    grid = torch.stack([sx * (2 / max(W - 1, 1)) - 1, sy * (2 / max(H - 1, 1)) - 1], -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def scale_range(path: str, v: Any) -> tuple[float, float]:
    return range_in(0.0, float("inf"), open_lo=True)(path, v)


def shear_range(path: str, v: Any) -> tuple[float, float, float, float]:
    """Kornia's shear: s -> x in [-s, s]; [a, b] -> x in [a, b]; [xa, xb, ya, yb]."""
    if isinstance(v, (list, tuple)) and len(v) == 4:
        return (*range_in(-360.0, 360.0)(path, v[:2]), *range_in(-360.0, 360.0)(path, v[2:]))
    if isinstance(v, (list, tuple)) and len(v) != 2:
        raise PolicyError(f"{path}: expected a number, [min, max] (x) or [x_min, x_max, y_min, y_max], got {v!r}")
    return (*symmetric_range(-360.0, 360.0)(path, v), 0.0, 0.0)


def translate_pair(path: str, v: Any) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise PolicyError(f"{path}: expected [fraction of width, fraction of height], got {v!r}")
    a, b = number(path, v[0]), number(path, v[1])
    if not (0 <= a <= 1 and 0 <= b <= 1):
        raise PolicyError(f"{path}: fractions must lie in [0, 1], got [{a}, {b}]")
    return (a, b)


def sample(b, hw, p, gen, device, ctx):
    H, W = hw
    angle = uniform(b, *p["degrees"], gen, device)
    s = uniform(b, *p["scale"], gen, device)
    tx, ty = p["translate"]
    t = torch.stack([uniform(b, -tx, tx, gen, device) * W, uniform(b, -ty, ty, gen, device) * H], 1)
    sh = p["shear"]
    shear = torch.stack([uniform(b, sh[0], sh[1], gen, device), uniform(b, sh[2], sh[3], gen, device)], 1)
    return {"angle": angle, "translate": t, "scale": torch.stack([s, s], 1), "shear": shear,
            "applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    m = affine_matrix(tuple(x.shape[-2:]), d["angle"].to(x.dtype), d["translate"].to(x.dtype),
                      d["scale"].to(x.dtype), d["shear"].to(x.dtype))
    return where_gate(d["applied"], warp(x, m), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomAffine(degrees=tuple(p["degrees"]), translate=tuple(p["translate"]), scale=tuple(p["scale"]),
                          shear=tuple(p["shear"]), p=p["p"])


def from_kornia(data, module):
    return {"angle": data["angle"], "translate": data["translations"], "scale": data["scale"],
            "shear": torch.stack([data["shear_x"], data["shear_y"]], 1), "applied": data["batch_prob"] > 0.5}


def _zeros(v):
    return torch.zeros_like(v)


def _shear_degrees(factor: torch.Tensor) -> torch.Tensor:
    return torch.atan(factor) * (180 / math.pi)  # as Kornia: atan times 180/pi


def _affine_params(v, angle=None, tx=None, ty=None, shx=None, shy=None) -> dict:
    z = _zeros(v)
    return {"angle": z if angle is None else angle,
            "translate": torch.stack([z if tx is None else tx, z if ty is None else ty], 1),
            "scale": torch.ones(v.shape[0], 2, dtype=v.dtype, device=v.device),
            "shear": torch.stack([z if shx is None else shx, z if shy is None else shy], 1)}


# Kornia's RandAugment / TrivialAugment geometric candidates: a shear magnitude is a shear factor, as in
# PIL and torchvision, so its angle is atan(factor) (Kornia >= 0.9.2; 0.9.0 took factor x 180 degrees, which
# made 0.3 a 54-degree shear); translations are fractions of the width / height in pixels
AUTO = (
    AutoOp("shear_x", "affine", -0.3, 0.3, signed=True,
           params=lambda v, hw, s: _affine_params(v, shx=_shear_degrees(v)),
           doc="shear along x by the factor m: atan(m) in degrees (Kornia's ShearX, torchvision's shear)"),
    AutoOp("shear_y", "affine", -0.3, 0.3, signed=True,
           params=lambda v, hw, s: _affine_params(v, shy=_shear_degrees(v)),
           doc="shear along y by the factor m: atan(m) in degrees (Kornia's ShearY, torchvision's shear)"),
    AutoOp("translate_x", "affine", -0.1, 0.1, signed=True,
           params=lambda v, hw, s: _affine_params(v, tx=v * hw[1]), doc="shift by m of the width"),
    AutoOp("translate_y", "affine", -0.1, 0.1, signed=True,
           params=lambda v, hw, s: _affine_params(v, ty=v * hw[0]), doc="shift by m of the height"),
)

SPEC = OpSpec(
    "affine", {
        "degrees": ((0.0, 0.0), symmetric_range(-360.0, 360.0)),
        "translate": ((0.0, 0.0), translate_pair),
        "scale": ((1.0, 1.0), scale_range),
        "shear": ((0.0, 0.0, 0.0, 0.0), shear_range),
        "p": (0.5, prob),
    }, "random affine map (rotation `degrees`, shift `translate` x size, `scale`, `shear` degrees) with probability p",
    sample=sample, apply=apply, group="affine", kornia=kornia, from_kornia=from_kornia, auto=AUTO, module=__name__)
