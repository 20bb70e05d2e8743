"""SSL losses as pure functions of embeddings.

Under torch.distributed, the batch-level losses (NT-Xent, VICReg, Barlow Twins) first gather the
embeddings of all ranks with an autograd-aware all_gather and compute the loss on the global
batch. Every rank then computes the same loss; the gather's backward sums each rank's gradient,
which DDP's averaging turns back into the exact global-batch gradient.

They also run in float32 with autocast off: similarity and correlation matrices lose too much
in bfloat16, and at projector widths the cost is negligible.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F


def _fp32(fn):
    @functools.wraps(fn)
    def wrapper(*tensors, **kw):  # tensors first, then numbers (temperature, weights)
        with torch.autocast(tensors[0].device.type, enabled=False):
            return fn(*(t.float() if isinstance(t, torch.Tensor) else t for t in tensors), **kw)
    return wrapper


def gather(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` across ranks (with gradient) when distributed; ``z`` otherwise."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z), dim=0)


@_fp32
def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR's normalised-temperature cross entropy over the 2N embeddings: each one's positive
    is its other view, the other 2N - 2 are negatives."""
    z = F.normalize(torch.cat([gather(z1), gather(z2)]), dim=1)
    n = z.shape[0] // 2
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, targets)


@_fp32
def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL: 2 - 2 cos(p, z), averaged; ``z`` (the target) gets no gradient."""
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


@_fp32
def simsiam_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam: -cos(p, stopgrad(z)), averaged."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def _off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


@_fp32
def vicreg_terms(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-4):
    """VICReg's (invariance, variance, covariance) terms, unweighted."""
    z1, z2 = gather(z1), gather(z2)
    n, d = z1.shape
    inv = F.mse_loss(z1, z2)
    var = cov = 0.0
    for z in (z1, z2):
        std = torch.sqrt(z.var(dim=0) + eps)
        var = var + F.relu(1 - std).mean() / 2
        zc = z - z.mean(dim=0)
        c = (zc.T @ zc) / (n - 1)
        cov = cov + _off_diagonal(c).pow(2).sum() / d
    return inv, var, cov


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, inv: float = 25.0, var: float = 25.0,
                cov: float = 1.0) -> torch.Tensor:
    i, v, c = vicreg_terms(z1, z2)
    return inv * i + var * v + cov * c


@_fp32
def barlow_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.005, eps: float = 1e-5) -> torch.Tensor:
    """Barlow Twins: push the cross-correlation of batch-standardised embeddings to the identity;
    ``lambd`` weighs the off-diagonal (redundancy) term."""
    z1, z2 = gather(z1), gather(z2)
    n = z1.shape[0]
    z1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + eps)
    z2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + eps)
    c = (z1.T @ z2) / n
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = _off_diagonal(c).pow(2).sum()
    return on + lambd * off
