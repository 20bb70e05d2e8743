"""The fused backend's torch path: a prepared `Plan` (see fused.py) applied with batched torch ops.

Runs on any device; it is the CPU path and the reference the Triton kernel is tested against.
Written for CPU speed in eager mode: every op is a whole-batch op with per-sample parameters
broadcast from (B, 1, 1, 1); p-gates are folded into the parameters by `fused.prepare` (an
identity factor where the gate is off), so there is no `torch.where` over images (not
vectorised on CPU: ~5x the cost of a multiply); consecutive linear colour ops (grayscale,
normalize) are one per-sample 3x3 matrix applied by a single `baddbmm`; intermediates are
updated in place or written into reused scratch buffers (`scratch`): on CPU a fresh multi-MB
tensor is fresh pages from the OS, and the page faults cost more than the arithmetic (measured:
2.3x on the whole call at 32 px, batch 256). Only the returned view is freshly allocated.
"""
from __future__ import annotations

import math
import threading
from typing import Sequence

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# the ops a fused `Plan` runs on this path (and, with the same plan, on the numba and Triton kernels);
# a policy with any other op runs on the reference path (augbench.augment.reference)
COVERS = frozenset({"random_resized_crop", "resize", "horizontal_flip", "color_jitter", "grayscale",
                    "gaussian_blur", "solarize", "normalize", "patch_mask"})


_CONSTS: dict[tuple, torch.Tensor] = {}


def const(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """A small constant on `like`'s device, built once from scalar fills (torch.tensor(list,
    device=cuda) is a blocking host -> device copy, i.e. a sync) and cached: read-only."""
    key = (tuple(float(v) for v in values), like.dtype, like.device)
    c = _CONSTS.get(key)
    if c is None:
        c = _CONSTS[key] = torch.stack([torch.full((), v, dtype=like.dtype, device=like.device) for v in key[0]])
    return c


class _Scratch(threading.local):
    def __init__(self):
        self.bufs: dict[tuple, torch.Tensor] = {}


_SCRATCH = _Scratch()
SCRATCH_MAX = 1 << 23  # elements per buffer (32 MB in float32): larger work allocates as usual


def scratch(slot: str, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
    """A reused buffer for an intermediate that never leaves this module (CPU, small batches).
    One per (thread, slot, dtype), grown as needed; callers never hold two tensors of one slot."""
    n = math.prod(shape)
    if like.device.type != "cpu" or n > SCRATCH_MAX:
        return torch.empty(tuple(shape), dtype=like.dtype, device=like.device)
    key = (slot, like.dtype)
    buf = _SCRATCH.bufs.get(key)
    if buf is None or buf.numel() < n:
        buf = _SCRATCH.bufs[key] = torch.empty(n, dtype=like.dtype)
    return buf[:n].view(tuple(shape))


def is_scratch(t: torch.Tensor) -> bool:
    return any(t.data_ptr() == b.data_ptr() for b in _SCRATCH.bufs.values())


def _b(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype).view(-1, 1, 1, 1)


# ---------------------------------------------------------------------- geometry
def interp_matrix(start: torch.Tensor, length: torch.Tensor, n_out: int, n_in: int,
                  flip: torch.Tensor | None, slot: str | None = None) -> torch.Tensor:
    """(B, n_out, n_in) bilinear weights (align_corners=True) reading [start, start+length),
    mirrored where `flip`."""
    j = torch.arange(n_out, device=start.device, dtype=start.dtype).expand(start.shape[0], n_out)
    if flip is not None:
        j = torch.where(flip[:, None], n_out - 1 - j, j)
    step = (length - 1) / max(n_out - 1, 1)
    src = start[:, None] + j * step[:, None]
    i = torch.arange(n_in, device=start.device, dtype=start.dtype)
    out = scratch(slot, (start.shape[0], n_out, n_in), src) if slot else None
    d = torch.sub(src[:, :, None], i, out=out)
    return d.abs_().neg_().add_(1).clamp_(min=0)  # the hat function 1 - |d| = bilinear weights


def resample(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor | None, size: tuple[int, int],
             dtype: torch.dtype) -> torch.Tensor:
    """Crop `box` (x0, y0, w, h), mirror where `flip`, resize to `size`, to float in [0, 1]."""
    H, W = x.shape[-2:]
    scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
    box = box.to(dtype)
    b, c = x.shape[:2]
    oh, ow = size
    if H * W <= 96 * 96 or x.device.type != "cpu":
        # two batched matmuls beat grid_sample's gather on CPU and are exact bilinear. Columns
        # first, on x as (b, c*H, W); then rows, one (H', H) matrix per sample and channel: no
        # permuted copy of an image anywhere (a strided copy costs about what a matmul does here)
        ry = interp_matrix(box[:, 1], box[:, 3], oh, H, None, "ry")
        rx = interp_matrix(box[:, 0], box[:, 2], ow, W, flip, "rx")
        xf = scratch("xf", (b, c * H, W), rx).copy_(x.reshape(b, c * H, W))  # to float, same layout
        t = torch.bmm(xf, rx.transpose(1, 2), out=scratch("cols", (b, c * H, ow), rx))  # (b, c, H, W')
        # one row matrix per channel; the uint8 -> [0, 1] scale rides on its weights
        ry3 = torch.mul(ry[:, None].expand(b, c, oh, H), scale, out=scratch("ry3", (b, c, oh, H), ry))
        y = scratch("y", (b, c, oh, ow), ry)
        torch.bmm(ry3.view(b * c, oh, H), t.view(b * c, H, ow), out=y.view(b * c, oh, ow))
        return y
    # large images on CPU: the dense matmul's O(H W^2) loses to grid_sample's O(H' W')
    return grid_resample(x.to(dtype), box, flip, size).mul_(scale)


def grid_resample(x: torch.Tensor, box: torch.Tensor, flip, size) -> torch.Tensor:
    b, c, H, W = x.shape
    x0, y0, w, h = box.unbind(1)
    ax = (w - 1) / max(W - 1, 1)
    if flip is not None:
        ax = torch.where(flip, -ax, ax)
    zero = torch.zeros_like(ax)
    theta = torch.stack([ax, zero, (2 * x0 + w - 1) / max(W - 1, 1) - 1,
                         zero, (h - 1) / max(H - 1, 1), (2 * y0 + h - 1) / max(H - 1, 1) - 1], 1).view(b, 2, 3)
    grid = F.affine_grid(theta, [b, c, *size], align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


# ---------------------------------------------------------------------- colour (y: own buffer, in place)
def gray(x: torch.Tensor) -> torch.Tensor:
    w = const(GRAY_WEIGHTS, x).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def brightness(y, f):
    return y.mul_(_b(f, y)).clamp_(0, 1)


def contrast(y, f):
    # the mean of the gray image is the gray-weighted sum of the channel means: no gray image needed
    m = (y.mean((-2, -1)) @ const(GRAY_WEIGHTS, y)).view(-1, 1, 1, 1)
    f = _b(f, y)
    return y.mul_(f).add_(m * (1 - f)).clamp_(0, 1)


def _gray_plane(y: torch.Tensor, slot: str) -> torch.Tensor:
    r, g, b = y.unbind(1)
    w = GRAY_WEIGHTS
    return torch.mul(r, w[0], out=scratch(slot, r.shape, y)).add_(g, alpha=w[1]).add_(b, alpha=w[2])


def saturation(y, f):
    f = _b(f, y)
    gr = _gray_plane(y, "p0").unsqueeze(1).mul_(1 - f)
    return y.mul_(f).add_(gr).clamp_(0, 1)


def hue(y, f):
    """Shift hue by f turns: RGB -> HSV (Kornia's formulas) -> RGB. Max and min are unchanged by
    a hue rotation, so only h is computed, and each channel is
    c = v - (v - min) clamp(2 - d(6h, k), 0, 1), d the circular distance mod 6, k = 3, 5, 1 (R, G, B).
    The branch of h (which channel is the max, ties to r then g, as Kornia) is a blend with 0/1
    masks, not torch.where (unvectorised on CPU). Every plane lives in a scratch buffer."""
    r, g, b = y.unbind(1)
    P = lambda slot: scratch(slot, r.shape, y)  # noqa: E731
    mx, delta = torch.amax(y, 1, out=P("p0")), torch.amin(y, 1, out=P("p1"))
    delta = torch.sub(mx, delta, out=delta)
    is_r, is_g = torch.eq(r, mx, out=P("p2")), torch.eq(g, mx, out=P("p3"))
    h6 = torch.sub(r, g, out=P("p4")).add_(delta, alpha=4)  # b is the max
    t = torch.sub(b, r, out=P("p5")).add_(delta, alpha=2).sub_(h6)
    h6.add_(t.mul_(is_g))  # g is the max
    t = torch.sub(g, b, out=t).sub_(h6)
    h6.add_(t.mul_(is_r))  # r is the max
    # a gray pixel has numerator 0, so a tiny epsilon replaces Kornia's delta == 0 guard
    h6.div_(torch.add(delta, 1e-12, out=t)).add_(6 * f.to(y.dtype).view(-1, 1, 1))
    h6.sub_(torch.mul(h6, 1 / 6, out=t).floor_().mul_(6))  # [0, 6)
    centre = const((3.0, 5.0, 1.0), y).view(1, 3, 1, 1)
    d = torch.sub(h6.unsqueeze(1), centre, out=scratch("full", y.shape, y))
    d.abs_().sub_(3).abs_().sub_(1).clamp_(0, 1).mul_(delta.unsqueeze(1))
    return torch.sub(mx.unsqueeze(1), d, out=y)


STEPS = (brightness, contrast, saturation, hue)


def fold(gate: torch.Tensor, v: torch.Tensor, identity: float) -> torch.Tensor:
    """`v` where the sample's p-gate is on, else the op's identity value: (B,) only, no sync."""
    v = v.float()
    return torch.where(gate, v, torch.full_like(v, identity))


def blur_weights(sigma: torch.Tensor, gate: torch.Tensor, k: int) -> torch.Tensor:
    """(B, k) normalised Gaussian taps; the identity kernel where the gate is off. The identity is
    built from a comparison, not `delta[k // 2] = 1` (a host -> device copy: a CUDA sync)."""
    xs = torch.arange(k, device=sigma.device, dtype=torch.float32) - k // 2
    w = torch.exp(-(xs**2) / (2 * sigma.float()[:, None] ** 2))
    w = w / w.sum(1, keepdim=True)
    return torch.where(gate[:, None], w, (xs == 0).to(w.dtype))


def color_jitter(y: torch.Tensor, factors: Sequence[torch.Tensor], gate: torch.Tensor,
                 order: torch.Tensor) -> torch.Tensor:
    """`factors` (brightness, contrast, saturation, hue), (B,) each; where `gate` is off they are
    set to the identity (1, 1, 1, 0), so no image is selected afterwards."""
    factors = [fold(gate, f, i) for f, i in zip(factors, (1.0, 1.0, 1.0, 0.0))]
    if order.dim() == 2:  # one order per sample: every step at every stage, blended by a one-hot
        for stage in range(4):
            # a one-hot by comparison: F.one_hot checks its input's range (a sync on some devices)
            pick = (order[:, stage] == torch.arange(4, device=y.device)[:, None]).to(y.dtype).view(4, -1, 1, 1, 1)
            y = sum(STEPS[i](y.clone(), factors[i]).mul_(pick[i]) for i in range(4))
        return y
    for i in order.tolist():  # a CPU tensor (see fused.sample_params): no device sync
        y = STEPS[i](y, factors[i])
    return y


def gray_normalize(y: torch.Tensor, gate: torch.Tensor | None, norm: dict | None) -> torch.Tensor:
    """Grayscale where `gate` (B,) is on, then normalize: y a + gray(y) c - mean / std with
    per-sample a, c, elementwise (a batched 3x3 matmul is slow on CPU). Returns a fresh tensor."""
    inv = 1 / const(norm["std"], y).view(1, 3, 1, 1) if norm else None
    if gate is None:
        out = torch.mul(y, inv)
    else:
        g = _b(gate, y)
        a, c = (1 - g, g) if inv is None else ((1 - g) * inv, g * inv)
        out = torch.mul(y, a)
        gp = _gray_plane(y, "p0").unsqueeze(1)
        out.add_(torch.mul(gp, c, out=scratch("full", torch.broadcast_shapes(gp.shape, c.shape), y)))
    return out.sub_(const(norm["mean"], y).view(1, 3, 1, 1) * inv) if norm else out


def gaussian_blur(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Separable per-sample blur with (B, k) `weights` as a grouped conv, reflect padding (Kornia's
    default); a sample whose gate is off has the identity kernel (see blur_weights)."""
    b, c, H, W = x.shape
    k = weights.shape[1]
    w = weights.to(x.dtype).repeat_interleave(c, 0)  # (B*C, k)
    r = k // 2
    y = F.pad(x.reshape(1, b * c, H, W), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, w.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(y, w.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, H, W)


def solarize(y: torch.Tensor, threshold: torch.Tensor) -> torch.Tensor:
    """Invert pixels >= the per-sample threshold (> 1 where the gate is off): y + hit (1 - 2y)."""
    hit = torch.ge(y, _b(threshold, y), out=scratch("full", y.shape, y))
    return y.add_(hit.mul_(torch.mul(y, -2, out=scratch("full2", y.shape, y)).add_(1)))


def pixel_mask(mask: torch.Tensor, patch: int, hw: tuple[int, int]) -> torch.Tensor:
    """(B, N) patch mask -> (B, 1, H, W) bool pixel mask; a ragged border is never masked."""
    b = mask.shape[0]
    H, W = hw
    gh, gw = H // patch, W // patch
    m = mask.view(b, 1, gh, 1, gw, 1).expand(b, 1, gh, patch, gw, patch).reshape(b, 1, gh * patch, gw * patch)
    return F.pad(m, (0, W - gw * patch, 0, H - gh * patch))


def apply_patch_mask(y: torch.Tensor, mask: torch.Tensor, patch: int, fill: float) -> torch.Tensor:
    """Masked pixels set to `fill`: y keep + fill (1 - keep), arithmetic (masked_fill is slow on CPU)."""
    m = pixel_mask(mask, patch, tuple(y.shape[-2:])).to(y.dtype)
    out = y * (1 - m)  # fresh: `y` may be another backend's output
    return out.add_(m.mul_(fill)) if fill != 0 else out


def run(x: torch.Tensor, plan, dtype: torch.dtype) -> torch.Tensor:
    """Apply a `fused.Plan` to the batch `x` (uint8 or float in [0, 1])."""
    if plan.resample:
        y = resample(x, plan.box, plan.flip, plan.size, dtype)
    else:  # a copy: the steps below work in place
        y = x.to(dtype, copy=True).div_(255) if x.dtype == torch.uint8 else x.to(dtype, copy=True)
    steps = list(plan.steps)
    i = 0
    while i < len(steps):
        op, d = steps[i]
        if op in ("grayscale", "normalize"):  # grayscale, and normalize if it comes next: one pass
            gate, norm = (d["gate"], None) if op == "grayscale" else (None, d)
            if op == "grayscale" and i + 1 < len(steps) and steps[i + 1][0] == "normalize":
                norm = steps[i + 1][1]
                i += 1
            y = gray_normalize(y, gate, norm)
        elif op == "color_jitter":
            y = color_jitter(y, d["factors"], d["gate"], d["order"])
        elif op == "gaussian_blur":
            y = gaussian_blur(y, blur_weights(d["sigma"], d["gate"], d["k"]))
        elif op == "solarize":  # values lie in [0, 1] before normalize: a threshold of 2 never hits
            y = solarize(y, fold(d["gate"], d["threshold"], 2.0))
        i += 1
    if plan.mask is not None:
        mask, patch, fill = plan.mask
        y = apply_patch_mask(y, mask, patch, fill)
    return y.clone() if is_scratch(y) else y  # the returned view never aliases a scratch buffer
