"""The augmentation ops a policy may name: one module per op, each holding the op's spec (names,
defaults and ranges as in Kornia / torchvision, the checks that make a bad value fail with a
message naming the op and the field), its parameter sampler and its reference implementation on
batched tensors (see `spec.OpSpec`), and the registry that holds them (`OPS`, `register_op`).

    from augbench.augment import register_op, OpSpec
    register_op(name="invert", params={"p": (0.5, prob)}, sample=..., apply=..., doc="...")

Fast paths (the fused backend's torch path and its numba / Triton kernels) declare the ops they
cover (`COVERS` in each kernel module); a policy with any other op runs each op's reference
(`augbench.augment.reference`). Built-in ops, in the order `augbench ops` lists them:
"""
from __future__ import annotations

from augbench.augment.ops import (affine, blur, color_jitter, crop, equalize, erasing, flip, grayscale, mask,
                                  normalize, posterize, rand_augment, resize, rotation, solarize)
from augbench.augment.ops.registry import (BUILTIN, GROUPS, OPS, auto_space, get_op, load_plugins,
                                           normalise_params, output_hw, register_op, unregister_op)
from augbench.augment.ops.spec import (CIFAR10_MEAN, CIFAR10_STD, LAST, ORDER, RESAMPLE, AutoOp, Check, OpContext,
                                       OpSpec, PolicyError, _num, choice, jitter_factor, mask_ratio, number, pos_int,
                                       prob, range_in, size, symmetric_range, triple, unit)

# the first nine are those of every committed result; the order of the rest is only the listing's
BUILTIN_MODULES = (crop, resize, flip, color_jitter, grayscale, blur, solarize, mask, normalize,
                   erasing, equalize, posterize, rotation, affine, rand_augment)
for _m in BUILTIN_MODULES:
    register_op(_m.SPEC, builtin=True)
del _m

__all__ = ["OPS", "GROUPS", "BUILTIN", "OpSpec", "OpContext", "AutoOp", "PolicyError", "Check", "register_op",
           "unregister_op", "normalise_params", "get_op", "load_plugins", "output_hw", "auto_space",
           "prob", "range_in", "symmetric_range", "jitter_factor", "pos_int", "size", "triple", "unit", "mask_ratio",
           "choice", "number", "CIFAR10_MEAN", "CIFAR10_STD", "RESAMPLE", "ORDER", "LAST"]
