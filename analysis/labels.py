"""Readable names for figures and LaTeX tables (`no_crop` -> "− crop", `knn_top1` -> "kNN top-1"). The
Markdown tables keep the raw names: they are what a user types into a sweep file or `--policy`."""
from __future__ import annotations

import re

METRIC = {"knn_top1": "kNN top-1", "linear_top1": "linear top-1", "finetune_top1": "fine-tune top-1",
          "knn_top1_projector": "kNN top-1 (projector)", "knn_top1_random_init": "kNN top-1 (random init)"}
METHOD = {"simclr": "SimCLR", "byol": "BYOL", "vicreg": "VICReg", "barlow": "Barlow Twins", "simsiam": "SimSiam"}
BACKBONE = {"resnet18": "ResNet-18", "resnet50": "ResNet-50", "vit_nano": "ViT-Nano", "vit_micro": "ViT-Micro",
            "vit_tiny": "ViT-Tiny", "vit_small": "ViT-Small"}
DATASET = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "imagenette32": "Imagenette-32", "stl10": "STL-10",
           "stl10-unlabeled": "STL-10 (+unlabeled)", "tiny-imagenet": "Tiny-ImageNet"}
PROTOCOL = {"knn_top1": "kNN", "linear_top1": "linear", "finetune_top1": "fine-tune"}
# one colour per thing in every figure (seaborn's "deep" palette)
PALETTE = {"kNN": "#4C72B0", "linear": "#DD8452", "fine-tune": "#55A868", "backbone": "#4C72B0",
           "projector output": "#8172B3", "off": "#8C8C8C", "on": "#C44E52"}
COLUMN = {"method": "Method", "backbone": "Backbone", "dataset": "Data", "epochs": "Epochs", "policy": "Policy",
          "n": "n", "n pairs": "n", "seeds": "Seeds", "rank": "Rank", "augmentation": "Augmentation"}
_ONLY = re.compile(r"^(?P<groups>[a-z_]+)_only$")


def metric(m: str) -> str:
    return METRIC.get(m, m)


def policy(p) -> str:
    """`no_crop` -> "− crop", `crop_only` -> "crop only", `crop_flip_only` -> "crop + flip only"."""
    p = str(p)
    if p.startswith("no_"):
        return "− " + p.removeprefix("no_")
    m = _ONLY.match(p)
    if m:
        return " + ".join(m["groups"].split("_")) + " only"
    return p


def value(column: str, v) -> str:
    """A text cell under its column's name map (methods, backbones, policies, data sets)."""
    maps = {"method": METHOD, "backbone": BACKBONE, "dataset": DATASET}
    if column == "policy":
        return policy(v)
    return maps.get(column, {}).get(str(v), str(v))


def column(c: str) -> str:
    for raw, nice in METRIC.items():  # "drop knn_top1" -> "drop kNN top-1"
        c = c.replace(raw, nice)
    return COLUMN.get(c, c)


def cell(key: dict, sep: str = " / ", extra_sep: str = ", ") -> str:
    """'SimCLR / ResNet-18 / CIFAR-10 / 30 ep' (+ extra_sep + 'lr=0.1' for design fields that split cells)."""
    core = [f"{v} ep" if k == "epochs" else value(k, v) for k, v in key.items()
            if k in ("method", "backbone", "dataset", "epochs")]
    extra = [f"{k}={v}" for k, v in key.items() if k not in ("method", "backbone", "dataset", "epochs")]
    return sep.join(core) + (extra_sep + ", ".join(extra) if extra else "")
