"""albumentations, per image on the CPU (numpy HWC uint8 in): for DataLoader workers and the
benchmark. Each op maps onto albumentations' own transform, which its op module declares
(`OpSpec.albumentations`); the distributions match the other backends (tests/test_backends.py), the
pixels do not exactly (OpenCV resampling, uint8 colour maths). Patch masks reuse fused's op on the
stacked batch.

    t = AlbuTransform(policy.for_view(0), seed=0)   # picklable, for a Dataset
    chw = t(hwc_uint8)                              # float32 tensor (3, H', W')
"""
from __future__ import annotations

import random

import albumentations as A
import cv2
import numpy as np
import torch

from augbench.augment.backends import fused
from augbench.augment.errors import AugmentInputError
from augbench.augment.ops import OPS


def check_ops(ops) -> None:
    """Every op must name its albumentations transform (`OpSpec.albumentations`); the patch mask runs
    after albumentations, on the stacked batch."""
    for op, _ in ops:
        if op != "patch_mask" and OPS[op].albumentations is None:
            raise AugmentInputError(f"backend='albumentations' cannot run op {op!r}: it has no albumentations "
                                    "transform (OpSpec.albumentations); use backend='fused', which runs every "
                                    "registered op")


def build(ops, seed: int | None = None) -> A.Compose:
    """The view's ops as one Compose, in policy order (each op's spec builds its own transform)."""
    check_ops(ops)
    ts = [OPS[op].albumentations(p) for op, p in ops if op != "patch_mask"]
    compose = A.Compose(ts, seed=seed, save_applied_params=True)
    # Compose(seed=s) seeds EVERY transform with s, so their first draws coincide (a flip and a
    # jitter gate would be correlated); one shared stream decorrelates them and is one state to save
    compose.set_random_state(np.random.default_rng(seed), random.Random(seed))
    return compose


class AlbuTransform:
    """One view's ops for one image: HWC uint8 numpy -> CHW float32 tensor (no patch mask).
    `last_params` holds albumentations' applied transforms of the last call (for tests)."""

    def __init__(self, ops, seed: int | None = None):
        self.ops = [(o, p) for o, p in ops if o != "patch_mask"]
        self.compose = build(self.ops, seed)
        self.last_params: list = []
        self._normalized = any(o == "normalize" for o, _ in self.ops)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        r = self.compose(image=image)
        self.last_params = r["applied_transforms"]
        out = r["image"]
        out = out.astype(np.float32) if self._normalized else out.astype(np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))


class AlbuBackend:
    def __init__(self, engine):
        check_ops(engine.policy.ops)
        self.e = engine
        self._ts: dict[str, AlbuTransform] = {}
        self._pending: dict = {}  # state loaded before the view's transform exists

    def view(self, x: torch.Tensor, ops):
        key = repr(ops)
        if key not in self._ts:  # one Compose per distinct view policy, seeded from the engine seed
            self._ts[key] = AlbuTransform(ops, seed=self.e.seed + 7919 * len(self._ts))
            if key in self._pending:
                self._set_state(self._ts[key], self._pending.pop(key))
        t = self._ts[key]
        xs = x.cpu()
        if xs.dtype != torch.uint8:  # albumentations' colour ops expect uint8 (exact for uint8-derived floats)
            xs = (xs * 255).round().to(torch.uint8)
        imgs = xs.permute(0, 2, 3, 1).numpy()
        outs, crops = [], []
        for img in imgs:
            outs.append(t(img))
            crops.append(t.last_params)
        y = torch.stack(outs).to(x.device, self.e.dtype)
        params = {"albumentations": crops}
        if "patch_mask" in dict(ops):  # neither library masks patches: the fused op, drawn the same way
            y, params["patch_mask"] = fused.patch_mask_like_fused(y, x.shape, ops, self.e.generator(x.device),
                                                                  self.e.mask_mode)
        return y, params

    def apply(self, x: torch.Tensor, ops, params):
        raise AugmentInputError("params: albumentations draws inside its own transforms and cannot replay "
                                "them; use backend='fused' or 'kornia' to replay views")

    def state_dict(self):
        # albumentations keeps its RNG inside each Compose (numpy Generator + random.Random)
        return {k: (t.compose.py_random.getstate(), t.compose.random_generator.bit_generator.state)
                for k, t in self._ts.items()}

    def load_state_dict(self, state):
        self._pending = dict(state)
        for k in list(self._pending):
            if k in self._ts:
                self._set_state(self._ts[k], self._pending.pop(k))

    @staticmethod
    def _set_state(t: AlbuTransform, state) -> None:
        py, npy = state
        t.compose.py_random.setstate(py)
        t.compose.random_generator.bit_generator.state = npy
