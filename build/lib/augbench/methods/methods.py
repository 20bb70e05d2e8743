"""The five methods, each a small class over its loss in ``losses.py``."""
from __future__ import annotations

from augbench.methods import losses
from augbench.methods.base import Method


class SimCLR(Method):
    def __init__(self, backbone, projector, temperature: float = 0.5, **kw):
        super().__init__(backbone, projector, **kw)
        self.temperature = temperature

    def pair_loss(self, online, target):
        return losses.nt_xent(online, target, self.temperature), {}


class BYOL(Method):
    symmetric_loss = False

    def __init__(self, backbone, projector, predictor, momentum: bool = True, **kw):
        super().__init__(backbone, projector, predictor, momentum=momentum, **kw)

    def pair_loss(self, online, target):
        return losses.byol_loss(online, target), {}


class SimSiam(Method):
    symmetric_loss = False

    def pair_loss(self, online, target):
        return losses.simsiam_loss(online, target), {}


class VICReg(Method):
    def __init__(self, backbone, projector, weights=(25.0, 25.0, 1.0), **kw):
        super().__init__(backbone, projector, **kw)
        self.weights = tuple(float(w) for w in weights)

    def pair_loss(self, online, target):
        inv, var, cov = losses.vicreg_terms(online, target)
        wi, wv, wc = self.weights
        return wi * inv + wv * var + wc * cov, {"invariance": inv, "variance": var, "covariance": cov}


class BarlowTwins(Method):
    def __init__(self, backbone, projector, lambd: float = 0.005, **kw):
        super().__init__(backbone, projector, **kw)
        self.lambd = lambd

    def pair_loss(self, online, target):
        return losses.barlow_loss(online, target, self.lambd), {}


METHOD_CLASSES = {"simclr": SimCLR, "byol": BYOL, "simsiam": SimSiam, "vicreg": VICReg, "barlow": BarlowTwins}
