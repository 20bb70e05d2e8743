"""The fast path: every op of a policy applied to the whole batch at once, with per-sample
parameters, on the input's device.

Sampling is separate from application (Kornia style): `sample_params` draws every random number
for a batch from one seeded `torch.Generator` on the input's device, `apply` only computes, so
explicit parameters can be replayed. Nothing in either reads a tensor value back to the host
(no `.item()`, `.tolist()` or Python branch on tensor values): p-gates and choices are
`torch.where` masks, so a CUDA stream never stalls.

Conventions (held against Kornia 0.9 by tests/test_backends.py):
- crop boxes are drawn as torchvision/Kornia `RandomResizedCrop` (10 tries of area and
  log-ratio, the first that fits, else the whole image / ratio-limited fallback), with integer
  pixel boxes; resizing is bilinear with `align_corners=True` (Kornia's default), so output
  pixel j reads source x0 + j (w - 1) / (W_out - 1). Crop, resize, flip and the uint8 -> float
  conversion are ONE separable resampling `R_y @ x @ R_x^T` (flip = reversed R_x rows).
  Geometry runs first whatever its place in the policy: every other op commutes with a flip,
  and the colour statistics are meant to be taken on the crop.
- colour jitter uses torchvision's formulas (Kornia's `ColorJitter`, not `ColorJiggle`); hue
  is in turns of the colour wheel. Order of the four steps: `jitter_order="batch"` (default)
  draws ONE random order per call and view, like Kornia 0.9 (drawn from a CPU generator so it
  costs no device sync); `"sample"` draws one per image like torchvision (4x the jitter
  cost: every step is computed at every stage and selected); a tuple such as (0, 1, 2, 3)
  fixes it (indices into brightness, contrast, saturation, hue).
- p-gates are per sample for every op (Kornia gates `RandomResizedCrop` per batch; a sample
  whose crop gate is off gets the whole image resized).
- patch_mask always runs last, after normalize, whatever its place in the policy.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import torch.nn.functional as F

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
JITTER_KEYS = ("brightness", "contrast", "saturation", "hue")
Ops = Sequence[tuple[str, dict[str, Any]]]
Params = dict[str, dict[str, torch.Tensor]]


def _uniform(shape, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=gen, device=device) * (hi - lo) + lo


def _gate(b: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(b, generator=gen, device=device) < p


# ---------------------------------------------------------------------- sampling
def sample_crop(b: int, hw: tuple[int, int], scale, ratio, gen, device) -> torch.Tensor:
    """(B, 4) boxes x0, y0, w, h in whole pixels, torchvision's RandomResizedCrop.get_params
    vectorised over all 10 tries, Kornia's rounding and fallback."""
    H, W = hw
    area = _uniform((b, 10), scale[0], scale[1], gen, device) * (H * W)
    log_r = _uniform((b, 10), math.log(ratio[0]), math.log(ratio[1]), gen, device)
    ar = torch.exp(log_r)
    w = torch.sqrt(area * ar).round()
    h = torch.sqrt(area / ar).round()
    ok = (w > 0) & (w <= W) & (h > 0) & (h <= H)
    first = (ok.cumsum(1) == 1) & ok  # one-hot of the first try that fits
    any_ok = ok.any(1)
    in_ratio = W / H
    if in_ratio < min(ratio):
        wf, hf = W, math.floor(round(W / min(ratio)))
    elif in_ratio > max(ratio):
        wf, hf = math.floor(round(H * max(ratio))), H
    else:
        wf, hf = W, H
    w = torch.where(any_ok, (w * first).sum(1), torch.full_like(area[:, 0], wf)).clamp(1, W)
    h = torch.where(any_ok, (h * first).sum(1), torch.full_like(area[:, 0], hf)).clamp(1, H)
    x0 = (torch.rand(b, generator=gen, device=device) * (W - w + 1)).floor()
    y0 = (torch.rand(b, generator=gen, device=device) * (H - h + 1)).floor()
    return torch.stack([x0, y0, w, h], 1)


def full_box(b: int, hw: tuple[int, int], device) -> torch.Tensor:
    H, W = hw
    box = torch.zeros(b, 4, device=device)
    box[:, 2], box[:, 3] = W, H  # scalar fills: no host -> device copy
    return box


def sample_params(ops: Ops, x_shape: Sequence[int], gen: torch.Generator, device, *,
                  mask_mode: str = "pixel", jitter_order: Any = "batch",
                  order_gen: torch.Generator | None = None) -> Params:
    """Every random number one view of a batch needs, per op (see module docstring)."""
    b, _, H, W = x_shape
    out: Params = {}
    for op, p in ops:
        if op == "random_resized_crop":
            box = sample_crop(b, (H, W), p["scale"], p["ratio"], gen, device)
            applied = _gate(b, p["p"], gen, device)
            out[op] = {"box": torch.where(applied[:, None], box, full_box(b, (H, W), device)), "applied": applied}
        elif op == "resize":
            out[op] = {"box": full_box(b, (H, W), device)}
        elif op == "horizontal_flip":
            out[op] = {"applied": _gate(b, p["p"], gen, device)}
        elif op == "color_jitter":
            d = {k: _uniform(b, *p[k], gen, device) for k in JITTER_KEYS}
            d["applied"] = _gate(b, p["p"], gen, device)
            if jitter_order == "sample":
                d["order"] = torch.rand(b, 4, generator=gen, device=device).argsort(1)
            elif jitter_order == "batch":
                d["order"] = torch.randperm(4, generator=order_gen)  # CPU: iterating it costs no sync
            else:
                d["order"] = torch.tensor(list(jitter_order), dtype=torch.long)
            out[op] = d
        elif op == "grayscale":
            out[op] = {"applied": _gate(b, p["p"], gen, device)}
        elif op == "gaussian_blur":
            out[op] = {"sigma": _uniform(b, *p["sigma"], gen, device), "applied": _gate(b, p["p"], gen, device)}
        elif op == "solarize":
            out[op] = {"threshold": torch.full((b,), p["threshold"], device=device),
                       "applied": _gate(b, p["p"], gen, device)}
        elif op == "patch_mask":
            oh, ow = output_hw(ops, (H, W))
            n = (oh // p["patch_size"]) * (ow // p["patch_size"])
            n_mask = round(p["ratio"] * n)
            ids = torch.rand(b, n, generator=gen, device=device).argsort(1)
            applied = _gate(b, p["p"], gen, device)
            mask = torch.zeros(b, n, dtype=torch.bool, device=device).scatter_(1, ids[:, :n_mask], True)
            d = {"mask": mask & applied[:, None], "applied": applied}
            if mask_mode == "token":
                d["keep_idx"] = ids[:, n_mask:].sort(1).values
            out[op] = d
    return out


def output_hw(ops: Ops, hw: tuple[int, int]) -> tuple[int, int]:
    for op, p in ops:
        if op in ("random_resized_crop", "resize"):
            return tuple(p["size"])
    return hw


# ---------------------------------------------------------------------- application
def _interp_matrix(start: torch.Tensor, length: torch.Tensor, n_out: int, n_in: int,
                   flip: torch.Tensor | None) -> torch.Tensor:
    """(B, n_out, n_in) bilinear weights (align_corners=True) reading [start, start+length)."""
    j = torch.arange(n_out, device=start.device, dtype=start.dtype).expand(start.shape[0], n_out)
    if flip is not None:
        j = torch.where(flip[:, None], n_out - 1 - j, j)
    step = (length - 1) / max(n_out - 1, 1)
    src = start[:, None] + j * step[:, None]
    i = torch.arange(n_in, device=start.device, dtype=start.dtype)
    return (1 - (src[:, :, None] - i).abs()).clamp_(min=0)  # the hat function = bilinear weights


def resample(x: torch.Tensor, box: torch.Tensor, flip: torch.Tensor | None, size: tuple[int, int],
             dtype: torch.dtype) -> torch.Tensor:
    """Crop `box` (x0, y0, w, h), mirror where `flip`, resize to `size`, to float in [0, 1]."""
    H, W = x.shape[-2:]
    scale = 1 / 255 if x.dtype == torch.uint8 else 1.0
    box = box.to(dtype)
    ry = _interp_matrix(box[:, 1], box[:, 3], size[0], H, None) * scale
    rx = _interp_matrix(box[:, 0], box[:, 2], size[1], W, flip)
    xf = x.to(dtype)
    if H * W <= 96 * 96 or x.device.type != "cpu":
        # two batched matmuls beat grid_sample's gather on CPU and are exact bilinear
        b, c = x.shape[:2]
        oh, ow = size
        y = torch.bmm(xf.view(b, c * H, W), rx.transpose(1, 2))  # columns: (b, cH, W')
        y = y.view(b, c, H, ow).transpose(1, 2).reshape(b, H, c * ow)
        y = torch.bmm(ry, y)  # rows: (b, H', cW')
        return y.view(b, oh, c, ow).permute(0, 2, 1, 3).contiguous()
    # large images on CPU: the dense matmul's O(H W^2) loses to grid_sample's O(H' W')
    return _grid_resample(xf, box, flip, size) * scale


def _grid_resample(x: torch.Tensor, box: torch.Tensor, flip, size) -> torch.Tensor:
    b, c, H, W = x.shape
    x0, y0, w, h = box.unbind(1)
    ax = (w - 1) / max(W - 1, 1)
    if flip is not None:
        ax = torch.where(flip, -ax, ax)
    theta = torch.zeros(b, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = ax
    theta[:, 0, 2] = (2 * x0 + w - 1) / max(W - 1, 1) - 1
    theta[:, 1, 1] = (h - 1) / max(H - 1, 1)
    theta[:, 1, 2] = (2 * y0 + h - 1) / max(H - 1, 1) - 1
    grid = F.affine_grid(theta, [b, c, *size], align_corners=True)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=True)


def const(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    """A small constant on `like`'s device built from scalar fills: torch.tensor(list, device=cuda)
    is a blocking host -> device copy, i.e. a sync in the hot path."""
    return torch.stack([torch.full((), float(v), dtype=like.dtype, device=like.device) for v in values])


def _b(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.to(x.dtype).view(-1, 1, 1, 1)


def gray(x: torch.Tensor) -> torch.Tensor:
    w = const(GRAY_WEIGHTS, x).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def brightness(x, f):
    return (x * _b(f, x)).clamp_(0, 1)


def contrast(x, f):
    # the mean of the gray image is the gray-weighted sum of the channel means: no gray image needed
    w = const(GRAY_WEIGHTS, x)
    m = (x.mean((-2, -1)) @ w).view(-1, 1, 1, 1)
    f = _b(f, x)
    return (x * f).add_(m * (1 - f)).clamp_(0, 1)


def saturation(x, f):
    f = _b(f, x)
    return (x * f).add_(gray(x).mul_(1 - f)).clamp_(0, 1)


def hue(x, f):
    """Shift hue by f turns: RGB -> HSV (Kornia's formulas) -> RGB. Max and min are unchanged by
    a hue rotation, so only h is computed (no argmax: slow on CPU), and each channel is
    c = v - (v - min) clamp(2 - d(6h, k), 0, 1), d the circular distance mod 6, k = 3, 5, 1 (R, G, B)."""
    r, g, b = x.unbind(1)
    mx, mn = x.amax(1), x.amin(1)
    delta = mx - mn
    # h in sixths of a turn; ties go to r, then g, as in Kornia's rgb_to_hsv. A gray pixel has
    # numerator 0, so a tiny epsilon replaces Kornia's delta == 0 guard (one pass fewer).
    h6 = torch.where(r == mx, g - b, torch.where(g == mx, b - r + 2 * delta, r - g + 4 * delta))
    h6 = h6.div_(delta + 1e-12).add_(6 * f.to(x.dtype).view(-1, 1, 1))
    h6 = h6.sub_(torch.floor(h6 * (1 / 6)).mul_(6))  # [0, 6)
    out = torch.empty_like(x)
    for c, centre in enumerate((3.0, 5.0, 1.0)):  # per plane: no (B, 3, H, W) temporaries
        # clamp(2 - circular distance of h6 to the channel's centre, 0, 1), no mod needed
        t = (h6 - centre).abs_().sub_(3).abs_().sub_(1).clamp_(0, 1)
        torch.sub(mx, t.mul_(delta), out=out[:, c])
    return out


STEPS = (brightness, contrast, saturation, hue)


def color_jitter(x: torch.Tensor, d: dict[str, torch.Tensor]) -> torch.Tensor:
    y = x  # in [0, 1] already: check_batch rejects anything else, resampling is a convex combination
    factors = [d[k] for k in JITTER_KEYS]
    order = d["order"]
    if order.dim() == 2:  # one order per sample: run every step at every stage and select
        for stage in range(4):
            which = order[:, stage].view(-1, 1, 1, 1)
            y = sum(torch.where(which == i, STEPS[i](y, factors[i]), 0.0) for i in range(4))
    else:
        for i in order.tolist():  # a CPU tensor (see sample_params): no device sync
            y = STEPS[i](y, factors[i])
    return torch.where(d["applied"].view(-1, 1, 1, 1), y, x)


def gaussian_kernel1d(sigma: torch.Tensor, k: int) -> torch.Tensor:
    xs = torch.arange(k, device=sigma.device, dtype=sigma.dtype) - k // 2
    w = torch.exp(-(xs**2) / (2 * sigma[:, None] ** 2))
    return w / w.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, applied: torch.Tensor, k: int) -> torch.Tensor:
    """Per-sample sigma as a separable grouped conv, reflect padding (Kornia's default); a sample
    whose gate is off gets the identity kernel, so the batch needs no masking afterwards."""
    b, c, H, W = x.shape
    w = gaussian_kernel1d(sigma.to(x.dtype), k)
    delta = torch.zeros(k, dtype=x.dtype, device=x.device)
    delta[k // 2] = 1
    w = torch.where(applied[:, None], w, delta).repeat_interleave(c, 0)  # (B*C, k)
    r = k // 2
    y = F.pad(x.reshape(1, b * c, H, W), (r, r, r, r), mode="reflect")
    y = F.conv2d(y, w.view(b * c, 1, 1, k), groups=b * c)
    y = F.conv2d(y, w.view(b * c, 1, k, 1), groups=b * c)
    return y.view(b, c, H, W)


def solarize(x: torch.Tensor, threshold: torch.Tensor, applied: torch.Tensor) -> torch.Tensor:
    hit = (x >= _b(threshold, x)) & applied.view(-1, 1, 1, 1)
    return torch.where(hit, 1 - x, x)


def apply_patch_mask(x: torch.Tensor, mask: torch.Tensor, patch: int, fill: float) -> torch.Tensor:
    b, _, H, W = x.shape
    gh, gw = H // patch, W // patch
    m = mask.view(b, 1, gh, 1, gw, 1).expand(b, 1, gh, patch, gw, patch).reshape(b, 1, gh * patch, gw * patch)
    m = F.pad(m, (0, W - gw * patch, 0, H - gh * patch))  # a ragged border is never masked
    return x.masked_fill(m, fill)


def patch_mask_like_fused(y: torch.Tensor, x_shape, ops: Ops, gen: torch.Generator, mask_mode: str):
    """The patch mask for views made by another backend: drawn exactly as `sample_params` draws
    it for input shape `x_shape`, applied to `y` in pixel mode. Returns (y, its params)."""
    mask_ops = [(o, p) for o, p in ops if o in ("patch_mask", "random_resized_crop", "resize")]
    pm = sample_params(mask_ops, x_shape, gen, y.device, mask_mode=mask_mode)["patch_mask"]
    if mask_mode == "pixel":
        p = dict(ops)["patch_mask"]
        y = apply_patch_mask(y, pm["mask"], p["patch_size"], p["fill"])
    return y, pm


def apply(x: torch.Tensor, ops: Ops, params: Params, *, dtype: torch.dtype = torch.float32,
          mask_mode: str = "pixel") -> torch.Tensor:
    """One view of the batch `x` (uint8 or float in [0, 1]) with explicit `params`."""
    names = [op for op, _ in ops]
    cfg = dict(ops)
    geo = next((o for o in ("random_resized_crop", "resize") if o in names), None)
    flip = params["horizontal_flip"]["applied"] if "horizontal_flip" in names else None
    if geo is not None or flip is not None:
        box = params[geo]["box"] if geo else full_box(x.shape[0], x.shape[-2:], x.device)
        y = resample(x, box, flip, output_hw(ops, tuple(x.shape[-2:])), dtype)
    else:
        y = x.to(dtype) / 255 if x.dtype == torch.uint8 else x.to(dtype)
    for op in names:
        p, d = cfg[op], params.get(op)
        if op == "color_jitter":
            y = color_jitter(y, d)
        elif op == "grayscale":
            y = torch.where(d["applied"].view(-1, 1, 1, 1), gray(y).expand_as(y), y)
        elif op == "gaussian_blur":
            y = gaussian_blur(y, d["sigma"], d["applied"], p["kernel_size"])
        elif op == "solarize":
            y = solarize(y, d["threshold"], d["applied"])
        elif op == "normalize":
            mean, std = const(p["mean"], y).view(1, 3, 1, 1), const(p["std"], y).view(1, 3, 1, 1)
            y = (y - mean) / std
    if "patch_mask" in names and mask_mode == "pixel":
        p = cfg["patch_mask"]
        y = apply_patch_mask(y, params["patch_mask"]["mask"], p["patch_size"], p["fill"])
    return y
