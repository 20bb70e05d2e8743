"""A run's evaluation of its pretrained encoder: weighted kNN, linear probe on frozen features, fine-tuning.

``evaluate_encoder`` is the whole evaluation of a run: one pass over the images gives both the
backbone features and the projector outputs (no augmentation, only the normalisation the encoder was
trained with); kNN is a chunked matmul on the device (bf16 on CUDA); the probe trains on the cached
feature tensor on the device. ``random_init_knn`` scores the untrained encoder once per (backbone,
data, seed, eval settings) and keeps the figure in a small JSON cache for later runs.
Results are top-1 in percent. The probe reports its LAST epoch with fixed hyper-parameters, never
the best epoch on test.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augbench.eval.features import encoder_features
from augbench.eval.finetune import finetune
from augbench.eval.knn import knn_top1
from augbench.eval.linear import linear_probe
from augbench.store.atomic import atomic_write


def evaluate_encoder(cfg, method: nn.Module, train, test, device: torch.device, *, norm, size,
                     progress: bool = False) -> dict[str, float]:
    """Every metric of a pretrained `method` on (train, test) data sets, as configured by `cfg`:
    knn_top1 (backbone), knn_top1_projector (when there is one), linear_top1, finetune_top1."""
    amp = bool(cfg.amp and device.type == "cuda")
    num_classes = len(train.classes)
    kw = dict(amp=amp, progress=progress)
    ftr = encoder_features(method, train.images, device, norm, size, desc="eval: train features", **kw)
    fte = encoder_features(method, test.images, device, norm, size, desc="eval: test features", **kw)
    m = {"knn_top1": knn_top1(ftr[0], train.labels, fte[0], test.labels, num_classes, cfg.knn_k, cfg.knn_t)}
    if len(ftr) > 1:
        m["knn_top1_projector"] = knn_top1(ftr[1], train.labels, fte[1], test.labels, num_classes,
                                           cfg.knn_k, cfg.knn_t)
    if cfg.linear_epochs > 0:
        m["linear_top1"] = linear_probe(ftr[0], train.labels, fte[0], test.labels, num_classes,
                                        epochs=cfg.linear_epochs, lr=cfg.linear_lr, seed=cfg.seed, progress=progress)
    del ftr, fte
    if cfg.finetune_epochs > 0:
        m["finetune_top1"] = finetune(method.backbone, train.images, train.labels, test.images, test.labels,
                                      num_classes, epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, device=device,
                                      norm=norm, size=tuple(size), seed=cfg.seed, backend=cfg.backend, amp=cfg.amp)
    return m


def random_init_key(cfg, device: torch.device, norm, size) -> dict[str, Any]:
    """What the kNN top-1 of a freshly initialised backbone depends on: its architecture and seed
    (the weights are drawn right after seeding, before any head), the data and the kNN settings."""
    return {"backbone": cfg.backbone, "cifar_stem": cfg.cifar_stem, "width": cfg.width,
            "patch_size": cfg.patch_size, "image_size": cfg.image_size, "dataset": cfg.dataset,
            "subset": cfg.subset, "eval_subset": cfg.eval_subset, "seed": cfg.seed, "knn_k": cfg.knn_k,
            "knn_t": cfg.knn_t, "norm": [list(v) for v in norm] if norm else None, "size": list(size),
            "amp": bool(cfg.amp and device.type == "cuda"), "device": device.type,
            "torch": torch.__version__.split("+")[0]}


def random_init_knn(cfg, method: nn.Module, train, test, device: torch.device, *, norm, size,
                    cache_dir: str | Path | None = None, progress: bool = False) -> float:
    """kNN top-1 of the untrained backbone of `method`, read from `cache_dir` when an earlier run
    with the same key (random_init_key) computed it, else computed and stored there (atomically:
    parallel runs may race to write the same figure)."""
    key = random_init_key(cfg, device, norm, size)
    path = None
    if cache_dir is not None:
        blob = json.dumps(key, sort_keys=True).encode()
        path = Path(cache_dir) / "random_init_knn" / f"{hashlib.sha256(blob).hexdigest()[:16]}.json"
        try:
            hit = json.loads(path.read_text())
            if hit.get("key") == key:
                return float(hit["knn_top1"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or unreadable: compute it again
    amp = bool(cfg.amp and device.type == "cuda")
    kw = dict(amp=amp, projector=False, progress=progress)
    (ftr,) = encoder_features(method, train.images, device, norm, size, desc="random-init kNN: train", **kw)
    (fte,) = encoder_features(method, test.images, device, norm, size, desc="random-init kNN: test", **kw)
    acc = knn_top1(ftr, train.labels, fte, test.labels, len(train.classes), cfg.knn_k, cfg.knn_t)
    if path is not None:
        atomic_write(path, json.dumps({"key": key, "knn_top1": acc}, indent=1, sort_keys=True))
    return acc
