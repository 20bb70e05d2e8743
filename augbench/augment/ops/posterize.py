"""posterize: keep the `bits` high bits of each 8-bit channel value, bits drawn per sample, with
probability p (Kornia's `RandomPosterize`, `kornia.enhance.posterize`).

`bits`: a scalar x means bits drawn from [x, 8], a pair [lo, hi] the range (in [0, 8]). As Kornia's
`PosterizeGenerator` (>= 0.9.2): a range of whole numbers draws each whole number in it equally often;
a range with a fractional end draws uniformly and rounds (half to even). 0 bits gives black, 8 the
input unchanged. The arithmetic is Kornia's: the value times 255 truncated to uint8, divided
by 2^(8 - bits) (a float division), truncated again, times 2^(8 - bits), over 255.
"""
from __future__ import annotations

from typing import Any

import torch

from augbench.augment.ops.draw import gate, uniform, where_gate, whole_draw, whole_range
from augbench.augment.ops.spec import AutoOp, OpSpec, number, prob, range_in


def bits_range(path: str, v: Any) -> tuple[float, float]:
    if not isinstance(v, (list, tuple)):
        v = (number(path, v), 8.0)
    return range_in(0.0, 8.0)(path, v)


def posterize(x: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    """Kornia's posterize with per-sample integer `bits` (B,), the same arithmetic."""
    x = x.clamp(0, 1)
    bits = bits.to(x.device).view(-1, 1, 1, 1)
    shift = 8 - bits
    right = (x * 255).to(torch.uint8) / (2 ** shift).to(x.dtype) / 255.0
    shifted = ((right * 255).to(torch.uint8) * (2 ** shift)).to(x.dtype) / 255.0
    out = torch.where(bits == 0, torch.zeros_like(x), shifted)
    return torch.where(bits == 8, x, out)


def draw_bits(b, lo, hi, gen, device) -> torch.Tensor:
    if whole_range(lo, hi):
        return whole_draw(uniform(b, 0.0, 1.0, gen, device), lo, hi).to(torch.int32)
    return uniform(b, lo, hi, gen, device).round().to(torch.int32)


def sample(b, hw, p, gen, device, ctx):
    bits = draw_bits(b, *p["bits"], gen, device)
    return {"bits": bits, "applied": gate(b, p["p"], gen, device)}


def apply(x, p, d, ctx):
    return where_gate(d["applied"], posterize(x, d["bits"]), x)


def kornia(p, **settings):
    import kornia.augmentation as K

    return K.RandomPosterize(bits=tuple(p["bits"]), p=p["p"])


def from_kornia(data, module):
    return {"bits": data["bits_factor"].to(torch.int32), "applied": data["batch_prob"] > 0.5}


def _auto_bits(v, hw, sampled):
    # Kornia: RandAugment truncates its fixed magnitude to whole bits; TrivialAugment's draw is whole already
    # on a whole range (rand_augment.value, `whole`), and rounded on a fractional one
    return {"bits": (v.round() if sampled else v.trunc()).to(torch.int32)}


SPEC = OpSpec("posterize", {"bits": ((3.0, 8.0), bits_range), "p": (0.5, prob)},
              "keep `bits` high bits per channel (drawn per sample from [lo, hi], rounded) with probability p",
              sample=sample, apply=apply, group="posterize", kornia=kornia, from_kornia=from_kornia,
              module=__name__,
              auto=(AutoOp("posterize", "posterize", 4.0, 8.0, params=_auto_bits, reverse=True, whole=True,
                           doc="bits = high - (high - low) m / 30, whole bits: a larger m keeps fewer"),))
