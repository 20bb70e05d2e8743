"""The fast path: every op of a policy applied to the whole batch at once, with per-sample
parameters, on the input's device.

Sampling is separate from application (Kornia style): `sample_params` draws every random number
for a batch from one seeded `torch.Generator` on the input's device, `apply` only computes, so
explicit parameters can be replayed. On CUDA the draws are one `torch.rand(B, K)` and a crop
kernel (`triton_sample`: a handful of launches instead of ~80; same distributions, another
stream). Nothing in either reads a tensor value back to the host (no `.item()`, `.tolist()` or
Python branch on tensor values): p-gates are folded into values, so a CUDA stream never stalls.

Conventions (held against Kornia 0.9 by tests/test_backends.py):
- crop boxes are drawn as torchvision/Kornia `RandomResizedCrop` (10 tries of area and
  log-ratio, the first that fits, else the whole image / ratio-limited fallback), with integer
  pixel boxes; resizing is bilinear with `align_corners=True` (Kornia's default), so output
  pixel j reads source x0 + j (w - 1) / (W_out - 1). Crop, resize, flip and the uint8 -> float
  conversion are one bilinear resampling through a per-sample affine map (flip = a sign).
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

Application has three paths that take the same `Plan` (the sampled parameters with every p-gate
folded in, see `prepare`) and give the same pixels up to float rounding: `fused_torch` (batched
torch ops; any device, the reference), `triton_view` (one Triton kernel for the whole view, plus
a separable pass for blur; CUDA, or the CPU under TRITON_INTERPRET=1 for tests) and
`numba_view` (one compiled loop per image on CPU threads). `apply` picks Triton on CUDA and
numba on the CPU when they import, else torch; `impl=` or $AUGBENCH_FUSED_IMPL forces one.

Coverage: each path declares the ops it runs (`COVERS` in its module; the sampler's in
`triton_sample`). A policy with an op outside them (a new op, a user's op) runs on the reference
path instead (`augbench.augment.reference`: each op's own implementation, still batched, per
sample, no host sync) -- `path_for` decides, `Engine.impl` reports "reference". The samplers
and the sampling maths live with their ops (`augbench.augment.ops.*`); the names below re-export them.
"""
from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from augbench.augment import reference
from augbench.augment.backends import fused_torch
from augbench.augment.backends.fused_torch import GRAY_WEIGHTS, apply_patch_mask, const, resample  # noqa: F401
from augbench.augment.ops import OPS, OpContext, output_hw
from augbench.augment.ops.color_jitter import JITTER_KEYS, jitter_orders  # noqa: F401
from augbench.augment.ops.crop import crop_from_uniforms, fallback_size, full_box, sample_crop  # noqa: F401
from augbench.augment.ops.mask import sample_patch_mask  # noqa: F401
from augbench.augment.ops.spec import RESAMPLE
from augbench.errors import UserError

IMPLS = ("auto", "torch", "triton", "numba")
Ops = Sequence[tuple[str, dict[str, Any]]]
Params = dict[str, dict[str, torch.Tensor]]


# ---------------------------------------------------------------------- sampling
def triton_sampler(device) -> bool:
    """Whether `sample_params` draws with the CUDA sampler (`triton_sample`) on `device`."""
    return torch.device(device).type == "cuda" and triton_available()


def sample_params(ops: Ops, x_shape: Sequence[int], gen: torch.Generator, device, *,
                  mask_mode: str = "pixel", jitter_order: Any = "batch",
                  order_gen: torch.Generator | None = None, crop_kernel: bool = True,
                  on_kernel_error=None) -> Params:
    """Every random number one view of a batch needs, per op: each op's own sampler
    (`OpSpec.sample`) in policy order, from one generator. On CUDA, a policy the CUDA sampler
    covers draws there instead (one draw + one crop kernel, another stream).
    `crop_kernel` / `on_kernel_error`: the CUDA sampler's crop kernel, or its torch twin on the
    same uniforms (see `triton_sample.sample_params`, the fail-safe path); no effect elsewhere."""
    if triton_sampler(device) and covered(ops, "triton_sample"):  # one draw + one kernel (no ~80 launches)
        from augbench.augment.backends import triton_sample

        return triton_sample.sample_params(ops, x_shape, gen, device, mask_mode=mask_mode,
                                           jitter_order=jitter_order, order_gen=order_gen,
                                           crop_kernel=crop_kernel, on_kernel_error=on_kernel_error)
    b, _, H, W = x_shape
    out_hw = output_hw(ops, (H, W))
    ctx = OpContext(list(ops), (H, W), out_hw, mask_mode, jitter_order, order_gen)
    out: Params = {}
    for op, p in ops:
        spec = OPS[op]
        if spec.sample is not None:
            out[op] = spec.sample(b, (H, W) if spec.stage == RESAMPLE else out_hw, p, gen, device, ctx)
    return out


# ---------------------------------------------------------------------- application
_interp_matrix = fused_torch.interp_matrix
_grid_resample = fused_torch.grid_resample
PIXEL_OPS = ("color_jitter", "grayscale", "gaussian_blur", "solarize", "normalize")


@dataclass
class Plan:
    """One view's work: `steps` are the per-pixel ops in policy order, each (op, its per-sample
    values and p-gate, or constants). Building it runs no tensor op; each path folds the gates
    into the values itself (the torch path with `torch.where` on (B,) tensors, the kernel in
    registers)."""
    size: tuple[int, int]
    resample: bool  # crop, resize or flip present: bilinear resampling through `box` and `flip`
    box: torch.Tensor  # (B, 4) x0, y0, w, h
    flip: torch.Tensor | None  # (B,) bool
    steps: list[tuple[str, dict[str, Any]]]
    mask: tuple[torch.Tensor, int, float] | None  # (B, N) bool, patch size, fill (pixel mode only)


def prepare(x_shape: Sequence[int], ops: Ops, params: Params, device, mask_mode: str = "pixel") -> Plan:
    """Sampled `params` -> a `Plan` (no tensor op, no sync)."""
    b, _, H, W = x_shape
    names = [op for op, _ in ops]
    cfg = dict(ops)
    geo = next((o for o in ("random_resized_crop", "resize") if o in names), None)
    flip = params["horizontal_flip"]["applied"] if "horizontal_flip" in names else None
    box = params[geo]["box"] if geo else full_box(b, (H, W), device)
    steps: list[tuple[str, dict[str, Any]]] = []
    for op in names:
        p, d = cfg[op], params.get(op)
        if op == "color_jitter":
            steps.append((op, {"factors": [d[k] for k in JITTER_KEYS], "gate": d["applied"], "order": d["order"]}))
        elif op == "grayscale":
            steps.append((op, {"gate": d["applied"]}))
        elif op == "gaussian_blur":
            steps.append((op, {"sigma": d["sigma"], "gate": d["applied"], "k": p["kernel_size"]}))
        elif op == "solarize":
            steps.append((op, {"threshold": d["threshold"], "gate": d["applied"]}))
        elif op == "normalize":
            steps.append((op, {"mean": tuple(p["mean"]), "std": tuple(p["std"])}))
    mask = None
    if "patch_mask" in names and mask_mode == "pixel":
        mask = (params["patch_mask"]["mask"], cfg["patch_mask"]["patch_size"], float(cfg["patch_mask"]["fill"]))
    return Plan(output_hw(ops, (H, W)), geo is not None or flip is not None, box, flip, steps, mask)


class FastPathFallback(RuntimeWarning):
    """A fast path (a Triton or numba kernel, a compiled training step) failed and the run goes
    on, on the reference path (see `Engine.fallback`, `TrainResult.fallbacks`)."""


def _first_line(e: BaseException) -> str:
    """'Type: first line of the message', for a one-line warning and a result row."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__


@functools.lru_cache(maxsize=None)
def _imports(module: str) -> bool:
    """Whether a kernel module (and so its library: numba, triton) imports here."""
    try:
        importlib.import_module(f"augbench.augment.backends.{module}")
    except ImportError:
        return False
    except Exception as e:  # noqa: BLE001 -- a broken install (driver, toolchain): the torch path, said once
        import warnings

        warnings.warn(f"augbench: the fused backend's {module} path does not load ({_first_line(e)}); "
                      "the torch path runs instead", FastPathFallback, stacklevel=2)
        return False
    return True


def numba_available() -> bool:
    return _imports("numba_view")


def triton_available() -> bool:
    return _imports("triton_view")


def resolve_impl(device: torch.device, dtype: torch.dtype = torch.float32, impl: str | None = None) -> str:
    """'triton', 'numba' or 'torch' for a call on `device`. `impl` (or $AUGBENCH_FUSED_IMPL when
    None): 'auto' = Triton on CUDA when it imports, numba on the CPU when it imports (the `cpu`
    extra), for the float dtypes they write; else torch. 'torch' / 'triton' / 'numba' force a
    path ('triton' on the CPU needs TRITON_INTERPRET=1; 'numba' is CPU only)."""
    impl = impl or os.environ.get("AUGBENCH_FUSED_IMPL", "auto")
    if impl not in IMPLS:
        raise UserError(f"fused impl (AUGBENCH_FUSED_IMPL): expected one of {list(IMPLS)}, got {impl!r}")
    kind = torch.device(device).type
    if impl == "numba" and kind != "cpu":
        raise UserError(f"fused impl (AUGBENCH_FUSED_IMPL) 'numba' runs on the CPU, not on {kind}")
    if impl == "numba" and not numba_available():
        raise UserError("fused impl (AUGBENCH_FUSED_IMPL) 'numba' needs numba: pip install 'augbench[cpu]'")
    if impl != "auto":
        return impl
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return "torch"
    if kind == "cuda" and triton_available():
        return "triton"
    return "numba" if kind == "cpu" and numba_available() else "torch"


# the module of each path: each declares `COVERS`, the ops it runs (`torch` is the plan on torch ops)
_PATH_MODULES = {"torch": "fused_torch", "numba": "numba_view", "triton": "triton_view",
                 "triton_sample": "triton_sample"}
REFERENCE = "reference"


@functools.lru_cache(maxsize=None)
def covers(path: str) -> frozenset[str]:
    """The ops the path 'torch', 'numba', 'triton' (the view kernels) or 'triton_sample' (the CUDA
    sampler) covers (imports that path's module: call it for a path that resolves here)."""
    return importlib.import_module(f"augbench.augment.backends.{_PATH_MODULES[path]}").COVERS


def covered(ops: Ops, path: str) -> bool:
    try:
        c = covers(path)
    except Exception:  # noqa: BLE001 -- a kernel that does not load runs the plan's ops or fails (and falls back)
        c = covers("torch")
    return all(op in c for op, _ in ops)


def path_for(ops: Ops, path: str) -> str:
    """`path` if it covers every op, else the torch plan if that does, else 'reference' (each op's
    own implementation, `augbench.augment.reference`)."""
    if covered(ops, path):
        return path
    return "torch" if path != "torch" and covered(ops, "torch") else REFERENCE


def apply(x: torch.Tensor, ops: Ops, params: Params, *, dtype: torch.dtype = torch.float32,
          mask_mode: str = "pixel", impl: str | None = None) -> torch.Tensor:
    """One view of the batch `x` (uint8 or float in [0, 1]) with explicit `params`."""
    path = path_for(ops, resolve_impl(x.device, dtype, impl))
    if path == REFERENCE:
        return reference.apply(x, ops, params, dtype=dtype, mask_mode=mask_mode)
    plan = prepare(x.shape, ops, params, x.device, mask_mode)
    return run_plan(x, plan, dtype, path)


def run_plan(x: torch.Tensor, plan: Plan, dtype: torch.dtype, path: str) -> torch.Tensor:
    """A prepared view on the path 'triton', 'numba' or 'torch' (the kernels' one entry point:
    `Engine` retries a failed kernel call here with path 'torch' and the same plan)."""
    if path == "triton":
        from augbench.augment.backends import triton_view

        return triton_view.run(x, plan, dtype)
    if path == "numba":
        from augbench.augment.backends import numba_view

        return numba_view.run(x, plan, dtype)
    return fused_torch.run(x, plan, dtype)


def patch_mask_like_fused(y: torch.Tensor, x_shape, ops: Ops, gen: torch.Generator, mask_mode: str):
    """The patch mask for views made by another backend: drawn exactly as `sample_params` draws
    it for input shape `x_shape`, applied to `y` in pixel mode. Returns (y, its params)."""
    mask_ops = [(o, p) for o, p in ops if o in ("patch_mask", "random_resized_crop", "resize")]
    pm = sample_params(mask_ops, x_shape, gen, y.device, mask_mode=mask_mode)["patch_mask"]
    if mask_mode == "pixel":
        p = dict(ops)["patch_mask"]
        y = apply_patch_mask(y, pm["mask"], p["patch_size"], p["fill"])
    return y, pm
