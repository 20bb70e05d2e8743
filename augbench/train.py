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

from augbench import checkpoint, distributed, step as fast
from augbench.atomic import atomic_write
from augbench.optim import build_optimizer, lr_at, peak_lr

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
    compile_mode: str | None = None  # the torch.compile mode the step ran with; None = eager
    # what failed and went on on the reference path: {"kind": "compile", "from": mode, "to": "eager",
    # "epoch", "step", "error"} (the step stays eager from then on) and {"kind": "augment", "from":
    # "triton"/"numba", "to": "torch", "error"} (the engine's kernel, see Engine.fallback)
    fallbacks: list[dict[str, Any]] = field(default_factory=list)


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


LOG_COLUMNS = ["epoch", "loss", "lr", "epoch_s", "aug_s", "model_s", "img_s"]


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """The per-epoch CSV log, rewritten whole (atomically) so a resumed run has one clean file. After
    the fixed columns come what the method logs (z_std, the collapse signal; loss parts; tau)."""
    cols = LOG_COLUMNS + sorted({k for h in history for k in h} - set(LOG_COLUMNS))

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
    No step waits for the GPU: losses, loss parts and timings are summed on the device and read
    once per epoch (on CUDA, a NaN loss is found at the end of its epoch).
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
    nhwc = fast.channels_last(cfg, device)
    if nhwc:
        method.to(memory_format=torch.channels_last)
    opt, lr_t = fast.fast_optimizer(build_optimizer(cfg, method.parameters(), peak), device)
    token_mask = getattr(engine, "mask_mode", "pixel") == "token"

    history: list[dict[str, Any]] = []
    start_epoch, start_i = 0, 0
    acc = fast.fresh_acc(device)
    extra = dict(extra or {})
    if resume is not None:
        method.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        history = list(resume["history"])
        start_epoch, start_i = int(resume["epoch"]), int(resume["step_in_epoch"])
        acc = fast.acc_to({**fast.fresh_acc(device), **resume["acc"]}, device)
        extra = {**resume.get("extra", {}), **extra}
        if rank == 0:  # other ranks keep their own freshly seeded engine streams (see run.py)
            engine.load_state_dict(resume["engine"])
        checkpoint.set_rng_state(resume["rng"])

    model = method
    if distributed.is_distributed():
        model = nn.parallel.DistributedDataParallel(method, device_ids=[device.index] if cuda else None)
    eager = model
    mode = fast.compile_mode(cfg.compile, device, distributed.is_distributed())
    model = fast.compile_model(model, mode)
    # a compiled step that fails (compile, a recompile, CUDA-graph capture) is redone eagerly: its
    # buffers (BatchNorm statistics) are put back first, so the batch counts once
    snapshot = fast.BufferSnapshot(method) if model is not eager else None
    fallbacks: list[dict[str, Any]] = []
    timer = fast.StepTimer(device)

    def save(epoch: int, i: int) -> None:
        if ckpt_dir is None or rank != 0:
            return
        checkpoint.save(ckpt_dir, {
            "run_id": cfg.run_id, "epoch": epoch, "step_in_epoch": i, "model": method.state_dict(),
            "optimizer": opt.state_dict(), "engine": engine.state_dict(), "history": history,
            "acc": fast.acc_to(acc, "cpu"), "extra": extra})

    def forward_backward(views, keep_idx):
        if mode in ("reduce-overhead", "max-autotune"):  # CUDA graphs: the last step's outputs are consumed
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            loss, logs = model(views, keep_idx=keep_idx)
        loss.backward()
        return loss.detach(), logs

    bar = None
    if cfg.progress and rank == 0:
        from tqdm.auto import tqdm
        bar = tqdm(total=total_steps, initial=start_epoch * steps_per_epoch + start_i, unit="step",
                   desc=f"{cfg.method}/{cfg.policy_name}", dynamic_ncols=True)
    tb = fast.open_tensorboard(getattr(cfg, "tensorboard", False) and rank == 0 and log_path is not None,
                               Path(log_path).parent / "tensorboard" / Path(log_path).stem if log_path else None)

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
                    _add_times(acc, timer)
                    acc["elapsed"] = time.perf_counter() - t_epoch
                    save(epoch, i)
                    checkpoint.clear_request()
                    raise checkpoint.Preempted(f"checkpoint saved at epoch {epoch} step {i}; resume to continue")
                lr = lr_at(step, total_steps, warmup_steps, peak)
                fast.set_lr(opt, lr_t, lr)
                x = images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
                timer.mark()
                views, keep_idx = make_views(engine, x, cfg.views, token_mask)
                if nhwc:
                    views = [v.contiguous(memory_format=torch.channels_last) for v in views]
                timer.mark()
                opt.zero_grad(set_to_none=True)
                if model is not eager:
                    snapshot.save()
                    try:
                        loss, logs = forward_backward(views, keep_idx)
                    except Exception as e:  # noqa: BLE001 -- any compiler / capture failure: train eagerly, say so once
                        error = fast.first_line(e)
                        print(f"augbench: torch.compile (mode {mode}) failed at epoch {epoch + 1} step {i + 1}, "
                              f"training eagerly from this step on: {error}", flush=True)
                        fallbacks.append({"kind": "compile", "from": mode, "to": "eager", "epoch": epoch + 1,
                                          "step": i + 1, "error": error})
                        snapshot.restore()  # BatchNorm statistics as before the failed step
                        model, mode = eager, None
                        opt.zero_grad(set_to_none=True)  # gradients a failed backward may have left
                        loss, logs = forward_backward(views, keep_idx)  # the same views: no batch skipped or doubled
                else:
                    loss, logs = forward_backward(views, keep_idx)
                opt.step()
                method.update_target(step, total_steps)
                fast.add_logs(acc, loss, logs)
                timer.mark()
                # a free check on the CPU; on CUDA it would sync every step, so the epoch's end does it
                if not cuda and not torch.isfinite(loss):
                    raise NonFiniteLoss(f"loss became {loss.item():.4g} at epoch {epoch + 1} step {i + 1} "
                                        f"(lr {lr:.4g}); try a lower lr or a warm-up")
                if bar is not None:
                    bar.update(1)
            # ---- end of epoch: the one place the host waits for the device
            _add_times(acc, timer)
            _sync(device)
            epoch_s = time.perf_counter() - t_epoch
            means = fast.epoch_means(acc, distributed.all_reduce_mean)
            if not math.isfinite(means["loss"]):
                raise NonFiniteLoss(f"loss became {means['loss']} in epoch {epoch + 1}; try a lower lr or a warm-up")
            row = {"epoch": epoch + 1, "loss": means.pop("loss"), "lr": lr, "epoch_s": epoch_s,
                   "aug_s": acc["aug_s"], "model_s": acc["model_s"],
                   "img_s": img_per_step * acc["n"] / max(1e-9, epoch_s), **means}
            if getattr(method, "momentum", False):
                row["tau"] = method.tau
            history.append(row)
            acc = fast.fresh_acc(device)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss']:.3f}", img_s=f"{row['img_s']:.0f}")
            if tb is not None:
                for k, v in row.items():
                    if k != "epoch":
                        tb.add_scalar(f"train/{k}", v, epoch + 1)
                tb.flush()
            if rank == 0 and log_path is not None:
                write_log(Path(log_path), history)
            last = epoch + 1 == cfg.epochs
            if last or (cfg.ckpt_every and (epoch + 1) % cfg.ckpt_every == 0):
                save(epoch + 1, 0)
    finally:
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()

    aug = sum(h["aug_s"] for h in history)
    busy = aug + sum(h["model_s"] for h in history)
    aug_fallback = getattr(engine, "fallback", None)
    if aug_fallback:
        fallbacks.insert(0, {"kind": "augment", **aug_fallback})
    return TrainResult(history=history, final_loss=history[-1]["loss"], train_s=sum(h["epoch_s"] for h in history),
                       aug_fraction=aug / busy if busy > 0 else 0.0, steps=total_steps, extra=extra,
                       compile_mode=mode, fallbacks=fallbacks)


def _add_times(acc: dict[str, Any], timer: fast.StepTimer) -> None:
    aug_s, model_s, n = timer.collect()
    acc["aug_s"] += aug_s
    acc["model_s"] += model_s
    acc["n_timed"] += n


def weights_sha256(module: nn.Module) -> str:
    """sha256 of the parameters' bytes, by name (buffers such as BatchNorm statistics excluded:
    under DDP each rank updates them from its own last batch)."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
