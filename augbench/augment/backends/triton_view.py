"""The fused backend's Triton path: a whole view in one kernel (plus a separable pass for blur).

`run(x, plan, dtype)` applies a `fused.Plan` (parameters already sampled, gates folded in) to a
uint8 or float batch. One program computes a tile of BLOCK output pixels (all three channels) of
one image, in registers:

  bilinear sample of the source through the sample's affine map (crop + flip + resize, the uint8
  -> float conversion) -> the per-pixel ops in policy order (colour jitter with its four steps in
  the batch's or the sample's order, grayscale, solarize, normalize) -> patch mask -> one store.

Launches per view: 1 (no blur). Blur splits the ops in two: the head writes a float32 buffer, a
horizontal pass writes a second one, and the tail kernel starts with the vertical pass (3 in all).
Contrast blends with the mean gray value of the image *at that step*: free when one program
holds the whole image (<= 1024 px, e.g. 32 x 32); for larger images a stats launch first runs
the ops up to contrast and writes per-tile partial sums, which the main launch adds up
(deterministic: no atomics). Nothing reads a tensor back to the host.

Formulas and rounding follow `fused_torch` (same float32 source coordinates, Kornia's HSV hue),
so the two paths agree to float rounding (tests/test_kernel.py, under TRITON_INTERPRET=1 on CPU).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

OP_CODES = {"color_jitter": 1, "grayscale": 2, "solarize": 3, "normalize": 4}
MAX_BLOCK = 1024
# the ops this kernel runs: the resampling (crop, resize, flip), OP_CODES, blur (its own pass), the mask
COVERS = frozenset({"random_resized_crop", "resize", "horizontal_flip", "gaussian_blur", "patch_mask", *OP_CODES})


@triton.jit
def _clamp01(v):
    return tl.minimum(tl.maximum(v, 0.0), 1.0)


@triton.jit
def _gray(r, g, b):
    return 0.299 * r + 0.587 * g + 0.114 * b


@triton.jit
def _hue(r, g, b, f):
    """Kornia's RGB -> HSV -> RGB with h shifted by f turns (see fused_torch.hue)."""
    mx = tl.maximum(r, tl.maximum(g, b))
    mn = tl.minimum(r, tl.minimum(g, b))
    d = mx - mn
    h6 = tl.where(r == mx, g - b, tl.where(g == mx, b - r + 2.0 * d, r - g + 4.0 * d))
    h6 = h6 / (d + 1e-12) + 6.0 * f
    h6 = h6 - tl.floor(h6 * (1.0 / 6.0)) * 6.0
    r2 = mx - d * _clamp01(tl.abs(tl.abs(h6 - 3.0) - 3.0) - 1.0)
    g2 = mx - d * _clamp01(tl.abs(tl.abs(h6 - 5.0) - 3.0) - 1.0)
    b2 = mx - d * _clamp01(tl.abs(tl.abs(h6 - 1.0) - 3.0) - 1.0)
    return r2, g2, b2


@triton.jit
def _jitter_step(s, r, g, b, bi, on, fb, fc, fs, fh, valid, part, tile, NT, n_pix,
                 STATS: tl.constexpr, NTP: tl.constexpr):
    """Step s (0 brightness, 1 contrast, 2 saturation, 3 hue), uniform in the program; a sample
    whose gate is off gets the identity factor."""
    if s == 0:
        f = tl.where(on, tl.load(fb + bi), 1.0)
        r, g, b = _clamp01(r * f), _clamp01(g * f), _clamp01(b * f)
    elif s == 1:
        gsum = tl.sum(tl.where(valid, _gray(r, g, b), 0.0), axis=0)
        if STATS:  # the stats launch: record this tile's share of the mean, change nothing
            tl.store(part + bi * NT + tile, gsum)
        else:
            if NTP > 1:  # several tiles per image: the stats launch's partial sums
                k = tl.arange(0, NTP)
                gsum = tl.sum(tl.load(part + bi * NT + k, mask=k < NT, other=0.0), axis=0)
            m = gsum / n_pix
            f = tl.where(on, tl.load(fc + bi), 1.0)
            r, g, b = _clamp01(r * f + m * (1 - f)), _clamp01(g * f + m * (1 - f)), _clamp01(b * f + m * (1 - f))
    elif s == 2:
        f = tl.where(on, tl.load(fs + bi), 1.0)
        gr = _gray(r, g, b) * (1 - f)
        r, g, b = _clamp01(r * f + gr), _clamp01(g * f + gr), _clamp01(b * f + gr)
    else:
        r, g, b = _hue(r, g, b, tl.where(on, tl.load(fh + bi), 0.0))
    return r, g, b


@triton.jit
def _pixel_op(CODE: tl.constexpr, r, g, b, bi, jon, fb, fc, fs, fh, order, o0, o1, o2, o3, gray, thr, son,
              m0, m1, m2, is0, is1, is2, valid, part, tile, NT, n_pix,
              ORDER_PER_SAMPLE: tl.constexpr, STATS: tl.constexpr, NTP: tl.constexpr):
    if CODE == 1:  # colour jitter
        if ORDER_PER_SAMPLE:
            o0 = tl.load(order + bi * 4)
            o1 = tl.load(order + bi * 4 + 1)
            o2 = tl.load(order + bi * 4 + 2)
            o3 = tl.load(order + bi * 4 + 3)
        on = tl.load(jon + bi) != 0
        r, g, b = _jitter_step(o0, r, g, b, bi, on, fb, fc, fs, fh, valid, part, tile, NT, n_pix, STATS, NTP)
        r, g, b = _jitter_step(o1, r, g, b, bi, on, fb, fc, fs, fh, valid, part, tile, NT, n_pix, STATS, NTP)
        r, g, b = _jitter_step(o2, r, g, b, bi, on, fb, fc, fs, fh, valid, part, tile, NT, n_pix, STATS, NTP)
        r, g, b = _jitter_step(o3, r, g, b, bi, on, fb, fc, fs, fh, valid, part, tile, NT, n_pix, STATS, NTP)
    elif CODE == 2:  # grayscale where the sample's gate is on
        on = tl.load(gray + bi) != 0
        gr = _gray(r, g, b)
        r, g, b = tl.where(on, gr, r), tl.where(on, gr, g), tl.where(on, gr, b)
    elif CODE == 3:  # solarize where the sample's gate is on
        t = tl.where(tl.load(son + bi) != 0, tl.load(thr + bi), 2.0)  # values lie in [0, 1]: 2 never hits
        r, g, b = tl.where(r >= t, 1.0 - r, r), tl.where(g >= t, 1.0 - g, g), tl.where(b >= t, 1.0 - b, b)
    elif CODE == 4:  # normalize
        r, g, b = (r - m0) * is0, (g - m1) * is1, (b - m2) * is2
    return r, g, b


@triton.jit
def _bilinear(p, i00, i01, i10, i11, w00, w01, w10, w11, valid):
    return (w00 * tl.load(p + i00, mask=valid, other=0).to(tl.float32)
            + w01 * tl.load(p + i01, mask=valid, other=0).to(tl.float32)
            + w10 * tl.load(p + i10, mask=valid, other=0).to(tl.float32)
            + w11 * tl.load(p + i11, mask=valid, other=0).to(tl.float32))


@triton.jit
def _tap(i: tl.constexpr, K: tl.constexpr, sig, on):
    """Tap i of the sample's normalised Gaussian (sigma `sig`); the identity kernel if not `on`."""
    norm = sig * 0.0
    for j in tl.static_range(K):
        norm += tl.exp(-((j - K // 2) * (j - K // 2)) / (2.0 * sig * sig))
    w = tl.where(on, tl.exp(-((i - K // 2) * (i - K // 2)) / (2.0 * sig * sig)) / norm, 0.0)
    if i == K // 2:
        w = tl.where(on, w, 1.0)
    return w


@triton.jit
def _reflect(i, n):
    i = tl.where(i < 0, -i, i)
    return tl.where(i > n - 1, 2 * (n - 1) - i, i)


@triton.jit(do_not_specialize=["o0", "o1", "o2", "o3"])
def _view_kernel(src, dst, part, box, flip, jon, fb, fc, fs, fh, order, gray, thr, son, mask, sig, bon,
                 o0, o1, o2, o3, m0, m1, m2, is0, is1, is2, fill, src_scale,
                 H, W, OH, OW, NT, GH, GW, PATCH,
                 SRC: tl.constexpr, K: tl.constexpr, OP0: tl.constexpr, OP1: tl.constexpr,
                 OP2: tl.constexpr, OP3: tl.constexpr, ORDER_PER_SAMPLE: tl.constexpr, STATS: tl.constexpr,
                 MASK: tl.constexpr, FLIP: tl.constexpr, NTP: tl.constexpr, BLOCK: tl.constexpr):
    bi = tl.program_id(0).to(tl.int64)
    tile = tl.program_id(1)
    n_pix = OH * OW
    offs = tile * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n_pix
    oy = offs // OW
    ox = offs % OW
    if SRC == 0:  # crop + flip + resize: bilinear (align_corners=True) through the sample's box
        x0 = tl.load(box + bi * 4)
        y0 = tl.load(box + bi * 4 + 1)
        sx = (tl.load(box + bi * 4 + 2) - 1) / tl.maximum(OW - 1, 1).to(tl.float32)
        sy = (tl.load(box + bi * 4 + 3) - 1) / tl.maximum(OH - 1, 1).to(tl.float32)
        jx = ox.to(tl.float32)
        if FLIP:
            jx = tl.where(tl.load(flip + bi) != 0, (OW - 1) - jx, jx)
        fx = x0 + jx * sx
        fy = y0 + oy.to(tl.float32) * sy
        ix = tl.minimum(tl.maximum(tl.floor(fx), 0.0), W - 1.0)
        iy = tl.minimum(tl.maximum(tl.floor(fy), 0.0), H - 1.0)
        ax = fx - ix
        ay = fy - iy
        ix0 = ix.to(tl.int32)
        iy0 = iy.to(tl.int32)
        ix1 = tl.minimum(ix0 + 1, W - 1)
        iy1 = tl.minimum(iy0 + 1, H - 1)
        base = src + bi * 3 * H * W
        i00, i01, i10, i11 = iy0 * W + ix0, iy0 * W + ix1, iy1 * W + ix0, iy1 * W + ix1
        w00, w01, w10, w11 = (1 - ay) * (1 - ax), (1 - ay) * ax, ay * (1 - ax), ay * ax
        r = _bilinear(base, i00, i01, i10, i11, w00, w01, w10, w11, valid) * src_scale
        g = _bilinear(base + H * W, i00, i01, i10, i11, w00, w01, w10, w11, valid) * src_scale
        b = _bilinear(base + 2 * H * W, i00, i01, i10, i11, w00, w01, w10, w11, valid) * src_scale
    else:  # the vertical half of the separable blur, reading the horizontal pass's buffer
        base = src + bi * 3 * n_pix
        s = tl.load(sig + bi)
        on = tl.load(bon + bi) != 0
        r = tl.zeros([BLOCK], tl.float32)
        g = tl.zeros([BLOCK], tl.float32)
        b = tl.zeros([BLOCK], tl.float32)
        for i in tl.static_range(K):
            w = _tap(i, K, s, on)
            o = _reflect(oy + (i - K // 2), OH) * OW + ox
            r += w * tl.load(base + o, mask=valid, other=0.0)
            g += w * tl.load(base + n_pix + o, mask=valid, other=0.0)
            b += w * tl.load(base + 2 * n_pix + o, mask=valid, other=0.0)
    r, g, b = _pixel_op(OP0, r, g, b, bi, jon, fb, fc, fs, fh, order, o0, o1, o2, o3, gray, thr, son, m0, m1, m2,
                        is0, is1, is2, valid, part, tile, NT, n_pix, ORDER_PER_SAMPLE, STATS, NTP)
    r, g, b = _pixel_op(OP1, r, g, b, bi, jon, fb, fc, fs, fh, order, o0, o1, o2, o3, gray, thr, son, m0, m1, m2,
                        is0, is1, is2, valid, part, tile, NT, n_pix, ORDER_PER_SAMPLE, STATS, NTP)
    r, g, b = _pixel_op(OP2, r, g, b, bi, jon, fb, fc, fs, fh, order, o0, o1, o2, o3, gray, thr, son, m0, m1, m2,
                        is0, is1, is2, valid, part, tile, NT, n_pix, ORDER_PER_SAMPLE, STATS, NTP)
    r, g, b = _pixel_op(OP3, r, g, b, bi, jon, fb, fc, fs, fh, order, o0, o1, o2, o3, gray, thr, son, m0, m1, m2,
                        is0, is1, is2, valid, part, tile, NT, n_pix, ORDER_PER_SAMPLE, STATS, NTP)
    if not STATS:
        if MASK:  # patch mask (pixel mode); a ragged border outside the patch grid is never masked
            py = oy // PATCH
            px = ox // PATCH
            hit = tl.load(mask + bi * GH * GW + py * GW + px, mask=valid & (py < GH) & (px < GW), other=0) != 0
            r, g, b = tl.where(hit, fill, r), tl.where(hit, fill, g), tl.where(hit, fill, b)
        out = dst + bi * 3 * n_pix + offs
        ty = dst.dtype.element_ty
        tl.store(out, r.to(ty), mask=valid)
        tl.store(out + n_pix, g.to(ty), mask=valid)
        tl.store(out + 2 * n_pix, b.to(ty), mask=valid)


@triton.jit
def _blur_h_kernel(src, dst, sig, bon, OH, OW, K: tl.constexpr, BLOCK: tl.constexpr):
    """The horizontal half of the separable blur (reflect padding), float32 -> float32."""
    bi = tl.program_id(0).to(tl.int64)
    n_pix = OH * OW
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    valid = offs < n_pix
    oy = offs // OW
    ox = offs % OW
    base = src + bi * 3 * n_pix
    out = dst + bi * 3 * n_pix + offs
    s = tl.load(sig + bi)
    on = tl.load(bon + bi) != 0
    for c in tl.static_range(3):
        acc = tl.zeros([BLOCK], tl.float32)
        for i in tl.static_range(K):
            o = oy * OW + _reflect(ox + (i - K // 2), OW)
            acc += _tap(i, K, s, on) * tl.load(base + c * n_pix + o, mask=valid, other=0.0)
        tl.store(out + c * n_pix, acc, mask=valid)


def _segments(steps):
    """Split the per-pixel ops at the blur: (head ops, the blur's step or None, tail ops)."""
    names = [op for op, _ in steps]
    if "gaussian_blur" not in names:
        return steps, None, []
    i = names.index("gaussian_blur")
    return steps[:i], steps[i][1], steps[i + 1:]


def _u8(gate: torch.Tensor) -> torch.Tensor:
    return gate.contiguous().view(torch.uint8)  # a bool tensor as bytes: no copy


def _launch(src, dst, plan, ops, *, src_kind: int, blur, use_mask: bool, part, stats: bool, block: int):
    B = src.shape[0]
    OH, OW = plan.size
    nt = triton.cdiv(OH * OW, block)
    d = dict(ops)
    dummy = plan.box
    jit = d.get("color_jitter")
    jon = fb = fc = fs = fh = order = dummy
    o = [0, 0, 0, 0]
    per_sample = False
    if jit is not None:
        jon = _u8(jit["gate"])
        fb, fc, fs, fh = (f.float().contiguous() for f in jit["factors"])  # no-ops for float32 (B,)
        per_sample = jit["order"].dim() == 2
        if per_sample:
            order = jit["order"].to(device=src.device, dtype=torch.int32).contiguous()
        else:
            o = [int(i) for i in jit["order"].tolist()]  # a CPU tensor (see fused.sample_params): no sync
    gray = _u8(d["grayscale"]["gate"]) if "grayscale" in d else dummy
    thr, son = ((d["solarize"]["threshold"].float().contiguous(), _u8(d["solarize"]["gate"])) if "solarize" in d
                else (dummy, dummy))
    sig, bon = (blur["sigma"].float().contiguous(), _u8(blur["gate"])) if blur is not None else (dummy, dummy)
    mean, std = (d["normalize"]["mean"], d["normalize"]["std"]) if "normalize" in d else ((0.0,) * 3, (1.0,) * 3)
    mask, patch, fill = plan.mask if use_mask and plan.mask is not None else (None, 1, 0.0)
    gh, gw = OH // patch, OW // patch
    codes = [OP_CODES[op] for op, _ in ops] + [0] * (4 - len(ops))
    flip = plan.flip.contiguous().view(torch.uint8) if (plan.flip is not None and src_kind == 0) else None
    H, W = src.shape[-2:]
    _view_kernel[(B, nt)](
        src, dst, part if part is not None else dummy, plan.box, flip if flip is not None else dummy,
        jon, fb, fc, fs, fh, order, gray, thr, son, _u8(mask) if mask is not None else dummy, sig, bon,
        *o, *mean, *(1.0 / s for s in std), float(fill), 1 / 255 if src.dtype == torch.uint8 else 1.0,
        H, W, OH, OW, nt, gh, gw, patch,
        SRC=src_kind, K=blur["k"] if blur is not None else 1, OP0=codes[0], OP1=codes[1],
        OP2=codes[2], OP3=codes[3], ORDER_PER_SAMPLE=per_sample, STATS=stats, MASK=mask is not None,
        FLIP=flip is not None, NTP=triton.next_power_of_2(nt) if nt > 1 else 1, BLOCK=block)


def _segment(src, dst, plan, ops, *, src_kind: int, blur, use_mask: bool, block: int):
    """One kernel over `ops`, after a stats launch when contrast needs a mean over several tiles."""
    OH, OW = plan.size
    nt = triton.cdiv(OH * OW, block)
    names = [op for op, _ in ops]
    part = None
    if "color_jitter" in names and nt > 1:
        part = torch.empty(src.shape[0], nt, dtype=torch.float32, device=src.device)
        _launch(src, dst, plan, ops[:names.index("color_jitter") + 1], src_kind=src_kind, blur=blur,
                use_mask=False, part=part, stats=True, block=block)
    _launch(src, dst, plan, ops, src_kind=src_kind, blur=blur, use_mask=use_mask, part=part, stats=False,
            block=block)


def run(x: torch.Tensor, plan, dtype: torch.dtype, out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a `fused.Plan` to the batch `x` (uint8 or float in [0, 1]); writes `out` if given."""
    B = x.shape[0]
    OH, OW = plan.size
    x = x.contiguous()
    plan.box = plan.box.float().contiguous()  # no-ops for the engine's own parameters
    if out is None:
        out = torch.empty(B, 3, OH, OW, dtype=dtype, device=x.device)
    block = min(MAX_BLOCK, triton.next_power_of_2(OH * OW))
    head, blur, tail = _segments(plan.steps)
    if blur is None:
        _segment(x, out, plan, head, src_kind=0, blur=None, use_mask=True, block=block)
        return out
    tmp = torch.empty(B, 3, OH, OW, dtype=torch.float32, device=x.device)
    _segment(x, tmp, plan, head, src_kind=0, blur=None, use_mask=False, block=block)
    tmp2 = torch.empty_like(tmp)
    _blur_h_kernel[(B, triton.cdiv(OH * OW, block))](tmp, tmp2, blur["sigma"].float().contiguous(), _u8(blur["gate"]),
                                                     OH, OW, K=blur["k"], BLOCK=block)
    _segment(tmp2, out, plan, tail, src_kind=1, blur=blur, use_mask=True, block=block)
    return out
