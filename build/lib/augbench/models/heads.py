"""Projector/expander and predictor MLPs (built from blocks, as in lightly)."""
from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """``depth`` linear layers with BatchNorm + ReLU between them; depth 0 is the identity.

    depth 1: Linear(in, out); depth 2: Linear(in, hidden) BN ReLU Linear(hidden, out); depth 3
    adds a hidden block. ``last_bn`` appends a BatchNorm on the output (SimSiam's projector).
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, depth: int = 2, last_bn: bool = False):
        if not 0 <= depth <= 3:
            raise ValueError(f"head depth must be 0..3 (got {depth})")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim] if depth else []
        for i in range(depth):
            last = i == depth - 1
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=last and not last_bn))
            if not last:
                layers += [nn.BatchNorm1d(dims[i + 1]), nn.ReLU(inplace=True)]
        if depth and last_bn:
            layers.append(nn.BatchNorm1d(out_dim))
        super().__init__(*layers)
        self.in_dim, self.out_dim, self.depth = in_dim, (out_dim if depth else in_dim), depth


def projector(in_dim: int, hidden_dim: int, out_dim: int, depth: int, last_bn: bool = False) -> MLP:
    return MLP(in_dim, hidden_dim, out_dim, depth, last_bn)


def predictor(dim: int, hidden_dim: int) -> MLP:
    """BYOL/SimSiam predictor: dim -> hidden -> dim."""
    return MLP(dim, hidden_dim, dim, depth=2)
