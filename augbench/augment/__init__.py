"""Augmentation policies (data) and the engine that applies them to batches on any backend.

    from augbench.augment import Engine, Policy
    policy = Policy.named("simclr", size=224, dataset="imagenet")  # size-aware (blur, stats)
    engine = Engine(policy, backend="fused", seed=0)               # an nn.Module: batches
    views, params = engine(x, views=2, return_params=True)
    same = engine(x, params=params)                                # replay
    transform = policy.transform(views=2)                          # per image, for a DataLoader

Ops live one per module in `augbench.augment.ops` (spec, sampler, reference implementation);
`register_op(...)` adds a user's own, usable by name in any policy (examples/custom_op.py).
Only torch, numpy and pyyaml are needed here; Kornia and albumentations load with their backend.
"""
from augbench.augment.engine import BACKENDS, AugmentInputError, BackendUnavailable, Engine
from augbench.augment.ops import GROUPS, OPS, OpContext, OpSpec, PolicyError, register_op, unregister_op
from augbench.augment.policy import (NAMED, Policy, leave_one_out, only, pairwise, rand_augment, strength_sweep,
                                     trivial_augment)
from augbench.augment.sizing import DATASET_STATS, blur_kernel_size, channel_stats
from augbench.augment.transform import ViewTransform

__all__ = ["Policy", "PolicyError", "Engine", "AugmentInputError", "BackendUnavailable", "ViewTransform", "BACKENDS", "OPS", "GROUPS",
           "NAMED", "DATASET_STATS", "blur_kernel_size", "channel_stats",
           "leave_one_out", "only", "pairwise", "strength_sweep", "rand_augment", "trivial_augment",
           "register_op", "unregister_op", "OpSpec", "OpContext"]
