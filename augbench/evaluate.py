"""Evaluation of a pretrained encoder: weighted kNN, linear probe on frozen features, fine-tuning.

``evaluate_encoder`` is the whole evaluation of a run: one pass over the images gives both the
backbone features and the projector outputs (no augmentation, only the normalisation the encoder was
trained with); kNN is a chunked matmul on the device (bf16 on CUDA); the probe trains on the cached
feature tensor on the device. ``random_init_knn`` scores the untrained encoder once per (backbone,
data, seed, eval settings) and keeps the figure in a small JSON cache for later runs.
Results are top-1 in percent. The probe reports its LAST epoch with fixed hyper-parameters, never
the best epoch on test.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from augbench.atomic import atomic_write
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


def _bar(total: int, desc: str, progress: bool, unit: str = "it"):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, dynamic_ncols=True, leave=False)


@torch.no_grad()
def extract(fn: Callable[[torch.Tensor], Any], images: torch.Tensor, device: torch.device,
            norm=None, size=None, batch: int = 1024, amp: bool = False, desc: str = "features",
            progress: bool = False, nhwc: bool | None = None):
    """fn applied to every image (no augmentation), as float32 features on `device`; a tuple of
    them when fn returns a tuple (several outputs of one forward pass)."""
    out: list = []
    nhwc = (amp and device.type == "cuda") if nhwc is None else nhwc
    with _bar(len(images), desc, progress, "img") as bar:
        for i in range(0, len(images), batch):
            x = prepare(images[i:i + batch].to(device, non_blocking=True), norm, size)
            if nhwc:  # the layout the model was trained in (train.pretrain)
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
                y = fn(x)
            out.append(tuple(t.float() for t in y) if isinstance(y, tuple) else y.float())
            bar.update(len(x))
    if out and isinstance(out[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*out))
    return torch.cat(out)


def encoder_features(method: nn.Module, images: torch.Tensor, device: torch.device, norm, size, *,
                     amp: bool = False, projector: bool = True, desc: str = "features",
                     progress: bool = False) -> tuple[torch.Tensor, ...]:
    """(backbone features,) or (backbone features, projector outputs), from ONE forward pass per
    batch, in eval mode."""
    method.eval()
    bb, proj = method.backbone, getattr(method, "projector", None)
    if projector and isinstance(proj, nn.Module) and any(True for _ in proj.parameters()):
        def fn(x):
            f = bb(x)
            return f, proj(f)
    else:
        def fn(x):
            return (bb(x),)
    w = next((p for p in bb.parameters() if p.dim() == 4), None)  # feed a channels_last model NHWC
    nhwc = w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
    return extract(fn, images, device, norm, size, amp=amp, desc=desc, progress=progress, nhwc=nhwc)


# ---------------------------------------------------------------------------- kNN
@torch.no_grad()
def knn_predict(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, num_classes: int,
                k: int = 200, t: float = 0.1, chunk: int | None = None) -> torch.Tensor:
    """Weighted kNN on cosine similarity (Wu et al. 2018 / DINO): each of the k nearest neighbours
    votes for its class with weight exp(sim / t). On CUDA the similarity matmul runs in bf16 (the
    top-k and the votes in fp32), 4096 test rows at a time; on the CPU in fp32, 1024 at a time."""
    cuda = train_f.device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    chunk = chunk or (4096 if cuda else 1024)
    train_t = F.normalize(train_f.float(), dim=1).to(dtype).T.contiguous()
    test_f = F.normalize(test_f.float().to(train_f.device), dim=1).to(dtype)
    train_y = train_y.to(train_f.device)
    k = min(k, len(train_f))
    preds = []
    for i in range(0, len(test_f), chunk):
        sim = (test_f[i:i + chunk] @ train_t).float()
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
@torch.no_grad()
def linear_probe(train_f: torch.Tensor, train_y: torch.Tensor, test_f: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, epochs: int = 100, lr: float = 0.1, seed: int = 0, batch: int = 256,
                 weight_decay: float = 0.0, progress: bool = False) -> float:
    """A linear classifier on frozen features: standardised with the training statistics (so one
    lr fits every encoder), zero-initialised, SGD (momentum 0.9) + per-step cosine, seeded order,
    cross-entropy. Top-1 of the last epoch.

    Written out by hand, since it is the evaluation's hot loop: the bias is a column of ones in the
    features, the gradient of the mean cross-entropy is X^T (softmax - onehot) / B, and each epoch
    gathers the shuffled features once so that a step is 5 launches on views (no autograd, no
    optimizer objects): the same updates as torch.optim.SGD with CosineAnnealingLR."""
    device = train_f.device
    mean, std = train_f.mean(0, keepdim=True), train_f.std(0, keepdim=True).clamp_min(1e-6)
    w = fit_linear((train_f - mean) / std, train_y, num_classes, epochs, lr, seed, batch, weight_decay, progress)
    pred = torch.addmm(w[-1], (test_f.to(device) - mean) / std, w[:-1]).argmax(1)
    return 100.0 * (pred.cpu() == test_y.cpu()).float().mean().item()


@torch.no_grad()
def fit_linear(x: torch.Tensor, y: torch.Tensor, num_classes: int, epochs: int, lr: float, seed: int,
               batch: int = 256, weight_decay: float = 0.0, progress: bool = False) -> torch.Tensor:
    """The probe's (D + 1, C) weights, the bias as the last row (see linear_probe)."""
    device = x.device
    xtr = torch.cat([x, torch.ones(len(x), 1, device=device)], 1)
    onehot = F.one_hot(y.to(device).long(), num_classes).float()
    w = torch.zeros(xtr.shape[1], num_classes, device=device)  # last row: the bias
    buf = torch.zeros_like(w)
    n = len(xtr)
    total = epochs * max(1, math.ceil(n / batch))
    g = torch.Generator().manual_seed(seed)
    step = 0
    for _ in _epochs(epochs, "eval: linear probe", progress):
        perm = torch.randperm(n, generator=g).to(device)
        xp, yp = xtr[perm], onehot[perm]
        for i in range(0, n, batch):
            xb = xp[i:i + batch]
            p = torch.softmax(xb @ w, dim=1).sub_(yp[i:i + batch])
            buf.addmm_(xb.T, p, beta=0.9 if step else 0.0, alpha=1.0 / len(xb))  # momentum buffer
            if weight_decay:
                buf.add_(w, alpha=weight_decay)
            w.add_(buf, alpha=-0.5 * lr * (1.0 + math.cos(math.pi * step / total)))
            step += 1
    return w


def _epochs(epochs: int, desc: str, progress: bool):
    with _bar(epochs, desc, progress, "epoch") as bar:
        for e in range(epochs):
            yield e
            bar.update(1)


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


# ---------------------------------------------------------------------------- a run's evaluation
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
