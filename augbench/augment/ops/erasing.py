"""random_erasing: erase one random rectangle per sample with the value `value`, with probability
p (Kornia's `RandomErasing`, torchvision's "cutout" style).

Sampling is Kornia's `RectangleEraseGenerator`: the target area is a fraction of the image drawn
from `scale`; the aspect `ratio` is height over width, and when the range straddles 1 a fair coin
picks between [ratio[0], 1] and [1, ratio[1]] (so half the boxes are tall); h = round(sqrt(area
ratio)) and w = round(sqrt(area / ratio)), clamped to [1, H] x [1, W]; the corner is uniform over
the positions that keep the box inside. The erased pixels are [y0, y0 + h) x [x0, x0 + w).
Runs where it stands in the policy (after the crop: boxes are drawn on the view's size), before
normalize, so `value` is a pixel value in [0, 1] as in Kornia.
"""
from __future__ import annotations

import torch

from augbench.augment.ops.draw import gate, uniform
from augbench.augment.ops.spec import OpSpec, prob, range_in, unit

INF = float("inf")


def sample(b, hw, p, gen, device, ctx):
    H, W = hw
    area = uniform(b, *p["scale"], gen, device) * (H * W)
    r0, r1 = p["ratio"]
    if r0 < 1.0 < r1:  # Kornia: a coin between the range below 1 and the range above it
        below, above = uniform(b, r0, 1.0, gen, device), uniform(b, 1.0, r1, gen, device)
        ratio = torch.where(torch.rand(b, generator=gen, device=device).round().bool(), below, above)
    else:
        ratio = uniform(b, r0, r1, gen, device)
    h = torch.sqrt(area * ratio).round().clamp(1.0, H)
    w = torch.sqrt(area / ratio).round().clamp(1.0, W)
    x0 = (torch.rand(b, generator=gen, device=device) * (W - w + 1)).floor()
    y0 = (torch.rand(b, generator=gen, device=device) * (H - h + 1)).floor()
    return {"box": torch.stack([x0, y0, w, h], 1), "applied": gate(b, p["p"], gen, device)}


def box_mask(box: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """(B, 4) boxes x0, y0, w, h -> (B, 1, H, W) bool, True inside [y0, y0 + h) x [x0, x0 + w)."""
    H, W = hw
    xs = torch.arange(W, device=box.device, dtype=box.dtype)
    ys = torch.arange(H, device=box.device, dtype=box.dtype)
    x0, y0, w, h = (box[:, i, None] for i in range(4))
    in_x = (xs >= x0) & (xs < x0 + w)  # (B, W)
    in_y = (ys >= y0) & (ys < y0 + h)  # (B, H)
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


def apply(x, p, d, ctx):
    m = box_mask(d["box"].to(torch.float32), tuple(x.shape[-2:])) & d["applied"].view(-1, 1, 1, 1)
    return torch.where(m, torch.full((), p["value"], dtype=x.dtype, device=x.device), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomErasing(scale=tuple(p["scale"]), ratio=tuple(p["ratio"]), value=p["value"], p=p["p"])


def from_kornia(data, module):
    box = torch.stack([data["xs"], data["ys"], data["widths"], data["heights"]], 1).float()
    return {"box": box, "applied": data["batch_prob"] > 0.5}


SPEC = OpSpec(
    "random_erasing", {
        "scale": ((0.02, 0.33), range_in(0.0, INF)),
        "ratio": ((0.3, 3.3), range_in(0.0, INF, open_lo=True)),
        "value": (0.0, unit),
        "p": (0.5, prob),
    }, "erase a random rectangle (area fraction `scale`, height/width `ratio`) with `value`, with probability p",
    sample=sample, apply=apply, group="erase", kornia=kornia, from_kornia=from_kornia, module=__name__)
