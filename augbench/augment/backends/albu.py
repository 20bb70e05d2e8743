"""albumentations, per image on the CPU (numpy HWC uint8 in): for DataLoader workers and the
benchmark. The same policy maps onto albumentations' own ops; the distributions match the other
backends (tests/test_backends.py), the pixels do not exactly (OpenCV resampling, uint8 colour
maths). Patch masks reuse fused's op on the stacked batch.

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


def build(ops, seed: int | None = None) -> A.Compose:
    ts = []
    for op, p in ops:
        if op == "random_resized_crop":
            ts.append(A.RandomResizedCrop(size=tuple(p["size"]), scale=tuple(p["scale"]), ratio=tuple(p["ratio"]),
                                          interpolation=cv2.INTER_LINEAR, p=p["p"]))
        elif op == "resize":
            ts.append(A.Resize(*p["size"], interpolation=cv2.INTER_LINEAR))
        elif op == "horizontal_flip":
            ts.append(A.HorizontalFlip(p=p["p"]))
        elif op == "color_jitter":
            ts.append(A.ColorJitter(brightness=p["brightness"], contrast=p["contrast"],
                                    saturation=p["saturation"], hue=p["hue"], p=p["p"]))
        elif op == "grayscale":
            ts.append(A.ToGray(num_output_channels=3, p=p["p"]))
        elif op == "gaussian_blur":
            k = p["kernel_size"]
            ts.append(A.GaussianBlur(blur_limit=(k, k), sigma_limit=tuple(p["sigma"]), p=p["p"]))
        elif op == "solarize":
            t = p["threshold"]
            ts.append(A.Solarize(threshold_range=(t, t), p=p["p"]))
        elif op == "normalize":
            ts.append(A.Normalize(mean=p["mean"], std=p["std"], max_pixel_value=255.0))
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


SUPPORTED = ("random_resized_crop", "resize", "horizontal_flip", "color_jitter", "grayscale", "gaussian_blur",
             "solarize", "normalize", "patch_mask")


class AlbuBackend:
    def __init__(self, engine):
        for op in engine.policy.op_names:
            if op not in SUPPORTED:
                raise AugmentInputError(f"backend='albumentations' cannot run op {op!r} (it maps only {list(SUPPORTED)} "
                                        "onto albumentations); use backend='fused', which runs every registered op")
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
