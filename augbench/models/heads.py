"""Projector/expander and predictor MLPs (built from blocks, as in lightly)."""
from __future__ import annotations

from torch import nn


NORMS = ("bn", "none")  # between hidden layers
OUT_NORMS = ("none", "bn", "bn_noaffine")  # on the output


class MLP(nn.Sequential):
    """``depth`` linear layers with (``norm="bn"``) BatchNorm + ReLU or (``"none"``) ReLU alone between
    them; depth 0 is the identity.

    depth 1: Linear(in, out); depth 2: Linear(in, hidden) [BN] ReLU Linear(hidden, out); depth 3 adds
    a hidden block. ``out_norm`` appends a BatchNorm on the output: "bn" (affine) or "bn_noaffine"
    (solo-learn's SimSiam projector). Linear layers followed by a BatchNorm have no bias.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, depth: int = 2, norm: str = "bn",
                 out_norm: str = "none"):
        if not 0 <= depth <= 3:
            raise ValueError(f"head depth must be 0..3 (got {depth})")
        if norm not in NORMS or out_norm not in OUT_NORMS:
            raise ValueError(f"head norm must be one of {NORMS} and out_norm one of {OUT_NORMS} "
                             f"(got {norm!r}, {out_norm!r})")
        layers: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (depth - 1) + [out_dim] if depth else []
        for i in range(depth):
            last = i == depth - 1
            bn_after = out_norm != "none" if last else norm == "bn"
            layers.append(nn.Linear(dims[i], dims[i + 1], bias=not bn_after))
            if not last:
                layers += ([nn.BatchNorm1d(dims[i + 1])] if bn_after else []) + [nn.ReLU(inplace=True)]
        if depth and out_norm != "none":
            layers.append(nn.BatchNorm1d(out_dim, affine=out_norm == "bn"))
        super().__init__(*layers)
        self.in_dim, self.out_dim, self.depth = in_dim, (out_dim if depth else in_dim), depth


def projector(in_dim: int, hidden_dim: int, out_dim: int, depth: int, norm: str = "bn",
              out_norm: str = "none") -> MLP:
    return MLP(in_dim, hidden_dim, out_dim, depth, norm, out_norm)


def predictor(dim: int, hidden_dim: int) -> MLP:
    """BYOL/SimSiam predictor: dim -> hidden -> dim."""
    return MLP(dim, hidden_dim, dim, depth=2)
