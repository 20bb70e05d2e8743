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
from augbench.augment.errors import AugmentInputError
from augbench.augment.ops import OPS

def check_ops(ops) -> None:
    """Every op must name its Kornia module (`OpSpec.kornia`); the patch mask runs after Kornia."""
    for op, _ in ops:
        if op != "patch_mask" and OPS[op].kornia is None:
            raise AugmentInputError(f"backend='kornia' cannot run op {op!r}: it has no Kornia module (OpSpec.kornia); "
                                    "use backend='fused', which runs every registered op")


def build(ops, jitter_order: Any = "batch") -> K.AugmentationSequential:
    """The policy's ops as Kornia modules, in policy order (each op's spec builds its own)."""
    check_ops(ops)
    mods, of_class = [], {}
    for op, p in ops:
        mods.append(OPS[op].kornia(p, jitter_order=jitter_order))
        of_class[type(mods[-1]).__name__] = op
    seq = K.AugmentationSequential(*mods)
    seq._augbench_ops = of_class  # Kornia class name -> op, to read the params back
    return seq


def to_fused_params(seq: K.AugmentationSequential) -> fused.Params:
    """Kornia's last-call params -> fused's format (each op's `from_kornia`: boxes x0, y0, w, h;
    gates as bools)."""
    out: fused.Params = {}
    children = dict(seq.named_children())
    for item in seq._params:
        op = seq._augbench_ops[item.name.rsplit("_", 1)[0]]
        d = OPS[op].from_kornia(item.data, children[item.name])
        if d is not None:
            out[op] = d
    return out


class KorniaBackend:
    def __init__(self, engine):
        check_ops(engine.policy.ops)
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
