"""The draws op samplers share: uniforms in a range and per-sample p-gates, from the engine's
generator on the batch's device (never the global RNG)."""
from __future__ import annotations

import torch


def uniform(shape, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device) * (hi - lo) + lo


def whole_range(lo: float, hi: float) -> bool:
    return float(lo).is_integer() and float(hi).is_integer()


def whole_draw(u: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """u in [0, 1) -> each whole number of [lo, hi] on an equal share of u (Kornia >= 0.9.2's posterize
    generator; rounding a draw on [lo, hi] gave the two ends half the share of the others)."""
    return (lo + (u * (hi + 1 - lo)).floor()).clamp(max=hi)


def gate(b: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    """(B,) bool: the op applies to this sample (probability p)."""
    return torch.rand(b, generator=gen, device=device) < p


def where_gate(applied: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """y where the sample's gate is on, else x (images (B, C, H, W), gate (B,))."""
    return torch.where(applied.view(-1, 1, 1, 1), y, x)
