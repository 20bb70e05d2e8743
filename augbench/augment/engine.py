"""`Engine`: a policy applied to a batch, N views with independent parameters, on any backend.

    engine = Engine("simclr", backend="fused", seed=0)
    v1, v2 = engine(x)                          # x: uint8 (B, 3, H, W) or float in [0, 1]
    views, params = engine(x, views=2, return_params=True)
    same = engine(x, params=params)             # replay: the same pixels, no new random draws

An `Engine` is an `nn.Module` (no weights), so it sits inside a model like Kornia's
`AugmentationSequential`. Random numbers come from the engine's own seeded generators (never the
global RNG), so the same seed gives the same views and `state_dict()` / `load_state_dict()`
resume exactly. For one image at a time (a DataLoader), see `augbench.augment.ViewTransform`.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from augbench.augment import reference
from augbench.augment.backends import fused
from augbench.augment.errors import AugmentInputError, BackendUnavailable
from augbench.augment.ops import OPS, PolicyError
from augbench.augment.policy import Policy
from augbench.errors import UserError

__all__ = ["Engine", "AugmentInputError", "BackendUnavailable", "BACKENDS", "FALLBACKS", "as_policy", "check_batch"]

BACKENDS = ("fused", "kornia", "albumentations")
MASK_MODES = ("pixel", "token")


_EXTRA = {"kornia": "kornia", "albumentations": "albumentations"}  # backend -> pyproject extra


def as_policy(policy: Policy | str | dict) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, str):
        return Policy.named(policy)
    if isinstance(policy, dict):
        return Policy.from_dict(policy)
    raise PolicyError(f"policy: expected a Policy, a name or a dict, got {type(policy).__name__}")


def check_batch(x: Any) -> None:
    """Reject what would otherwise fail deep inside a backend, or be silently clipped."""
    if not isinstance(x, torch.Tensor):
        raise AugmentInputError(f"input: expected a torch.Tensor (B, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise AugmentInputError(f"input: expected 4 dims (B, 3, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != 3:
        raise AugmentInputError(f"input: expected 3 channels (RGB) in dim 1, got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise AugmentInputError("input: empty batch (B = 0)")
    if x.shape[2] < 2 or x.shape[3] < 2:
        raise AugmentInputError(f"input: images must be at least 2x2 pixels, got shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return
    if not x.is_floating_point():
        raise AugmentInputError(f"input: dtype {x.dtype} not supported; pass uint8 in [0, 255] or float in [0, 1]")
    # one sync per call, outside the backends' hot path: a silent clip would hide a bug upstream
    lo, hi = torch.aminmax(x)
    if not (lo >= 0 and hi <= 1):
        raise AugmentInputError(f"input: float images must lie in [0, 1], got values in [{float(lo):.4g}, "
                                f"{float(hi):.4g}] (dtype {x.dtype}); divide uint8 data by 255 or pass uint8")


class Engine(nn.Module):
    """A policy applied to a batch on one backend: `engine(x, views=2, return_params=False,
    params=None)`.

    - `backend`: "fused" (fast, any device), "kornia" (the reference), "albumentations" (CPU,
      per image; its params cannot be replayed).
    - `device`: move input there first (None: augment where `x` is).
    - `dtype`: the views' floating dtype. `mask_mode`: "pixel" or "token" (ViT keep indices).
    - `jitter_order`: "batch" (one colour-jitter order per call, as Kornia), "sample" or a fixed
      permutation of (brightness, contrast, saturation, hue) = (0, 1, 2, 3).
    - `impl`: the fused backend's code path, "auto" (Triton on CUDA, numba on the CPU when they
      import, else torch), "torch", "triton" or "numba"; None reads $AUGBENCH_FUSED_IMPL.
    """

    def __init__(self, policy: Policy | str | dict, backend: str = "fused", seed: int = 0,
                 device: str | torch.device | None = None, dtype: torch.dtype = torch.float32,
                 mask_mode: str = "pixel", jitter_order: Any = "batch", impl: str | None = None):
        super().__init__()
        self.policy = as_policy(policy)
        if backend not in BACKENDS:
            raise AugmentInputError(f"backend: unknown backend {backend!r}; choose from {list(BACKENDS)}")
        if mask_mode not in MASK_MODES:
            raise AugmentInputError(f"mask_mode: must be one of {list(MASK_MODES)}, got {mask_mode!r}")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise AugmentInputError(f"dtype: expected a floating torch dtype, got {dtype!r}")
        if not (jitter_order in ("batch", "sample") or _is_order(jitter_order)):
            raise AugmentInputError(f"jitter_order: 'batch', 'sample' or a permutation of 0..3, got {jitter_order!r}")
        if backend == "kornia" and jitter_order == "sample":
            raise AugmentInputError("jitter_order='sample': Kornia's ColorJitter draws one order per batch; "
                                    "use 'batch' or a fixed order with backend='kornia'")
        if mask_mode == "token" and self.policy.has("patch_mask"):
            ps = [p["patch_mask"]["p"] for p in (dict(self.policy.for_view(i)) for i in range(max(1, len(self.policy.views))))]
            if any(p != 1.0 for p in ps):
                raise AugmentInputError("mask_mode='token' needs patch_mask.p = 1 (every sample keeps the same "
                                        f"number of tokens), got p = {ps}")
        if impl is not None and (backend != "fused" or impl not in fused.IMPLS):
            raise AugmentInputError(f"impl: one of {list(fused.IMPLS)}, for backend='fused' only; "
                                    f"got impl={impl!r} with backend={backend!r}")
        self.impl_request = impl
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise AugmentInputError(f"seed: expected an integer, got {seed!r}")
        self.backend_name, self.seed, self.dtype, self.mask_mode = backend, seed, dtype, mask_mode
        self.jitter_order = tuple(jitter_order) if _is_order(jitter_order) else jitter_order
        self.device = torch.device(device) if device is not None else None
        self._gens: dict[str, torch.Generator] = {}  # one per device, each seeded with `seed`
        self._order_gen = torch.Generator().manual_seed(seed + 1)  # CPU: per-call jitter orders
        try:
            self._backend = self._make_backend()
        except ModuleNotFoundError as e:
            raise BackendUnavailable(f"backend={backend!r} needs {e.name}, which is not installed here: "
                                     f"pip install 'augbench[{_EXTRA.get(backend, backend)}]'") from e

    # ------------------------------------------------------------------ generators
    def generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._gens:
            self._gens[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._gens[key]

    # the RNG state travels as nn.Module "extra state": `state_dict()` holds it under
    # "_extra_state", also when the engine is a submodule of a model
    def get_extra_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "generators": {k: g.get_state() for k, g in self._gens.items()},
                "order_generator": self._order_gen.get_state(), "backend": self._backend.state_dict()}

    def load_state_dict(self, state: Any, strict: bool = True, assign: bool = False):
        if isinstance(state, dict) and "generators" in state:  # a checkpoint from before Engine was a Module
            return self.set_extra_state(state)
        try:
            return super().load_state_dict(state, strict=strict, assign=assign)
        except (KeyError, TypeError, RuntimeError) as e:
            raise AugmentInputError(f"engine state: not a state_dict from Engine.state_dict() ({e})") from None

    def set_extra_state(self, state: Any) -> None:
        try:
            self.seed = int(state["seed"])
            self._gens = {}
            for key, s in state["generators"].items():
                self.generator(torch.device(key)).set_state(s)
            self._order_gen.set_state(state["order_generator"])
            self._backend.load_state_dict(state["backend"])
        except (KeyError, TypeError, RuntimeError) as e:
            raise AugmentInputError(f"engine state: not a state_dict from Engine.state_dict() ({e})") from None

    # ------------------------------------------------------------------ augmentation
    def _make_backend(self):
        if self.backend_name == "fused":
            return _FusedAdapter(self)
        if self.backend_name == "kornia":
            from augbench.augment.backends.kornia_backend import KorniaBackend

            return KorniaBackend(self)
        from augbench.augment.backends.albu import AlbuBackend

        return AlbuBackend(self)

    def forward(self, x: torch.Tensor, views: int = 2, return_params: bool = False,
                params: list[dict[str, Any]] | None = None):
        """`views` views of the batch `x`, each with its own draws; with `params` (a list from an
        earlier `return_params=True` call on a batch of the same size) those draws are replayed
        instead, one view per entry, and the generators do not advance."""
        if params is None and (isinstance(views, bool) or not isinstance(views, int) or views < 1):
            raise AugmentInputError(f"views: expected an integer >= 1, got {views!r}")
        check_batch(x)
        self._check_sizes(tuple(x.shape[-2:]))
        if self.device is not None and x.device != self.device:
            x = x.to(self.device, non_blocking=True)
        x = x.contiguous()  # a permuted / channels-last batch: the backends index memory as (B, C, H, W)
        if params is not None:
            params = [self._check_params(x, v, p) for v, p in enumerate(_param_list(params))]
            out = [self._backend.apply(x, self.policy.for_view(v), p) for v, p in enumerate(params)]
            return (out, params) if return_params else out
        out, drawn = [], []
        for v in range(views):
            y, p = self._backend.view(x, self.policy.for_view(v))
            out.append(y)
            drawn.append(p)
        return (out, drawn) if return_params else out

    def _check_params(self, x: torch.Tensor, v: int, p: Any) -> dict[str, Any]:
        """Params of view v, on x's device (the colour-jitter order stays where it was drawn)."""
        if not isinstance(p, dict):
            raise AugmentInputError(f"params[{v}]: expected a dict op -> {{name: tensor}}, got {type(p).__name__}")
        if "albumentations" in p:
            raise AugmentInputError("params: albumentations draws inside its own transforms and cannot replay "
                                    "them; use backend='fused' or 'kornia' to replay views")
        missing = [op for op, _ in self.policy.for_view(v) if OPS[op].sample is not None and op not in p]
        if missing:
            raise AugmentInputError(f"params[{v}]: no draws for op(s) {missing} of policy {self.policy.name!r}")
        out = {}
        for op, d in p.items():
            out[op] = {}
            for k, t in d.items():
                if k != "order" and t.dim() >= 1 and t.shape[0] != x.shape[0]:
                    raise AugmentInputError(f"params[{v}].{op}.{k}: drawn for a batch of {t.shape[0]}, "
                                            f"got a batch of {x.shape[0]}")
                out[op][k] = t if k == "order" else t.to(x.device, non_blocking=True)
        return out

    def _check_sizes(self, hw: tuple[int, int]) -> None:
        for v in range(max(1, len(self.policy.views))):
            ops = self.policy.for_view(v)
            cfg = dict(ops)
            oh, ow = fused.output_hw(ops, hw)
            if "patch_mask" in cfg and cfg["patch_mask"]["patch_size"] > min(oh, ow):
                raise AugmentInputError(f"patch_mask.patch_size {cfg['patch_mask']['patch_size']} is larger than the "
                                        f"{oh}x{ow} images it would mask")
            if "gaussian_blur" in cfg and cfg["gaussian_blur"]["kernel_size"] // 2 >= min(oh, ow):
                raise AugmentInputError(f"gaussian_blur.kernel_size {cfg['gaussian_blur']['kernel_size']} is too large "
                                        f"for {oh}x{ow} images (reflect padding needs kernel_size // 2 < side)")

    @property
    def fallback(self) -> dict[str, str] | None:
        """None, or what fell back to the torch path after a kernel failure: {'from': 'triton' or
        'numba', 'to': 'torch', 'error': 'Type: first line'} (the fused backend; see _FusedAdapter)."""
        return getattr(self._backend, "fallback", None)

    @property
    def impl(self) -> str:
        """The code path: for `fused`, 'triton', 'numba' or 'torch' (the last call's, or the one a
        call on `device` would take; $AUGBENCH_FUSED_IMPL forces it; 'torch' for good once a kernel
        failed, see `fallback`), or 'reference' when the policy has an op none of them covers (each
        op's own implementation, `augbench.augment.reference`); else the backend's name."""
        return getattr(self._backend, "impl", None) or self.backend_name

    def extra_repr(self) -> str:
        return f"policy={self.policy.name!r}, backend={self.backend_name!r}, seed={self.seed}"


def _param_list(params: Any) -> list:
    if not isinstance(params, (list, tuple)) or not params:
        raise AugmentInputError("params: expected the non-empty list of per-view params that "
                                "engine(x, return_params=True) returned")
    return list(params)


def _is_order(o: Any) -> bool:
    return isinstance(o, (tuple, list)) and len(o) == len(set(o)) and all(
        isinstance(i, int) and 0 <= i < 4 for i in o)


class _FusedAdapter:
    """The fused backend for an Engine, fail-safe: a kernel (Triton, numba, the CUDA sampler's crop
    kernel) that raises when it compiles or launches switches this engine to the torch path for
    good, with one warning (`fused.FastPathFallback`) and a record (`fallback`); the failed call is
    redone on the torch path with the same parameters (no new draw), so the batch gets the pixels
    the reference path gives for them. A UserError (bad input) is not a kernel fault: it propagates.
    A fault the kernel reports later, asynchronously (an illegal address found at the next CUDA
    sync), cannot be caught here."""

    def __init__(self, engine: Engine):
        self.e = engine
        self.fallback: dict[str, str] | None = None
        self.impl = self._path(engine.device or torch.device("cpu"), engine.policy.for_view(0))

    def _path(self, device: torch.device, ops) -> str:
        """'triton', 'numba' or 'torch' where that path covers every op of the view (after a kernel
        failure: 'torch'), else 'reference'."""
        impl = "torch" if self.fallback is not None else fused.resolve_impl(device, self.e.dtype, self.e.impl_request)
        return fused.path_for(ops, impl)

    def _fall_back(self, path: str, err: Exception) -> None:
        if self.fallback is not None:
            return
        self.fallback = {"from": path, "to": "torch", "error": fused._first_line(err)}
        self.impl = "torch"
        FALLBACKS.append({"kind": "augment", "policy": self.e.policy.name, **self.fallback})
        warnings.warn(f"augbench: the fused engine's {path} kernel failed ({self.fallback['error']}); "
                      f"the run continues on the torch path (policy {self.e.policy.name!r})",
                      fused.FastPathFallback, stacklevel=4)

    def _sampler_failed(self, err: Exception) -> None:
        self._fall_back("triton", err)

    def view(self, x: torch.Tensor, ops):
        e = self.e
        # on CUDA the sampler's crop kernel falls back inside the call, on the uniforms it drew
        params = fused.sample_params(ops, x.shape, e.generator(x.device), x.device, mask_mode=e.mask_mode,
                                     jitter_order=e.jitter_order, order_gen=e._order_gen,
                                     crop_kernel=self.fallback is None, on_kernel_error=self._sampler_failed)
        return self.apply(x, ops, params), params

    def apply(self, x: torch.Tensor, ops, params):
        """The pixels of one view for given draws: `view` and replay share it."""
        e = self.e
        path = self._path(x.device, ops)
        if path == fused.REFERENCE:  # an op no fast path covers: each op's own implementation
            self.impl = path
            return reference.apply(x, ops, params, dtype=e.dtype, mask_mode=e.mask_mode)
        plan = fused.prepare(x.shape, ops, params, x.device, e.mask_mode)
        if self.fallback is None:
            self.impl = path  # triton on CUDA, numba on CPU
            if self.impl != "torch":
                try:
                    return fused.run_plan(x, plan, e.dtype, self.impl)
                except UserError:
                    raise
                except Exception as err:  # noqa: BLE001 -- any compile / launch failure of the kernel
                    self._fall_back(self.impl, err)
        return fused.run_plan(x, plan, e.dtype, "torch")

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


# every fused-engine fallback of this process, in order (a run's row records those of its run)
FALLBACKS: list[dict[str, str]] = []
