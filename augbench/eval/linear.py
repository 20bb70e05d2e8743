"""The linear probe on frozen features: SGD written out by hand (5 launches a step, the same updates as
torch.optim.SGD with CosineAnnealingLR). Reports its LAST epoch with fixed hyper-parameters, never the
best epoch on test."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from augbench.eval.features import _bar


@torch.no_grad()
def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, epochs: int = 100, lr: float = 0.1, seed: int = 0, batch: int = 256,
                 weight_decay: float = 0.0, progress: bool = False) -> float:
    """A linear classifier on frozen features: standardised with the training statistics (so one
    lr fits every encoder), zero-initialised, SGD (momentum 0.9) + per-step cosine, seeded order,
    cross-entropy. Top-1 of the last epoch.

    Written out by hand, since it is the evaluation's hot loop: the bias is a column of ones in the
    features, the gradient of the mean cross-entropy is X^T (softmax - onehot) / B, and each epoch
    gathers the shuffled features once so that a step is 5 launches on views (no autograd, no
    optimizer objects): the same updates as torch.optim.SGD with CosineAnnealingLR."""
    device = train_f.device
    mean, std = train_f.mean(0, keepdim=True), train_f.std(0, keepdim=True).clamp_min(1e-6)
    w = fit_linear((train_f - mean) / std, train_y, num_classes, epochs, lr, seed, batch, weight_decay, progress)
    pred = torch.addmm(w[-1], (test_f.to(device) - mean) / std, w[:-1]).argmax(1)
    return 100.0 * (pred.cpu() == test_y.cpu()).float().mean().item()


@torch.no_grad()
def fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, lr: float, seed: int,
               batch: int = 256, weight_decay: float = 0.0, progress: bool = False) -> torch.Tensor:
    """The probe's (D + 1, C) weights, the bias as the last row (see linear_probe)."""
    device = x.device
    xtr = torch.cat([x, torch.ones(len(x), 1, device=device)], 1)
    onehot = F.one_hot(y.to(device).long(), num_classes).float()
    w = torch.zeros(xtr.shape[1], num_classes, device=device)  # last row: the bias
    buf = torch.zeros_like(w)
    n = len(xtr)
    total = epochs * max(1, math.ceil(n / batch))
    g = torch.Generator().manual_seed(seed)
    step = 0
    for _ in _epochs(epochs, "eval: linear probe", progress):
        perm = torch.randperm(n, generator=g).to(device)
        xp, yp = xtr[perm], onehot[perm]
        for i in range(0, n, batch):
            xb = xp[i:i + batch]
            p = torch.softmax(xb @ w, dim=1).sub_(yp[i:i + batch])
            buf.addmm_(xb.T, p, beta=0.9 if step else 0.0, alpha=1.0 / len(xb))  # momentum buffer
            if weight_decay:
                buf.add_(w, alpha=weight_decay)
            w.add_(buf, alpha=-0.5 * lr * (1.0 + math.cos(math.pi * step / total)))
            step += 1
    return w


def _epochs(epochs: int, desc: str, progress: bool):
    with _bar(epochs, desc, progress, "epoch") as bar:
        for e in range(epochs):
            yield e
            bar.update(1)
