"""The reference path: a view made by each op's own reference implementation (`OpSpec.apply`),
one op after the other, on the whole batch with per-sample parameters and no host sync.

The fused backend runs it for a policy with an op that none of its fast paths covers (a new op,
a user's op): `Engine(..., backend="fused").impl` is then "reference". It keeps the fused plan's
conventions, so a policy means the same on every path: the ops of stage "resample" (crop,
resize, flip) run first, then the others in policy order, then those of stage "last" (the patch
mask). The draws are those of `fused.sample_params` (each op's sampler, in policy order).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from augbench.augment.ops import LAST, OPS, RESAMPLE, OpContext, output_hw

Ops = Sequence[tuple[str, dict[str, Any]]]


def ordered(ops: Ops) -> list[tuple[str, dict[str, Any]]]:
    """The ops in the order they run: stage "resample", then policy order, then stage "last"."""
    first = [(o, p) for o, p in ops if OPS[o].stage == RESAMPLE]
    last = [(o, p) for o, p in ops if OPS[o].stage == LAST]
    return first + [(o, p) for o, p in ops if OPS[o].stage not in (RESAMPLE, LAST)] + last


def apply(x: torch.Tensor, ops: Ops, params: dict[str, dict[str, torch.Tensor]], *,
          dtype: torch.dtype = torch.float32, mask_mode: str = "pixel") -> torch.Tensor:
    """One view of the batch `x` (uint8 in [0, 255] or float in [0, 1]) with explicit `params`."""
    hw = tuple(x.shape[-2:])
    y = x.to(dtype).div_(255) if x.dtype == torch.uint8 else x.to(dtype)
    ctx = OpContext(list(ops), hw, output_hw(ops, hw), mask_mode)
    for op, p in ordered(ops):
        y = OPS[op].apply(y, p, params.get(op, {}), ctx)
    return y.clone() if y is x else y
