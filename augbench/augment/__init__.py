"""Augmentation policies (data) and the engine that applies them to batches on any backend."""
from augbench.augment.engine import BACKENDS, AugmentInputError, Engine
from augbench.augment.ops import GROUPS, OPS, PolicyError
from augbench.augment.policy import NAMED, Policy, leave_one_out, only, pairwise, strength_sweep

__all__ = ["Policy", "PolicyError", "Engine", "AugmentInputError", "BACKENDS", "OPS", "GROUPS", "NAMED",
           "leave_one_out", "only", "pairwise", "strength_sweep"]
