"""The reference: `kornia.augmentation.AugmentationSequential` built from the same policy.

Kornia draws from the global torch RNG (on the CPU); the backend keeps its own RNG state and
swaps it in around each call, so an engine is reproducible and leaves the caller's RNG alone.
Kornia has no patch mask: fused's mask op runs on Kornia's output, drawn from the engine's
generator. Returned params are converted to the fused backend's format (`to_fused_params`), so
any Kornia draw can be replayed by `fused.apply`: that is how tests compare the two, and how
`engine(x, params=...)` replays a Kornia engine's views (equal to 1e-4, float32 op order).
"""
from __future__ import annotations

from typing import Any

import kornia.augmentation as K
import torch

from augbench.augment.backends import fused

_CLASS_TO_OP = {
    "RandomResizedCrop": "random_resized_crop", "Resize": "resize", "RandomHorizontalFlip": "horizontal_flip",
    "ColorJitter": "color_jitter", "RandomGrayscale": "grayscale", "RandomGaussianBlur": "gaussian_blur",
    "RandomSolarize": "solarize", "Normalize": "normalize",
}


def build(ops, jitter_order: Any = "batch") -> K.AugmentationSequential:
    mods = []
    for op, p in ops:
        if op == "random_resized_crop":
            mods.append(K.RandomResizedCrop(tuple(p["size"]), scale=p["scale"], ratio=p["ratio"], p=p["p"]))
        elif op == "resize":
            mods.append(K.Resize(tuple(p["size"]), align_corners=True))
        elif op == "horizontal_flip":
            mods.append(K.RandomHorizontalFlip(p=p["p"]))
        elif op == "color_jitter":
            order = tuple(jitter_order) if isinstance(jitter_order, (tuple, list)) else None
            mods.append(K.ColorJitter(p["brightness"], p["contrast"], p["saturation"], p["hue"], p=p["p"],
                                      order=order))
        elif op == "grayscale":
            mods.append(K.RandomGrayscale(p=p["p"]))
        elif op == "gaussian_blur":
            k = p["kernel_size"]
            mods.append(K.RandomGaussianBlur((k, k), tuple(p["sigma"]), p=p["p"]))
        elif op == "solarize":
            t = p["threshold"]
            mods.append(K.RandomSolarize(thresholds=(t, t), additions=(0.0, 0.0), p=p["p"]))
        elif op == "normalize":
            mods.append(K.Normalize(mean=torch.tensor(p["mean"]), std=torch.tensor(p["std"])))
    return K.AugmentationSequential(*mods)


def to_fused_params(seq: K.AugmentationSequential) -> fused.Params:
    """Kornia's last-call params -> fused's format (boxes x0, y0, w, h; gates as bools)."""
    out: fused.Params = {}
    for item in seq._params:
        op = _CLASS_TO_OP[item.name.rsplit("_", 1)[0]]
        d = item.data
        applied = d["batch_prob"] > 0.5
        if op in ("random_resized_crop", "resize"):
            src = d["src"]
            x0, y0 = src[:, 0, 0], src[:, 0, 1]
            box = torch.stack([x0, y0, src[:, 1, 0] - x0 + 1, src[:, 2, 1] - y0 + 1], 1).float()
            out[op] = {"box": box, "applied": applied} if op == "random_resized_crop" else {"box": box}
        elif op == "color_jitter":
            out[op] = {k: d[f"{k}_factor"] for k in fused.JITTER_KEYS}
            order = dict(seq.named_children())[item.name]._fixed_order  # a fixed order is not in the params
            out[op]["order"] = torch.tensor(order) if order is not None else d["order"]
            out[op]["applied"] = applied
        elif op == "gaussian_blur":
            out[op] = {"sigma": d["sigma"], "applied": applied}
        elif op == "solarize":
            out[op] = {"threshold": d["thresholds"], "applied": applied}
        elif op in ("horizontal_flip", "grayscale"):
            out[op] = {"applied": applied}
    return out


class KorniaBackend:
    def __init__(self, engine):
        self.e = engine
        self._rng = _seeded_cpu_state(engine.seed)
        self._seqs: dict[int, tuple[Any, K.AugmentationSequential]] = {}

    def _seq(self, ops) -> K.AugmentationSequential:
        key = hash(repr(ops))
        if key not in self._seqs:
            self._seqs[key] = (ops, build(ops, self.e.jitter_order))
        return self._seqs[key][1]

    def view(self, x: torch.Tensor, ops):
        seq = self._seq([(o, p) for o, p in ops if o != "patch_mask"])
        xf = x.to(self.e.dtype) / 255 if x.dtype == torch.uint8 else x.to(self.e.dtype)
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self._rng)
            y = seq(xf)
            self._rng = torch.get_rng_state()
        # on x's device, like fused's; the jitter order stays on the CPU where fused iterates it
        params = {op: {k: v if k == "order" else v.to(x.device) for k, v in d.items()}
                  for op, d in to_fused_params(seq).items()}
        if "patch_mask" in dict(ops):  # neither library masks patches: the fused op, drawn the same way
            y, params["patch_mask"] = fused.patch_mask_like_fused(y, x.shape, ops, self.e.generator(x.device),
                                                                  self.e.mask_mode)
        return y, params

    def apply(self, x: torch.Tensor, ops, params):
        return fused.apply(x, ops, params, dtype=self.e.dtype, mask_mode=self.e.mask_mode)

    def state_dict(self):
        return {"rng": self._rng.clone()}

    def load_state_dict(self, state):
        self._rng = state["rng"].clone()


def _seeded_cpu_state(seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.get_rng_state()
