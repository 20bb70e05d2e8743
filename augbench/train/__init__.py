"""Pretraining: one method on one data set, from the first step to the last checkpoint.

- ``loop``: ``pretrain`` (the epoch and step loop), the data order, the per-epoch log, ``seed_everything``
- ``step``: what makes a step fast (torch.compile with an eager fallback, fused optimizers, device-side sums)
- ``optim``: SGD, LARS, AdamW and the warm-up + cosine lr
- ``checkpoint``: exact-resume checkpoints, every RNG state, the preemption request
- ``distributed``: torch.distributed set-up from SLURM/submitit or torchrun variables

Knows nothing of result rows or sweeps (``augbench.run`` turns a config into a row around it).
"""
