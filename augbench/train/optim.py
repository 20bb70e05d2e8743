"""Optimisers and the learning-rate schedule: SGD, LARS (solo-learn's variant) and AdamW, built from
a RunConfig (``build_optimizer``), and the warm-up + cosine lr per step (``lr_at``).

Biases and norm weights (the 1-d parameters) can be left out of weight decay and, under LARS, out
of the trust ratio (``exclude_bias_norm``), as in SimCLR, BYOL and solo-learn's CIFAR recipes.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch


def peak_lr(cfg, world_size: int = 1) -> float:
    """The lr after warm-up. ``lr_scaling: linear``: cfg.lr is for a batch of 256 and scales with the
    global batch (batch_size x world size), solo-learn's rule; ``none``: cfg.lr as is."""
    if cfg.lr_scaling == "none":
        return cfg.lr
    return cfg.lr * cfg.batch_size * world_size / 256


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from 0, then cosine decay to 0, per step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017), as solo-learn has it
    (solo/utils/lars.py): for each parameter with a non-zero norm and gradient,

        trust = eta * |p| / (|g| + weight_decay * |p| + eps)   (clip_lr: min(trust / lr, 1))
        d = trust * (g + weight_decay * p)

    otherwise d = g (no decay); then buf = momentum * buf + d and p -= lr * buf. A param group with
    ``adapt: False`` (biases and norms, see ``param_groups``) takes plain SGD steps.
    Written with torch._foreach_* ops: one kernel per op for the whole group, no per-parameter
    norm calls from Python."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0,
                 eta: float = 0.001, clip_lr: bool = False, eps: float = 1e-8):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta,
                                      clip_lr=clip_lr, eps=eps, adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            wd = g["weight_decay"]
            if g["adapt"]:
                p_norm = torch.stack(torch._foreach_norm(params))
                g_norm = torch.stack(torch._foreach_norm(grads))
                trust = g["eta"] * p_norm / (g_norm + p_norm * wd + g["eps"])
                if g["clip_lr"]:
                    trust = torch.clamp(trust / g["lr"], max=1.0)
                # a zero norm: solo-learn steps by the bare gradient. With d = scale * (g + wd p) that is
                # scale 1 where |p| = 0 (p is 0) and scale 0 where |g| = 0 (g is 0)
                plain = torch.where(p_norm > 0, torch.zeros_like(trust), torch.ones_like(trust))
                scale = torch.where((p_norm > 0) & (g_norm > 0), trust, plain)
                d = torch._foreach_add(grads, params, alpha=wd) if wd else torch._foreach_mul(grads, 1.0)
                torch._foreach_mul_(d, scale.unbind())
            else:
                d = torch._foreach_add(grads, params, alpha=wd) if wd else grads
            if g["momentum"]:
                d = self._momentum(params, d, g["momentum"])
            torch._foreach_add_(params, d, alpha=-g["lr"])
        return loss

    def _momentum(self, params, d, momentum: float):
        bufs, old, new = [], [], []
        for p, di in zip(params, d):
            st = self.state[p]
            if "momentum_buffer" not in st:
                st["momentum_buffer"] = di.clone()
            else:
                old.append(st["momentum_buffer"])
                new.append(di)
            bufs.append(st["momentum_buffer"])
        if old:
            torch._foreach_mul_(old, momentum)
            torch._foreach_add_(old, new)
        return bufs


def param_groups(params: Iterable[torch.nn.Parameter], exclude_bias_norm: bool, lars: bool = False,
                 scaled: Iterable[torch.nn.Parameter] = (), lr_mult: float = 1.0) -> list[dict[str, Any]]:
    """One group, or (exclude_bias_norm) the >1-d weights and a second group of biases and norm
    weights with no weight decay (and, for LARS, no trust ratio). The `scaled` parameters (a
    predictor) get groups of their own with ``lr_mult``: their lr is that multiple of the schedule's
    (``set_lr``)."""
    params = [p for p in params if p.requires_grad]
    scaled_ids = {id(p) for p in scaled} if lr_mult != 1 else set()
    parts = [([p for p in params if id(p) not in scaled_ids], {}),
             ([p for p in params if id(p) in scaled_ids], {"lr_mult": float(lr_mult)})]
    rest: dict[str, Any] = {"weight_decay": 0.0, **({"adapt": False} if lars else {})}
    groups = []
    for ps, extra in parts:
        if not exclude_bias_norm:
            groups.append({"params": ps, **extra})
        else:
            groups += [{"params": [p for p in ps if p.ndim > 1], **extra},
                       {"params": [p for p in ps if p.ndim <= 1], **rest, **extra}]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg, params, lr: float, predictor: Iterable[torch.nn.Parameter] = ()) -> torch.optim.Optimizer:
    """The run's optimizer at lr `lr`; the `predictor` parameters at cfg.pred_lr_mult times it."""
    groups = param_groups(params, cfg.exclude_bias_norm, lars=cfg.optimizer == "lars", scaled=predictor,
                          lr_mult=cfg.pred_lr_mult)
    for g in groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay, eta=cfg.lars_eta,
                    clip_lr=cfg.lars_clip)
    return torch.optim.AdamW(groups, lr=lr, weight_decay=cfg.weight_decay, foreach=True)
