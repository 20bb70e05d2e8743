"""`ViewTransform`: a policy per image, for a Dataset / DataLoader, on the engine's own code.

    ds = torchvision.datasets.CIFAR10(root, transform=ViewTransform("simclr", views=2))
    # or: Policy.named("simclr").transform(views=2)
    v1, v2 = ds[0][0]            # two (3, H, W) float views of one image

Each call runs `Engine` on a batch of one, so the pixels and the parameter draws are those of the
batched engine (one implementation, nothing to drift). In DataLoader workers every worker seeds
its own engine from `seed` and the worker's seed (which PyTorch draws anew each epoch from the
loader's generator), so workers and epochs never repeat each other's draws.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from augbench.augment import policy as _policy
from augbench.augment.engine import AugmentInputError, Engine, as_policy


def to_chw(img: Any) -> torch.Tensor:
    """A PIL image, an HWC uint8 array or a CHW tensor -> a (3, H, W) tensor (uint8 stays uint8)."""
    if hasattr(img, "getbands") and hasattr(img, "convert"):  # a PIL image, without importing PIL
        img = np.asarray(img.convert("RGB"))
    if isinstance(img, np.ndarray):
        if img.ndim != 3 or img.shape[2] not in (1, 3):
            raise AugmentInputError(f"image: expected an (H, W, 3) array, got shape {img.shape}")
        img = torch.from_numpy(np.array(img)).permute(2, 0, 1)  # a writable copy (PIL's array is read-only)
    if not isinstance(img, torch.Tensor):
        raise AugmentInputError(f"image: expected a PIL image, an (H, W, 3) array or a (3, H, W) tensor, "
                                f"got {type(img).__name__}")
    if img.dim() != 3:
        raise AugmentInputError(f"image: expected 3 dims (3, H, W), got shape {tuple(img.shape)}")
    return img.expand(3, -1, -1) if img.shape[0] == 1 else img


class ViewTransform:
    """`views` augmented views of one image: a list of (3, H', W') tensors of `dtype`.
    `backend` and the other keyword arguments are `Engine`'s."""

    def __init__(self, policy: Any, views: int = 2, seed: int = 0, backend: str = "fused", **engine_kwargs: Any):
        if isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise AugmentInputError(f"views: expected an integer >= 1, got {views!r}")
        self.policy, self.views, self.seed = as_policy(policy), views, seed
        self.engine_kwargs = {"backend": backend, **engine_kwargs}
        Engine(self.policy, seed=seed, **self.engine_kwargs)  # bad arguments fail here, not in a worker
        self._engine: Engine | None = None
        self._worker: Any = None

    def engine(self) -> Engine:
        """This process's engine: one per DataLoader worker (and epoch), seeded apart."""
        info = torch.utils.data.get_worker_info()
        worker = None if info is None else (info.id, info.seed)
        if self._engine is None or worker != self._worker:
            seed = self.seed if info is None else (self.seed * 1_000_003 + info.seed) % 2**63
            self._engine, self._worker = Engine(self.policy, seed=seed, **self.engine_kwargs), worker
        return self._engine

    def __call__(self, img: Any) -> list[torch.Tensor]:
        x = to_chw(img)[None]
        return [v[0] for v in self.engine()(x, views=self.views)]

    def __getstate__(self) -> dict[str, Any]:  # to a worker: the policy and seed, not the generators
        return {**self.__dict__, "_engine": None, "_worker": None}

    def __repr__(self) -> str:
        return f"ViewTransform(policy={self.policy.name!r}, views={self.views}, seed={self.seed}, " \
               f"backend={self.engine_kwargs['backend']!r})"


_policy._view_transform = ViewTransform  # Policy.transform (policy.py cannot import this module: a cycle)
