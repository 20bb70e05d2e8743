"""Evaluation of a pretrained encoder: weighted kNN, linear probe on frozen features, fine-tuning.

Features are computed once without augmentation (only the normalisation the encoder was trained
with); the probe then trains on the feature tensor on the device. Results are top-1 in percent.
The probe reports its LAST epoch with fixed hyper-parameters, never the best epoch on test.
"""
from __future__ import annotations

import copy
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from augbench.augment.ops import CIFAR10_MEAN, CIFAR10_STD


def normalization(policy) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The mean/std the views were normalised with; None when the policy does not normalise."""
    if policy is None:
        return CIFAR10_MEAN, CIFAR10_STD
    if policy.has("normalize"):
        p = policy.params("normalize")
        return tuple(p["mean"]), tuple(p["std"])
    return None


def prepare(x: torch.Tensor, norm, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, resized to the training view size, normalised."""
    x = x.float().div_(255.0)
    if size is not None and tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    if norm is not None:
        mean = torch.tensor(norm[0], device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(norm[1], device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, device: torch.device,
            norm=None, size=None, batch: int = 1024, amp: bool = False) -> torch.Tensor:
    """fn applied to every image (no augmentation), as float32 features on `device`."""
    out = []
    for i in range(0, len(images), batch):
        x = prepare(images[i:i + batch].to(device, non_blocking=True), norm, size)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(fn(x).float())
    return torch.cat(out)


# ---------------------------------------------------------------------------- kNN
@torch.no_grad()
def knn_predict(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                k: int = 200, t: float = 0.1, chunk: int = 1024) -> torch.Tensor:
    """Weighted kNN on cosine similarity (Wu et al. 2018 / DINO): each of the k nearest neighbours
    votes for its class with weight exp(sim / t)."""
    train_f = F.normalize(train_f.float(), dim=1)
    test_f = F.normalize(test_f.float(), dim=1)
    train_y = train_y.to(train_f.device)
    k = min(k, len(train_f))
    preds = []
    for i in range(0, len(test_f), chunk):
        sim = test_f[i:i + chunk] @ train_f.T
        top_sim, top_idx = sim.topk(k, dim=1)
        weights = (top_sim / t).exp()
        votes = torch.zeros(len(sim), num_classes, device=sim.device)
        votes.scatter_add_(1, train_y[top_idx], weights)
        preds.append(votes.argmax(1))
    return torch.cat(preds)


def knn_top1(train_f, train_y, test_f, test_y, num_classes: int, k: int = 200, t: float = 0.1) -> float:
    pred = knn_predict(train_f, train_y, test_f, num_classes, k, t)
    return 100.0 * (pred.cpu() == test_y.cpu()).float().mean().item()


# ---------------------------------------------------------------------------- linear probe
def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, epochs: int = 100, lr: float = 0.1, seed: int = 0, batch: int = 256,
                 weight_decay: float = 0.0) -> float:
    """A linear classifier on frozen features: standardised with the training statistics (so one
    lr fits every encoder), zero-initialised, SGD + cosine, seeded order. Top-1 of the last epoch."""
    device = train_f.device
    mean, std = train_f.mean(0, keepdim=True), train_f.std(0, keepdim=True).clamp_min(1e-6)
    xtr, xte = (train_f - mean) / std, (test_f.to(device) - mean) / std
    ytr = train_y.to(device)
    head = nn.Linear(xtr.shape[1], num_classes).to(device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    steps_per_epoch = max(1, math.ceil(len(xtr) / batch))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xtr), generator=g).to(device)
        for i in range(0, len(xtr), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(head(xtr[idx]), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        pred = head(xte).argmax(1)
    return 100.0 * (pred.cpu() == test_y.cpu()).float().mean().item()


# ---------------------------------------------------------------------------- fine-tuning
def finetune(backbone: nn.Module, train_images: torch.Tensor, train_y: torch.Tensor, test_images: torch.Tensor,
             test_y: torch.Tensor, num_classes: int, *, epochs: int, lr: float, device: torch.device,
             norm=None, size: tuple[int, int] = (32, 32), seed: int = 0, batch: int = 256,
             backend: str = "fused", amp: bool = False) -> float:
    """End-to-end fine-tuning of a copy of `backbone` plus a linear head, with light augmentation
    (random resized crop, scale >= 0.5, and flip, through the engine). Top-1 of the last epoch."""
    from augbench.augment import Engine
    from augbench.augment.policy import Policy

    ops = [{"op": "random_resized_crop", "size": list(size), "scale": [0.5, 1.0]}, {"op": "horizontal_flip"}]
    if norm is not None:
        ops.append({"op": "normalize", "mean": list(norm[0]), "std": list(norm[1])})
    engine = Engine(Policy.from_dict({"name": "finetune_light", "ops": ops}), backend=backend, seed=seed, device=device)
    model = nn.Sequential(copy.deepcopy(backbone), nn.Linear(backbone.feat_dim, num_classes)).to(device)
    nn.init.zeros_(model[1].weight)
    nn.init.zeros_(model[1].bias)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    images = train_images.to(device)
    labels = train_y.to(device)
    batch = min(batch, len(images))
    steps_per_epoch = len(images) // batch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    g = torch.Generator().manual_seed(seed)
    amp = amp and device.type == "cuda"
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=g).to(device)
        for i in range(steps_per_epoch):
            idx = perm[i * batch:(i + 1) * batch]
            (x,) = engine(images[idx], views=1)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(x).float(), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    logits = extract(model, test_images, device, norm, size, amp=amp)
    return 100.0 * (logits.argmax(1).cpu() == test_y.cpu()).float().mean().item()
