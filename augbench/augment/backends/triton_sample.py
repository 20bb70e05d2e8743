"""A view's parameters on CUDA in a handful of launches: one `torch.rand(B, K)` draw, the crop's
ten tries in one Triton kernel, the other values and gates as a gather + one arithmetic op.

`fused.sample_params` draws op by op (~80 small launches per view for SimCLR's policy); at
32 px, batch 512, the host's launch cost of those ops would cap the engine far below its
kernel. Same distributions and output format as `fused.sample_params` (its crop maths is
`ops.crop.crop_from_uniforms`; tests/test_kernel.py holds the kernel to it), another random stream:
used on CUDA only, so the CPU stream (and every CPU result) is unchanged.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
import triton
import triton.language as tl

from augbench.augment.backends.fused_torch import const
from augbench.augment.ops import output_hw
from augbench.augment.ops.color_jitter import JITTER_KEYS, jitter_orders
from augbench.augment.ops.crop import crop_from_uniforms, fallback_size, full_box
from augbench.augment.ops.mask import sample_patch_mask

BLOCK = 128
# the ops this sampler draws for (any other op: fused.sample_params draws op by op, on the device)
COVERS = frozenset({"random_resized_crop", "resize", "horizontal_flip", "color_jitter", "grayscale",
                    "gaussian_blur", "solarize", "normalize", "patch_mask"})
Params = dict[str, dict[str, torch.Tensor]]


@triton.jit
def _rint(x):
    """Round half to even, as torch.round."""
    f = tl.floor(x)
    d = x - f
    odd = (f - 2.0 * tl.floor(f * 0.5)) != 0
    return tl.where((d > 0.5) | ((d == 0.5) & odd), f + 1.0, f)


@triton.jit
def _crop_kernel(u, box, B, K, C0, H, W, s0, s1, l0, l1, wf, hf, p, BLOCK: tl.constexpr):
    """Columns C0.. of u: 10 area draws, 10 log-ratio draws, x, y, gate; writes box (B, 4)."""
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok_row = rows < B
    base = u + rows.to(tl.int64) * K + C0
    w = tl.zeros([BLOCK], tl.float32) + wf
    h = tl.zeros([BLOCK], tl.float32) + hf
    found = rows < 0
    for t in tl.static_range(10):
        area = (tl.load(base + t, mask=ok_row, other=0.5) * (s1 - s0) + s0) * (H * W).to(tl.float32)
        ar = tl.exp(tl.load(base + 10 + t, mask=ok_row, other=0.5) * (l1 - l0) + l0)
        wt = _rint(tl.sqrt_rn(area * ar))
        ht = _rint(tl.sqrt_rn(area / ar))
        fits = (wt > 0) & (wt <= W) & (ht > 0) & (ht <= H) & (~found)
        w = tl.where(fits, wt, w)
        h = tl.where(fits, ht, h)
        found = found | fits
    w = tl.minimum(tl.maximum(w, 1.0), W * 1.0)
    h = tl.minimum(tl.maximum(h, 1.0), H * 1.0)
    x0 = tl.floor(tl.load(base + 20, mask=ok_row, other=0.0) * (W - w + 1))
    y0 = tl.floor(tl.load(base + 21, mask=ok_row, other=0.0) * (H - h + 1))
    on = tl.load(base + 22, mask=ok_row, other=1.0) < p
    out = box + rows.to(tl.int64) * 4
    tl.store(out, tl.where(on, x0, 0.0), mask=ok_row)
    tl.store(out + 1, tl.where(on, y0, 0.0), mask=ok_row)
    tl.store(out + 2, tl.where(on, w, W * 1.0), mask=ok_row)
    tl.store(out + 3, tl.where(on, h, H * 1.0), mask=ok_row)


def crop(u: torch.Tensor, c0: int, hw: tuple[int, int], p: dict) -> torch.Tensor:
    """(B, 4) boxes from u's columns c0 .. c0 + 22 (the crop gate's fallback: the whole image)."""
    B, K = u.shape
    H, W = hw
    wf, hf = fallback_size(hw, p["ratio"])
    box = torch.empty(B, 4, dtype=torch.float32, device=u.device)
    lr = [math.log(r) for r in p["ratio"]]
    _crop_kernel[(triton.cdiv(B, BLOCK),)](u, box, B, K, c0, H, W, float(p["scale"][0]), float(p["scale"][1]),
                                           lr[0], lr[1], float(wf), float(hf), float(p.get("p", 1.0)), BLOCK=BLOCK)
    return box


def crop_torch(u: torch.Tensor, c0: int, hw: tuple[int, int], p: dict) -> torch.Tensor:
    """`crop`'s torch twin on the same columns of u (`crop_from_uniforms`, the gate, the
    whole image where it is off): the fail-safe path when the kernel does not compile or launch."""
    box = crop_from_uniforms(u[:, c0:c0 + 10], u[:, c0 + 10:c0 + 20], u[:, c0 + 20], u[:, c0 + 21], hw,
                                   p["scale"], p["ratio"])
    on = u[:, c0 + 22] < float(p.get("p", 1.0))
    return torch.where(on[:, None], box, full_box(u.shape[0], hw, u.device))


def _columns(ops) -> tuple[int, dict[str, int], list[tuple[str, str, float, float]]]:
    """u's layout: first one column per value (lo, hi) or gate (p, -1), in `cols` order, then
    23 per crop; returns (number of columns, first column of each crop block, cols)."""
    cols = []
    for op, p in ops:
        keys = {"horizontal_flip": [], "grayscale": [], "solarize": [],
                "color_jitter": list(JITTER_KEYS), "gaussian_blur": ["sigma"]}.get(op)
        if keys is not None:
            cols += [(op, k, *p[k]) for k in keys] + [(op, "applied", p["p"], -1.0)]
    crop0 = {op: len(cols) + 23 * i for i, op in enumerate(o for o, _ in ops if o == "random_resized_crop")}
    return len(cols) + 23 * len(crop0), crop0, cols


def sample_params(ops, x_shape: Sequence[int], gen: torch.Generator, device, *, mask_mode: str = "pixel",
                  jitter_order: Any = "batch", order_gen: torch.Generator | None = None,
                  crop_kernel: bool = True, on_kernel_error=None) -> Params:
    """`crop_kernel=False`: crop boxes from `crop_torch` (no Triton launch). `on_kernel_error`: called
    with the exception when the crop kernel fails; the boxes then come from `crop_torch` on the
    same uniforms (no new draw: the same parameters). Without it the exception propagates."""
    b, _, H, W = x_shape
    k, crop0, cols = _columns(ops)
    u = torch.rand(b, max(k, 1), generator=gen, device=device)  # the one draw
    out: Params = {op: {} for op, _ in ops if op != "normalize"}
    if cols:
        lo = const([a if hi >= 0 else 0.0 for _, _, a, hi in cols], u)  # cached: no copy per call
        scale = const([hi - a if hi >= 0 else 1.0 for _, _, a, hi in cols], u)
        vals = torch.addcmul(lo, u[:, :len(cols)], scale).T.contiguous()  # (n, B): every row contiguous
        for i, (op, key, a, hi) in enumerate(cols):
            out[op][key] = vals[i] if hi >= 0 else vals[i] < a
    for op, p in ops:
        if op == "random_resized_crop":
            box = None
            if crop_kernel:
                try:
                    box = crop(u, crop0[op], (H, W), p)
                except Exception as e:  # noqa: BLE001 -- compile / launch: the twin below, if the caller says so
                    if on_kernel_error is None:
                        raise
                    on_kernel_error(e)
                    crop_kernel = False
            out[op]["box"] = box if box is not None else crop_torch(u, crop0[op], (H, W), p)
            out[op]["applied"] = u[:, crop0[op] + 22] < p["p"]
        elif op == "resize":
            out[op]["box"] = full_box(b, (H, W), device)
        elif op == "color_jitter":
            out[op]["order"] = jitter_orders(b, jitter_order, gen, device, order_gen)
        elif op == "solarize":
            out[op]["threshold"] = torch.full((b,), p["threshold"], device=device)
        elif op == "patch_mask":
            out[op] = sample_patch_mask(b, output_hw(ops, (H, W)), p, gen, device, mask_mode)
    return out
