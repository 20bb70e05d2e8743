"""SSL methods: ``build_method(cfg, backbone)`` wraps a backbone with heads and a loss."""
from __future__ import annotations

from augbench.methods.base import Method
from augbench.methods.methods import BYOL, METHOD_CLASSES, BarlowTwins, SimCLR, SimSiam, VICReg
from augbench.models.heads import predictor, projector


def build_method(cfg, backbone) -> Method:
    """Heads from cfg.proj_depth/proj_hidden/proj_dim/proj_norm/proj_out_norm (depth 0 = identity,
    feat_dim out; out norm None = the method's default: an affine BN for SimSiam, none otherwise), a
    predictor for BYOL/SimSiam, and an EMA target encoder when ``cfg.uses_momentum``."""
    out_norm = cfg.proj_out_norm if cfg.proj_out_norm is not None else ("bn" if cfg.method == "simsiam" else "none")
    proj = projector(backbone.feat_dim, cfg.proj_hidden, cfg.proj_dim, cfg.proj_depth, cfg.proj_norm, out_norm)
    common = {"momentum": cfg.uses_momentum, "tau_base": cfg.tau_base}
    if cfg.method == "simclr":
        return SimCLR(backbone, proj, temperature=cfg.temperature, **common)
    if cfg.method == "byol":
        return BYOL(backbone, proj, predictor(proj.out_dim, cfg.pred_hidden), **common)
    if cfg.method == "simsiam":
        return SimSiam(backbone, proj, predictor(proj.out_dim, cfg.pred_hidden), **common)
    if cfg.method == "vicreg":
        return VICReg(backbone, proj, weights=cfg.vicreg_weights, **common)
    if cfg.method == "barlow":
        return BarlowTwins(backbone, proj, lambd=cfg.barlow_lambda, scale=cfg.barlow_scale, **common)
    raise ValueError(f"unknown method {cfg.method!r}")


__all__ = ["BYOL", "BarlowTwins", "METHOD_CLASSES", "Method", "SimCLR", "SimSiam", "VICReg", "build_method"]
