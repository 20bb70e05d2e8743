"""The pretraining loop, airbench style: the whole training set sits on the device as uint8, each
epoch is a seeded permutation sliced into batches, the Engine makes the views on the device.

One call: ``pretrain(cfg, method, images, device=...)`` -> TrainResult. Resumes exactly from a
checkpoint state (see augbench.checkpoint) and saves at step boundaries on request (preemption).
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from augbench import checkpoint, distributed
from augbench.atomic import atomic_write

TIMING_EVERY_CUDA = 10  # on CUDA, sync around the engine on every 10th step only (syncs cost throughput)
CHECK_EVERY_CUDA = 20  # on CUDA, look for NaN every 20 steps (a check is a host sync)
STOP_CHECK_EVERY_DDP = 10  # under DDP, agree on a requested checkpoint every 10 steps


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or infinite; the run is recorded as failed with this message."""


@dataclass
class TrainResult:
    history: list[dict[str, Any]]
    final_loss: float
    train_s: float
    aug_fraction: float
    steps: int
    extra: dict[str, Any] = field(default_factory=dict)  # what the caller stored in the checkpoint


# ---------------------------------------------------------------------------- schedule & optimisers
def peak_lr(cfg, world_size: int = 1) -> float:
    """Linear scaling rule: base lr is for a batch of 256 (global batch = batch_size x world size)."""
    return cfg.lr * cfg.batch_size * world_size / 256


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warm-up from 0, then cosine decay to 0, per step."""
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return peak * 0.5 * (1.0 + math.cos(math.pi * progress))


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017). Biases and norm weights
    (1-d parameters) get neither weight decay nor adaptation, as in SimCLR/BYOL."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if p.ndim > 1:
                    d = d.add(p, alpha=g["weight_decay"])
                    p_norm, d_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(d)
                    trust = torch.where((p_norm > 0) & (d_norm > 0), g["eta"] * p_norm / d_norm,
                                        torch.ones_like(p_norm))
                    d = d.mul(trust)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(d).detach()
                else:
                    state["momentum_buffer"].mul_(g["momentum"]).add_(d)
                p.add_(state["momentum_buffer"], alpha=-g["lr"])
        return loss


def build_optimizer(cfg, params, lr: float) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "lars":
        return LARS(params, lr=lr, momentum=0.9, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)


# ---------------------------------------------------------------------------- data order & views
def epoch_permutation(n: int, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
    """This rank's share of the epoch's order: a function of (seed, epoch) only, so a resumed run
    sees the same order without storing it. Every rank gets the same number of samples."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // world
    return perm[: per_rank * world][rank::world]


def mask_mode(cfg, policy) -> str:
    """ViTs drop masked tokens (keep_idx); ConvNets see masked pixels."""
    return "token" if cfg.backbone.startswith("vit") and policy.has("patch_mask") else "pixel"


def make_views(engine, x: torch.Tensor, n_views: int, token_mask: bool):
    if not token_mask:
        return engine(x, views=n_views), None
    views, params = engine(x, views=n_views, return_params=True)
    return views, [params[v]["patch_mask"]["keep_idx"] for v in range(n_views)]


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch CSV log, rewritten whole (atomically) so a resumed run has one clean file."""
    cols = ["epoch", "loss", "lr", "epoch_s", "aug_s", "model_s", "img_s"]

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(history)
    atomic_write(path, buf.getvalue())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------- the loop
def pretrain(cfg, method: nn.Module, images: torch.Tensor, engine, *, device: torch.device,
             ckpt_dir: str | Path | None = None, log_path: str | Path | None = None,
             resume: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
             stop_at_step: int | None = None) -> TrainResult:
    """Pretrain `method` on uint8 `images` (N, 3, H, W) with views from `engine`.

    `resume`: a checkpoint state (checkpoint.load) to continue from exactly. `extra`: plain data the
    caller wants back after a resume (stored in each checkpoint). `stop_at_step`: behave as if a
    checkpoint had been requested before global step `stop_at_step` (tests, debugging).
    Raises NonFiniteLoss on NaN/inf loss and checkpoint.Preempted after a requested save."""
    rank, world = distributed.rank(), distributed.world_size()
    cuda = device.type == "cuda"
    amp = bool(cfg.amp and cuda)
    images = images.to(device, non_blocking=True)
    order = epoch_permutation(len(images), cfg.seed, 0, rank, world)
    steps_per_epoch = len(order) // cfg.batch_size
    if steps_per_epoch < 1:
        from augbench.config import ConfigError
        raise ConfigError(f"field 'batch_size' ({cfg.batch_size}) x world size {world} exceeds the "
                          f"{len(images)} training images: no full batch per epoch")
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = cfg.warmup_epochs * steps_per_epoch
    peak = peak_lr(cfg, world)

    method.to(device)
    if amp:
        method.to(memory_format=torch.channels_last)
    opt = build_optimizer(cfg, method.parameters(), peak)
    token_mask = getattr(engine, "mask_mode", "pixel") == "token"

    history: list[dict[str, Any]] = []
    start_epoch, start_i = 0, 0
    acc = _fresh_acc(device)
    extra = dict(extra or {})
    if resume is not None:
        method.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        history = list(resume["history"])
        start_epoch, start_i = int(resume["epoch"]), int(resume["step_in_epoch"])
        acc = {**resume["acc"], "loss_sum": resume["acc"]["loss_sum"].to(device)}
        extra = {**resume.get("extra", {}), **extra}
        if rank == 0:  # other ranks keep their own freshly seeded engine streams (see run.py)
            engine.load_state_dict(resume["engine"])
        checkpoint.set_rng_state(resume["rng"])

    model = method
    if distributed.is_distributed():
        model = nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if cuda else None)
    if cfg.compile:
        model = torch.compile(model)

    def save(epoch: int, i: int) -> None:
        if ckpt_dir is None or rank != 0:
            return
        checkpoint.save(ckpt_dir, {
            "run_id": cfg.run_id, "epoch": epoch, "step_in_epoch": i, "model": method.state_dict(),
            "optimizer": opt.state_dict(), "engine": engine.state_dict(), "history": history,
            "acc": {**acc, "loss_sum": acc["loss_sum"].cpu()}, "extra": extra})

    bar = None
    if cfg.progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch + start_i, unit="step",
                   desc=f"{cfg.method}/{cfg.policy_name}", dynamic_ncols=True)

    method.train()
    img_per_step = cfg.batch_size * world
    try:
        for epoch in range(start_epoch, cfg.epochs):
            order = epoch_permutation(len(images), cfg.seed, epoch, rank, world).to(device)
            t_epoch = time.perf_counter() - acc["elapsed"]
            first = start_i if epoch == start_epoch else 0
            for i in range(first, steps_per_epoch):
                step = epoch * steps_per_epoch + i
                stop = checkpoint.checkpoint_requested() or (stop_at_step is not None and step >= stop_at_step)
                # under DDP the ranks must agree; the all-reduce is a sync, so only every few steps
                if world > 1:
                    stop = step % STOP_CHECK_EVERY_DDP == 0 and distributed.all_reduce_flag(stop, device)
                if stop:
                    acc["elapsed"] = time.perf_counter() - t_epoch
                    save(epoch, i)
                    checkpoint.clear_request()
                    raise checkpoint.Preempted(f"checkpoint saved at epoch {epoch} step {i}; resume to continue")
                lr = lr_at(step, total_steps, warmup_steps, peak)
                for g in opt.param_groups:
                    g["lr"] = lr
                x = images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
                timed = not cuda or step % TIMING_EVERY_CUDA == 0
                if timed:
                    _sync(device)
                    t0 = time.perf_counter()
                views, keep_idx = make_views(engine, x, cfg.views, token_mask)
                if amp:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                if timed:
                    _sync(device)
                    t1 = time.perf_counter()
                with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                    loss, _ = model(views, keep_idx=keep_idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                loss = loss.detach()
                opt.step()
                method.update_target(step, total_steps)
                acc["loss_sum"] += loss.detach().double()
                acc["n"] += 1
                if timed:
                    _sync(device)
                    t2 = time.perf_counter()
                    acc["aug_s"] += t1 - t0
                    acc["model_s"] += t2 - t1
                    acc["n_timed"] += 1
                if (not cuda or step % CHECK_EVERY_CUDA == 0) and not torch.isfinite(acc["loss_sum"]):
                    raise NonFiniteLoss(f"loss became {loss.item():.4g} at epoch {epoch + 1} step {i + 1} "
                                        f"(lr {lr:.4g}); try a lower lr or a warm-up")
                if bar is not None:
                    bar.update(1)
                    if step % 10 == 0:
                        rate = img_per_step * (i + 1 - first) / max(1e-9, time.perf_counter() - t_epoch - acc["elapsed"])
                        bar.set_postfix(loss=f"{loss.item():.3f}", img_s=f"{rate:.0f}")
            # ---- end of epoch
            _sync(device)
            epoch_s = time.perf_counter() - t_epoch
            mean_loss = float(distributed.all_reduce_mean(acc["loss_sum"] / max(1, acc["n"])))
            if not math.isfinite(mean_loss):
                raise NonFiniteLoss(f"loss became {mean_loss} in epoch {epoch + 1}; try a lower lr or a warm-up")
            scale = acc["n"] / max(1, acc["n_timed"])  # on CUDA only a subset of steps is timed
            history.append({"epoch": epoch + 1, "loss": mean_loss, "lr": lr, "epoch_s": epoch_s,
                            "aug_s": acc["aug_s"] * scale, "model_s": acc["model_s"] * scale,
                            "img_s": img_per_step * acc["n"] / max(1e-9, epoch_s)})
            acc = _fresh_acc(device)
            if rank == 0 and log_path is not None:
                write_log(Path(log_path), history)
            last = epoch + 1 == cfg.epochs
            if last or (cfg.ckpt_every and (epoch + 1) % cfg.ckpt_every == 0):
                save(epoch + 1, 0)
    finally:
        if bar is not None:
            bar.close()

    aug = sum(h["aug_s"] for h in history)
    busy = aug + sum(h["model_s"] for h in history)
    return TrainResult(history=history, final_loss=history[-1]["loss"], train_s=sum(h["epoch_s"] for h in history),
                       aug_fraction=aug / busy if busy > 0 else 0.0, steps=total_steps, extra=extra)


def weights_sha256(module: nn.Module) -> str:
    """sha256 of the parameters' bytes, by name (buffers such as BatchNorm statistics excluded:
    under DDP each rank updates them from its own last batch)."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _fresh_acc(device: torch.device) -> dict[str, Any]:
    """Running sums of the current epoch (stored in mid-epoch checkpoints)."""
    return {"loss_sum": torch.zeros((), dtype=torch.float64, device=device), "n": 0,
            "aug_s": 0.0, "model_s": 0.0, "n_timed": 0, "elapsed": 0.0}
