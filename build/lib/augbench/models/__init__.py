"""Backbones (ResNet, ViT) and heads; ``build_backbone(cfg)`` from a RunConfig."""
from __future__ import annotations

from torch import nn

from augbench.models.heads import MLP, predictor, projector
from augbench.models.resnet import ResNet, resnet18, resnet50
from augbench.models.vit import VIT_SIZES, ViT, vit


def build_backbone(cfg, **overrides) -> nn.Module:
    """The backbone a RunConfig names. ``overrides`` go to the ViT (depth, embed_dim, num_heads)
    so tests can build tiny ones; ResNets take their size from ``cfg.width``."""
    if cfg.backbone == "resnet18":
        return resnet18(width=cfg.width, cifar_stem=cfg.cifar_stem)
    if cfg.backbone == "resnet50":
        return resnet50(width=cfg.width, cifar_stem=cfg.cifar_stem)
    if cfg.backbone in VIT_SIZES:
        return vit(cfg.backbone, image_size=cfg.image_size, patch_size=cfg.patch_size, **overrides)
    raise ValueError(f"unknown backbone {cfg.backbone!r}")


__all__ = ["MLP", "ResNet", "ViT", "build_backbone", "predictor", "projector", "resnet18", "resnet50", "vit"]
