"""The fused backend's CPU kernel (numba): a whole view per image in one compiled loop.

`run(x, plan, dtype)` applies a `fused.Plan` (parameters already sampled) to a uint8 or float
batch on the CPU. Images are spread over threads (`prange`); each image is worked on in its own
slice of the output, which stays in the core's cache (12 KB at 32 px, 600 KB at 224 px):

  bilinear sample of the source through the sample's box (crop + flip + resize, the uint8 ->
  float conversion) -> the per-pixel ops in policy order (colour jitter with its four steps in
  the batch's or the sample's order, grayscale, Gaussian blur as two separable passes, solarize,
  normalize) -> patch mask.

The eager torch path makes dozens of passes over memory and a few hundred op dispatches per call;
this makes one per op over an image in L1/L2 and none per op from Python. p-gates are read
here (the identity where off), as in the Triton kernel. Formulas and float32 rounding follow
`fused_torch` and `triton_view` (same source coordinates, Kornia's HSV hue, blur taps,
reflect padding), so the paths agree to float rounding (tests/test_kernel.py).

numba is optional (`pip install 'augbench[cpu]'`): without it the CPU uses the torch path.
Compiled code is cached on disk (numba's `cache=True`), so a new process starts in about a
second; the first compile of a signature takes longer.
"""
from __future__ import annotations

import math
import types

import numba as nb
import numpy as np
import torch

OP_CODES = {"color_jitter": 1, "grayscale": 2, "solarize": 3, "normalize": 4, "gaussian_blur": 5}
F0, F1, F2 = np.float32(0.0), np.float32(1.0), np.float32(2.0)
GR, GG, GB = np.float32(0.299), np.float32(0.587), np.float32(0.114)
# the ops this kernel runs: the resampling (crop, resize, flip), OP_CODES and the patch mask
COVERS = frozenset({"random_resized_crop", "resize", "horizontal_flip", "patch_mask", *OP_CODES})
SERIAL_BELOW = 8  # images: fewer run on the calling thread (a DataLoader worker's single image)


@nb.njit(inline="always")
def _c01(v):
    return min(max(v, F0), F1)


@nb.njit(inline="always")
def _d(h6, c):
    """The HSV -> RGB weight of a channel centred at c: clamp(||h6 - c| - 3| - 1, 0, 1)."""
    return _c01(abs(abs(h6 - c) - np.float32(3.0)) - F1)


@nb.njit(inline="always")
def _reflect(i, n):
    if i < 0:
        i = -i
    if i > n - 1:
        i = 2 * (n - 1) - i
    return i


@nb.njit(inline="always")
def _taps(start, length, n_out, n_in, flip):
    """Source index pairs and the second one's weight for output 0 .. n_out - 1 reading
    [start, start + length) (mirrored if `flip`): src = start + j (length - 1) / (n_out - 1)."""
    i0 = np.empty(n_out, np.int64)
    i1 = np.empty(n_out, np.int64)
    w = np.empty(n_out, np.float32)
    step = (length - F1) / np.float32(max(n_out - 1, 1))
    for j in range(n_out):
        jj = n_out - 1 - j if flip else j
        f = start + np.float32(jj) * step
        i = min(max(np.int64(np.floor(f)), 0), n_in - 1)
        i0[j] = i
        i1[j] = min(i + 1, n_in - 1)
        w[j] = f - np.float32(i)
    return i0, i1, w


def _body(src, out, tmp, box, flip, codes, fac, jon, order, gray, thr, son, sig, bon, K,
          norm, mask, patch, fill, scale):
    B, _, H, W = src.shape
    OH, OW = out.shape[2], out.shape[3]
    n = OH * OW
    for s in nb.prange(B):
        o = out[s].reshape(3, n)  # this image's slice of the output: the work buffer
        # ---- crop + flip + resize: separable bilinear (align_corners=True), the taps of
        # fused_torch.interp_matrix: source row / column pairs and weights, once per image
        ty0, ty1, wy = _taps(box[s, 1], box[s, 3], OH, H, False)
        tx0, tx1, wx = _taps(box[s, 0], box[s, 2], OW, W, flip[s])
        for c in range(3):  # plain indices, no row views: a view is a refcount, an atomic shared by threads
            for oy in range(OH):
                y0, y1, a = ty0[oy], ty1[oy], wy[oy]
                b0 = F1 - a
                for ox in range(OW):
                    i0, i1, e = tx0[ox], tx1[ox], wx[ox]
                    top = np.float32(src[s, c, y0, i0]) * (F1 - e) + np.float32(src[s, c, y0, i1]) * e
                    bot = np.float32(src[s, c, y1, i0]) * (F1 - e) + np.float32(src[s, c, y1, i1]) * e
                    o[c, oy * OW + ox] = (top * b0 + bot * a) * scale
        # ---- the per-pixel ops, in policy order
        for code in codes:
            if code == 1:  # colour jitter: four steps in the sample's order (one row per sample)
                on = jon[s]
                for k in range(4):
                    step = order[s, k]
                    if step == 0:
                        f = fac[0, s] if on else F1
                        for c in range(3):
                            for p in range(n):
                                o[c, p] = _c01(o[c, p] * f)
                    elif step == 1:  # contrast: blend with the mean gray value at this step
                        f = fac[1, s] if on else F1
                        acc = 0.0
                        for p in range(n):
                            acc += GR * o[0, p] + GG * o[1, p] + GB * o[2, p]
                        m = np.float32(acc / n) * (F1 - f)
                        for c in range(3):
                            for p in range(n):
                                o[c, p] = _c01(o[c, p] * f + m)
                    elif step == 2:  # saturation: blend with the pixel's gray value
                        f = fac[2, s] if on else F1
                        for p in range(n):
                            g = (GR * o[0, p] + GG * o[1, p] + GB * o[2, p]) * (F1 - f)
                            o[0, p] = _c01(o[0, p] * f + g)
                            o[1, p] = _c01(o[1, p] * f + g)
                            o[2, p] = _c01(o[2, p] * f + g)
                    else:  # hue: Kornia's RGB -> HSV -> RGB with h shifted by f turns
                        f6 = np.float32(6.0) * (fac[3, s] if on else F0)
                        for p in range(n):
                            r, g, b = o[0, p], o[1, p], o[2, p]
                            mx = max(r, max(g, b))
                            d = mx - min(r, min(g, b))
                            if r == mx:
                                h = g - b
                            elif g == mx:
                                h = b - r + F2 * d
                            else:
                                h = r - g + np.float32(4.0) * d
                            h = h / (d + np.float32(1e-12)) + f6
                            h = h - np.floor(h * np.float32(1.0 / 6.0)) * np.float32(6.0)
                            o[0, p] = mx - d * _d(h, np.float32(3.0))
                            o[1, p] = mx - d * _d(h, np.float32(5.0))
                            o[2, p] = mx - d * _d(h, F1)
            elif code == 2:  # grayscale where the sample's gate is on
                if gray[s]:
                    for p in range(n):
                        g = GR * o[0, p] + GG * o[1, p] + GB * o[2, p]
                        o[0, p] = g
                        o[1, p] = g
                        o[2, p] = g
            elif code == 3:  # solarize where the sample's gate is on
                if son[s]:
                    t = thr[s]
                    for c in range(3):
                        for p in range(n):
                            if o[c, p] >= t:
                                o[c, p] = F1 - o[c, p]
            elif code == 4:  # normalize
                for c in range(3):
                    m, inv = norm[0, c], norm[1, c]
                    for p in range(n):
                        o[c, p] = (o[c, p] - m) * inv
            elif code == 5 and bon[s]:  # Gaussian blur: separable, reflect padding
                w = np.empty(K, np.float32)
                tot = F0
                for i in range(K):
                    z = np.float32(i - K // 2)
                    w[i] = math.exp(-(z * z) / (F2 * sig[s] * sig[s]))
                    tot += w[i]
                for i in range(K):
                    w[i] /= tot
                t2 = tmp[s]
                r = K // 2
                for c in range(3):  # the tap loop outside, the pixel loop inside
                    for y in range(OH):
                        row = y * OW
                        for x in range(OW):
                            t2[c, y, x] = F0
                        for i in range(K):
                            wi, dx = w[i], i - r
                            lo, hi = max(0, -dx), min(OW, OW - dx)  # x + dx inside the row: no reflection
                            for x in range(lo, hi):
                                t2[c, y, x] += wi * o[c, row + x + dx]
                            for x in range(0, lo):
                                t2[c, y, x] += wi * o[c, row + _reflect(x + dx, OW)]
                            for x in range(hi, OW):
                                t2[c, y, x] += wi * o[c, row + _reflect(x + dx, OW)]
                    for y in range(OH):
                        row = y * OW
                        for x in range(OW):
                            o[c, row + x] = F0
                        for i in range(K):
                            wi, yy = w[i], _reflect(y + i - r, OH)
                            for x in range(OW):
                                o[c, row + x] += wi * t2[c, yy, x]
        # ---- patch mask (pixel mode); a ragged border outside the patch grid is never masked
        if patch > 0:
            gh, gw = OH // patch, OW // patch
            for py in range(gh * patch):
                for px in range(gw * patch):
                    if mask[s, (py // patch) * gw + px // patch]:
                        for c in range(3):
                            o[c, py * OW + px] = fill


def _named(name: str):
    """`_body` under another name: numba's disk cache is keyed by the function's name, so the
    serial and the parallel build must not share one."""
    f = types.FunctionType(_body.__code__, globals(), name)
    f.__qualname__ = name
    return f


_parallel = nb.njit(parallel=True, cache=True, nogil=True)(_named("_body_parallel"))
# prange runs as range: for a few images, and in DataLoader workers (one torch thread), where a
# forked OpenMP pool must not be entered
_serial = nb.njit(cache=True, nogil=True)(_named("_body_serial"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().contiguous().numpy()


def _b1(B: int) -> np.ndarray:
    return np.zeros(B, np.bool_)


def run(x: torch.Tensor, plan, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a `fused.Plan` to the CPU batch `x` (uint8 or float in [0, 1]); writes `out` (float32)
    if given."""
    B = x.shape[0]
    OH, OW = plan.size
    if x.dtype not in (torch.uint8, torch.float32):
        x = x.float()
    work = out if out is not None and out.dtype == torch.float32 else torch.empty(B, 3, OH, OW)
    d = dict(plan.steps)
    codes = np.array([OP_CODES[op] for op, _ in plan.steps], np.int64)
    jit = d.get("color_jitter")
    if jit is not None:
        fac = np.stack([_np(f.float()) for f in jit["factors"]])
        jon, order = _np(jit["gate"]), np.ascontiguousarray(np.broadcast_to(_np(jit["order"].long()), (B, 4)))
    else:
        fac, jon, order = np.ones((4, B), np.float32), _b1(B), np.zeros((B, 4), np.int64)
    gray = _np(d["grayscale"]["gate"]) if "grayscale" in d else _b1(B)
    thr, son = ((_np(d["solarize"]["threshold"].float()), _np(d["solarize"]["gate"])) if "solarize" in d
                else (np.zeros(B, np.float32), _b1(B)))
    blur = d.get("gaussian_blur")
    sig, bon, K = ((_np(blur["sigma"].float()), _np(blur["gate"]), int(blur["k"])) if blur is not None
                   else (np.ones(B, np.float32), _b1(B), 1))
    tmp = np.empty((B, 3, OH, OW) if blur is not None else (1, 3, 1, 1), np.float32)
    nm = d.get("normalize")
    norm = (np.array([nm["mean"], [1 / s for s in nm["std"]]], np.float32) if nm is not None
            else np.array([[0.0] * 3, [1.0] * 3], np.float32))
    mask, patch, fill = plan.mask if plan.mask is not None else (torch.zeros(1, 1, dtype=torch.bool), 0, 0.0)
    flip = _np(plan.flip) if plan.flip is not None else _b1(B)
    scale = np.float32(1 / 255 if x.dtype == torch.uint8 else 1.0)
    kernel = _serial if B < SERIAL_BELOW or torch.get_num_threads() == 1 else _parallel
    if kernel is _parallel:
        nb.set_num_threads(max(1, min(torch.get_num_threads(), nb.config.NUMBA_NUM_THREADS)))
    kernel(_np(x), work.numpy(), tmp, _np(plan.box.float()), flip, codes, fac, jon, order, gray, thr, son,
           sig, bon, K, norm, _np(mask), int(patch), np.float32(fill), scale)
    if out is not None and out is not work:
        return out.copy_(work)
    return work if dtype == torch.float32 else work.to(dtype)
