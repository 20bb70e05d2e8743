"""The shared method skeleton: online encoder, optional predictor, optional EMA target encoder.

Each view goes through the backbone on its own (BatchNorm statistics per view, and each view may
keep a different number of ViT tokens). A subclass only says how one (online, target) pair of
views is scored; the skeleton averages that over view pairs:
- symmetric losses with no target encoder: each unordered pair once (i < j);
- with a predictor or a momentum target: every ordered pair (i != j), which makes the loss
  symmetric, as in BYOL.
"""
from __future__ import annotations

import copy
import itertools
import math

import torch
from torch import nn


class Method(nn.Module):
    symmetric_loss = True  # pair_loss(a, b) == pair_loss(b, a)

    def __init__(self, backbone: nn.Module, projector: nn.Module, predictor: nn.Module | None = None,
                 momentum: bool = False, tau_base: float = 0.99):
        super().__init__()
        self.backbone, self.projector, self.predictor = backbone, projector, predictor
        self.momentum, self.tau_base, self.tau = momentum, tau_base, tau_base
        if momentum:
            # The target is a frozen copy updated only by update_target (EMA of the online weights).
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
            self.target_projector = copy.deepcopy(projector).requires_grad_(False)

    def pair_loss(self, online: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        raise NotImplementedError

    def forward(self, views: list[torch.Tensor], keep_idx=None) -> tuple[torch.Tensor, dict]:
        if len(views) < 2:
            raise ValueError(f"a method needs at least 2 views (got {len(views)})")
        keeps = list(keep_idx) if keep_idx is not None else [None] * len(views)
        if len(keeps) != len(views):
            raise ValueError(f"keep_idx has {len(keeps)} entries for {len(views)} views")
        z = [self.projector(self.backbone(v, keep_idx=k)) for v, k in zip(views, keeps)]
        online = [self.predictor(zi) for zi in z] if self.predictor is not None else z
        if self.momentum:
            with torch.no_grad():
                target = [self.target_projector(self.target_backbone(v, keep_idx=k)) for v, k in zip(views, keeps)]
        else:
            target = z  # stop-gradient, where the method wants it, is part of its loss
        n = len(views)
        if self.symmetric_loss and self.predictor is None and not self.momentum:
            pairs = list(itertools.combinations(range(n), 2))
        else:
            pairs = list(itertools.permutations(range(n), 2))
        total, logs = 0.0, {}
        for i, j in pairs:
            loss, parts = self.pair_loss(online[i], target[j])
            total = total + loss
            for k, v in parts.items():
                logs[k] = logs.get(k, 0.0) + v.detach() / len(pairs)
        total = total / len(pairs)
        logs["loss"] = total.detach()
        # Mean per-dimension std of the normalised embeddings: ~1/sqrt(dim) when healthy, 0 on collapse.
        logs["z_std"] = nn.functional.normalize(z[0].detach().float(), dim=1).std(0).mean()
        if self.momentum:
            logs["tau"] = torch.tensor(self.tau)
        return total, logs

    @torch.no_grad()
    def update_target(self, step: int, total_steps: int) -> None:
        """EMA update of the target with BYOL's cosine schedule:
        tau = 1 - (1 - tau_base) * (cos(pi * step / total_steps) + 1) / 2 (tau_base -> 1)."""
        if not self.momentum:
            return
        frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
        self.tau = 1 - (1 - self.tau_base) * (math.cos(math.pi * frac) + 1) / 2
        for online, target in ((self.backbone, self.target_backbone), (self.projector, self.target_projector)):
            t_params = list(target.parameters())
            if t_params:
                torch._foreach_lerp_(t_params, list(online.parameters()), 1 - self.tau)
            for tb, ob in zip(target.buffers(), online.buffers()):
                tb.copy_(ob)  # BatchNorm statistics follow the online network
