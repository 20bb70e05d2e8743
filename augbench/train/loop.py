"""The pretraining loop, airbench style: the whole training set sits on the device as uint8, each
epoch is a seeded permutation sliced into batches, the Engine makes the views on the device.

One call: ``pretrain(cfg, method, images, engine, device=...)`` -> TrainResult. Resumes exactly from a
checkpoint state (see augbench.train.checkpoint) and saves at step boundaries on request (preemption).
Read in order: ``pretrain`` sets up one ``_Loop`` (``_start``, ``_resume``, ``_wrap``), runs ``_epoch``
per epoch (``_step`` per batch, ``_end_epoch`` at its end) and returns ``_result``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from augbench.store.atomic import atomic_write
from augbench.train import checkpoint, distributed, step as fast
from augbench.train.optim import build_optimizer, lr_at, peak_lr

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


# ---------------------------------------------------------------------------- seeds, data order & views
def seed_everything(seed: int) -> None:
    """Python's, numpy's and torch's global generators (the weights are drawn from torch's next)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


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
@dataclass
class _Loop:
    """Everything one `pretrain` call shares between its parts (set up by `_start`, `_resume`, `_wrap`)."""
    cfg: Any
    method: nn.Module
    engine: Any
    images: torch.Tensor  # on the device
    device: torch.device
    rank: int
    world: int
    amp: bool
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int
    peak: float
    nhwc: bool
    opt: torch.optim.Optimizer
    lr_t: list[torch.Tensor] | None  # each group's lr as a device tensor (fused optimizers on CUDA), else None
    token_mask: bool
    ckpt_dir: str | Path | None
    log_path: str | Path | None
    stop_at_step: int | None
    acc: dict[str, Any]  # the running sums of the current epoch
    extra: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    start_epoch: int = 0
    start_i: int = 0
    model: Any = None  # what the step calls: the method, wrapped in DDP and/or compiled
    eager: Any = None  # the same without torch.compile (the fallback)
    mode: str | None = None  # the torch.compile mode; None = eager
    snapshot: Any = None  # buffers before a compiled step (fast.BufferSnapshot), None when eager
    timer: Any = None
    fallbacks: list[dict[str, Any]] = field(default_factory=list)
    bar: Any = None
    tb: Any = None
    monitor: Any = None  # called with (method, epoch) at an epoch's end: extra log columns (eval.online)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def pretrain(cfg, method: nn.Module, images: torch.Tensor, engine, *, device: torch.device,
             ckpt_dir: str | Path | None = None, log_path: str | Path | None = None,
             resume: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
             stop_at_step: int | None = None, monitor=None) -> TrainResult:
    """Pretrain `method` on uint8 `images` (N, 3, H, W) with views from `engine`.

    `resume`: a checkpoint state (checkpoint.load) to continue from exactly. `extra`: plain data the
    caller wants back after a resume (stored in each checkpoint). `stop_at_step`: behave as if a
    checkpoint had been requested before global step `stop_at_step` (tests, debugging). `monitor`:
    called on rank 0 as monitor(method, epoch) after each epoch, outside its timing; what it returns
    joins that epoch's log row (augbench.eval.online.OnlineKNN: accuracy during training).
    No step waits for the GPU: losses, loss parts and timings are summed on the device and read
    once per epoch (on CUDA, a NaN loss is found at the end of its epoch).
    Raises NonFiniteLoss on NaN/inf loss and checkpoint.Preempted after a requested save."""
    run = _start(cfg, method, images, engine, device, ckpt_dir, log_path, extra, stop_at_step)
    run.monitor = monitor
    if resume is not None:
        _resume(run, resume)
    _wrap(run)
    _open_outputs(run)
    method.train()
    try:
        for epoch in range(run.start_epoch, cfg.epochs):
            _epoch(run, epoch)
    finally:
        if run.bar is not None:
            run.bar.close()
        if run.tb is not None:
            run.tb.close()
    return _result(run)


def _start(cfg, method: nn.Module, images: torch.Tensor, engine, device: torch.device, ckpt_dir, log_path,
           extra: dict[str, Any] | None, stop_at_step: int | None) -> _Loop:
    """The images on the device, the schedule's lengths, the method in its layout and its optimizer."""
    rank, world = distributed.rank(), distributed.world_size()
    images = images.to(device, non_blocking=True)
    order = epoch_permutation(len(images), cfg.seed, 0, rank, world)
    steps_per_epoch = len(order) // cfg.batch_size
    if steps_per_epoch < 1:
        from augbench.config import ConfigError
        raise ConfigError(f"field 'batch_size' ({cfg.batch_size}) x world size {world} exceeds the "
                          f"{len(images)} training images: no full batch per epoch")
    peak = peak_lr(cfg, world)
    method.to(device)
    nhwc = fast.channels_last(cfg, device)
    if nhwc:
        method.to(memory_format=torch.channels_last)
    pred = method.predictor.parameters() if method.predictor is not None else ()
    opt, lr_t = fast.fast_optimizer(build_optimizer(cfg, method.parameters(), peak, predictor=pred), device)
    return _Loop(cfg=cfg, method=method, engine=engine, images=images, device=device, rank=rank, world=world,
                 amp=fast.bf16_autocast(cfg, device), steps_per_epoch=steps_per_epoch,
                 total_steps=cfg.epochs * steps_per_epoch, warmup_steps=cfg.warmup_epochs * steps_per_epoch,
                 peak=peak, nhwc=nhwc, opt=opt, lr_t=lr_t,
                 token_mask=getattr(engine, "mask_mode", "pixel") == "token", ckpt_dir=ckpt_dir,
                 log_path=log_path, stop_at_step=stop_at_step, acc=fast.fresh_acc(device), extra=dict(extra or {}))


def _resume(run: _Loop, resume: dict[str, Any]) -> None:
    """Continue exactly from a checkpoint state: weights, optimizer, position, epoch sums, RNG states."""
    run.method.load_state_dict(resume["model"])
    run.opt.load_state_dict(resume["optimizer"])
    run.history = list(resume["history"])
    run.start_epoch, run.start_i = int(resume["epoch"]), int(resume["step_in_epoch"])
    run.acc = fast.acc_to({**fast.fresh_acc(run.device), **resume["acc"]}, run.device)
    run.extra = {**resume.get("extra", {}), **run.extra}
    if run.rank == 0:  # other ranks keep their own freshly seeded engine streams (see augbench.run)
        run.engine.load_state_dict(resume["engine"])
    checkpoint.set_rng_state(resume["rng"])


def _wrap(run: _Loop) -> None:
    """The model the step calls: DDP when distributed, compiled when the mode says so. A compiled step
    that fails (compile, a recompile, CUDA-graph capture) is redone eagerly: its buffers (BatchNorm
    statistics) are put back first, so the batch counts once."""
    model = run.method
    if distributed.is_distributed():
        model = nn.parallel.DistributedDataParallel(run.method, device_ids=[run.device.index] if run.cuda else None)
    run.eager = model
    run.mode = fast.compile_mode(run.cfg.compile, run.device, distributed.is_distributed())
    run.model = fast.compile_model(model, run.mode)
    run.snapshot = fast.BufferSnapshot(run.method) if run.model is not run.eager else None
    run.timer = fast.StepTimer(run.device)


def _open_outputs(run: _Loop) -> None:
    """The progress bar and the TensorBoard writer (rank 0, when asked for)."""
    cfg, log_path = run.cfg, run.log_path
    if cfg.progress and run.rank == 0:
        from tqdm.auto import tqdm
        run.bar = tqdm(total=run.total_steps, initial=run.start_epoch * run.steps_per_epoch + run.start_i,
                       unit="step", desc=f"{cfg.method}/{cfg.policy_name}", dynamic_ncols=True)
    run.tb = fast.open_tensorboard(getattr(cfg, "tensorboard", False) and run.rank == 0 and log_path is not None,
                                   Path(log_path).parent / "tensorboard" / Path(log_path).stem if log_path else None)


def _epoch(run: _Loop, epoch: int) -> None:
    """One epoch (from the resume position in the first): its seeded order sliced into batches."""
    cfg = run.cfg
    order = epoch_permutation(len(run.images), cfg.seed, epoch, run.rank, run.world).to(run.device)
    t_epoch = time.perf_counter() - run.acc["elapsed"]
    first = run.start_i if epoch == run.start_epoch else 0
    for i in range(first, run.steps_per_epoch):
        step = epoch * run.steps_per_epoch + i
        _stop_if_requested(run, epoch, i, step, t_epoch)
        lr = _step(run, order, epoch, i, step)
    _end_epoch(run, epoch, t_epoch, lr)


def _stop_if_requested(run: _Loop, epoch: int, i: int, step: int, t_epoch: float) -> None:
    """On a checkpoint request (or `stop_at_step`): save at this step boundary and raise Preempted."""
    stop = checkpoint.checkpoint_requested() or (run.stop_at_step is not None and step >= run.stop_at_step)
    # under DDP the ranks must agree; the all-reduce is a sync, so only every few steps
    if run.world > 1:
        stop = step % STOP_CHECK_EVERY_DDP == 0 and distributed.all_reduce_flag(stop, run.device)
    if stop:
        _add_times(run.acc, run.timer)
        run.acc["elapsed"] = time.perf_counter() - t_epoch
        _save(run, epoch, i)
        checkpoint.clear_request()
        raise checkpoint.Preempted(f"checkpoint saved at epoch {epoch} step {i}; resume to continue")


def _step(run: _Loop, order: torch.Tensor, epoch: int, i: int, step: int) -> float:
    """One training step on batch i of the epoch's order; returns its lr."""
    cfg, opt = run.cfg, run.opt
    lr = lr_at(step, run.total_steps, run.warmup_steps, run.peak)
    fast.set_lr(opt, run.lr_t, lr)
    x = run.images[order[i * cfg.batch_size:(i + 1) * cfg.batch_size]]
    run.timer.mark()
    views, keep_idx = make_views(run.engine, x, cfg.views, run.token_mask)
    if run.nhwc:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    run.timer.mark()
    opt.zero_grad(set_to_none=True)
    if run.model is not run.eager:
        loss, logs = _compiled_forward_backward(run, views, keep_idx, epoch, i)
    else:
        loss, logs = _forward_backward(run, views, keep_idx)
    opt.step()
    run.method.update_target(step, run.total_steps)
    fast.add_logs(run.acc, loss, logs)
    run.timer.mark()
    # a free check on the CPU; on CUDA it would sync every step, so the epoch's end does it
    if not run.cuda and not torch.isfinite(loss):
        raise NonFiniteLoss(f"loss became {loss.item():.4g} at epoch {epoch + 1} step {i + 1} "
                            f"(lr {lr:.4g}); try a lower lr or a warm-up")
    if run.bar is not None:
        run.bar.update(1)
    return lr


def _forward_backward(run: _Loop, views, keep_idx):
    if run.mode in ("reduce-overhead", "max-autotune"):  # CUDA graphs: the last step's outputs are consumed
        torch.compiler.cudagraph_mark_step_begin()
    with torch.autocast(device_type=run.device.type, dtype=torch.bfloat16, enabled=run.amp):
        loss, logs = run.model(views, keep_idx=keep_idx)
    loss.backward()
    return loss.detach(), logs


def _compiled_forward_backward(run: _Loop, views, keep_idx, epoch: int, i: int):
    """The compiled step; on any compiler / capture failure, the same step eagerly (and every later
    one), said once and recorded in `fallbacks`."""
    run.snapshot.save()
    try:
        return _forward_backward(run, views, keep_idx)
    except Exception as e:  # noqa: BLE001 -- any compiler / capture failure: train eagerly, say so once
        error = fast.first_line(e)
        print(f"augbench: torch.compile (mode {run.mode}) failed at epoch {epoch + 1} step {i + 1}, "
              f"training eagerly from this step on: {error}", flush=True)
        run.fallbacks.append({"kind": "compile", "from": run.mode, "to": "eager", "epoch": epoch + 1,
                              "step": i + 1, "error": error})
        run.snapshot.restore()  # BatchNorm statistics as before the failed step
        run.model, run.mode = run.eager, None
        run.opt.zero_grad(set_to_none=True)  # gradients a failed backward may have left
        return _forward_backward(run, views, keep_idx)  # the same views: no batch skipped or doubled


def _end_epoch(run: _Loop, epoch: int, t_epoch: float, lr: float) -> None:
    """The one place the host waits for the device: the epoch's row of the log, then a checkpoint."""
    acc = run.acc
    _add_times(acc, run.timer)
    _sync(run.device)
    epoch_s = time.perf_counter() - t_epoch
    means = fast.epoch_means(acc, distributed.all_reduce_mean)
    if not math.isfinite(means["loss"]):
        raise NonFiniteLoss(f"loss became {means['loss']} in epoch {epoch + 1}; try a lower lr or a warm-up")
    img_per_step = run.cfg.batch_size * run.world
    row = {"epoch": epoch + 1, "loss": means.pop("loss"), "lr": lr, "epoch_s": epoch_s,
           "aug_s": acc["aug_s"], "model_s": acc["model_s"],
           "img_s": img_per_step * acc["n"] / max(1e-9, epoch_s), **means}
    if getattr(run.method, "momentum", False):
        row["tau"] = run.method.tau
    if run.monitor is not None and run.rank == 0:  # reads the encoder only: no RNG draw, no BN update
        row.update(run.monitor(run.method, epoch + 1))
    run.history.append(row)
    run.acc = fast.fresh_acc(run.device)
    if run.bar is not None:
        run.bar.set_postfix(loss=f"{row['loss']:.3f}", img_s=f"{row['img_s']:.0f}")
    if run.tb is not None:
        for k, v in row.items():
            if k != "epoch":
                run.tb.add_scalar(f"train/{k}", v, epoch + 1)
        run.tb.flush()
    if run.rank == 0 and run.log_path is not None:
        write_log(Path(run.log_path), run.history)
    if epoch + 1 == run.cfg.epochs or (run.cfg.ckpt_every and (epoch + 1) % run.cfg.ckpt_every == 0):
        _save(run, epoch + 1, 0)


def _save(run: _Loop, epoch: int, i: int) -> None:
    if run.ckpt_dir is None or run.rank != 0:
        return
    checkpoint.save(run.ckpt_dir, {
        "run_id": run.cfg.run_id, "epoch": epoch, "step_in_epoch": i, "model": run.method.state_dict(),
        "optimizer": run.opt.state_dict(), "engine": run.engine.state_dict(), "history": run.history,
        "acc": fast.acc_to(run.acc, "cpu"), "extra": run.extra})


def _result(run: _Loop) -> TrainResult:
    history = run.history
    aug = sum(h["aug_s"] for h in history)
    busy = aug + sum(h["model_s"] for h in history)
    aug_fallback = getattr(run.engine, "fallback", None)
    if aug_fallback:
        run.fallbacks.insert(0, {"kind": "augment", **aug_fallback})
    return TrainResult(history=history, final_loss=history[-1]["loss"], train_s=sum(h["epoch_s"] for h in history),
                       aug_fraction=aug / busy if busy > 0 else 0.0, steps=run.total_steps, extra=run.extra,
                       compile_mode=run.mode, fallbacks=run.fallbacks)


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
