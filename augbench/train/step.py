"""What makes the training step fast, kept apart from the loop in loop.py: the torch.compile mode
(with a one-line eager fallback), a fused optimizer whose lr is a device tensor, timing with CUDA
events and epoch sums kept on the device, so that no step waits for the GPU."""
from __future__ import annotations

import time
from typing import Any

import torch


def compile_mode(setting: Any, device: torch.device, distributed: bool = False) -> str | None:
    """The torch.compile mode a run uses, None for eager. 'auto': off on the CPU (bitwise
    determinism; compiling costs more than it saves there), CUDA graphs ('reduce-overhead': every
    shape of the step is static) on one CUDA device, plain inductor under DDP (its all-reduce hooks
    cannot sit inside a graph). 'on' (or true) is inductor's default mode on any device."""
    if setting in (False, "off"):
        return None
    if setting == "auto":
        if device.type != "cuda":
            return None
        return "default" if distributed else "reduce-overhead"
    if setting in (True, "on"):
        return "default"
    return str(setting)


def channels_last(cfg, device: torch.device) -> bool:
    """Whether the step runs in channels_last (NHWC). Auto (cfg.channels_last None): on CUDA with bf16
    autocast (tensor cores want NHWC), and on the CPU for ResNets, whose oneDNN NHWC convolutions
    move 1.3x the images/s of NCHW at 32 px on 2 cores (docs/cpu-scale.md). Either way a CPU run
    stays bitwise deterministic for a fixed thread count."""
    if cfg.channels_last is not None:
        return bool(cfg.channels_last)
    if device.type == "cuda":
        return bool(cfg.amp)
    return cfg.backbone.startswith("resnet")


def bf16_autocast(cfg, device: torch.device) -> bool:
    """Whether the training step runs under bf16 autocast: `amp` on CUDA, `amp_cpu` on the CPU, where
    it pays only with AVX512-BF16 or AMX (oneDNN's bf16 kernels; elsewhere they are emulated and slow).
    A CPU run stays bitwise deterministic either way. Evaluation on the CPU stays fp32: it is a few %
    of a run, and the random-init figures stay shared with fp32 runs."""
    if device.type == "cuda":
        return bool(cfg.amp)
    return device.type == "cpu" and bool(cfg.amp_cpu)


def compile_model(model: torch.nn.Module, mode: str | None) -> torch.nn.Module:
    return model if mode is None else torch.compile(model, mode=mode)


def first_line(e: BaseException) -> str:
    """'Type: first line of the message': a compiler's error in one line (a message, a result row)."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__


class BufferSnapshot:
    """A copy of a module's buffers (BatchNorm running statistics), taken before each compiled step:
    when the step fails part-way and is redone eagerly, `restore` puts them back so the batch
    updates them once. One foreach copy per step into tensors allocated once; only while compiled."""

    def __init__(self, module: torch.nn.Module):
        self.buffers = [b for b in module.buffers()]
        self.copies = [b.detach().clone() for b in self.buffers]

    def save(self) -> None:
        if self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.copies, self.buffers)

    def restore(self) -> None:
        if self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.buffers, self.copies)


def fast_optimizer(opt: torch.optim.Optimizer,
                   device: torch.device) -> tuple[torch.optim.Optimizer, list[torch.Tensor] | None]:
    """On CUDA, SGD/Adam(W) rebuilt as their fused kernels (one launch for all parameters) with each
    group's lr as a 0-d device tensor: setting it each step is a launch, not a recompile or a sync.
    Other optimizers (LARS) and the CPU keep the optimizer and float lrs (None)."""
    kinds = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)
    if device.type != "cuda" or type(opt) not in kinds:
        return opt, None
    lrs = [torch.tensor(float(g["lr"]), device=device) for g in opt.param_groups]
    groups = [{**g, "lr": t, "fused": True, "foreach": False} for g, t in zip(opt.param_groups, lrs)]
    return type(opt)(groups, lr=lrs[0], fused=True), lrs  # every other setting comes with its group


def set_lr(opt: torch.optim.Optimizer, lr_tensors: list[torch.Tensor] | None, lr: float) -> None:
    """The schedule's lr on every group, times the group's ``lr_mult`` (a predictor's, see optim.py)."""
    if lr_tensors is None:
        for g in opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
    else:
        for g, t in zip(opt.param_groups, lr_tensors):
            t.fill_(lr * g.get("lr_mult", 1.0))  # a launch with the value as an argument: no host sync
            g["lr"] = t  # load_state_dict on resume puts the saved value back


class StepTimer:
    """Seconds spent making views and in the model step, per epoch. Each step marks three points:
    before the views, after them, after the optimizer step. The CPU reads the clock; CUDA records
    events on the stream, read once in `collect` (waiting for the last one: the epoch's only sync)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._marks: list = []
        self._steps: list[tuple] = []

    def mark(self) -> None:
        if self.cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            self._marks.append(e)
        else:
            self._marks.append(time.perf_counter())
        if len(self._marks) == 3:
            self._steps.append(tuple(self._marks))
            self._marks = []

    def collect(self) -> tuple[float, float, int]:
        """(views seconds, model seconds, steps) since the last collect."""
        steps, self._steps, self._marks = self._steps, [], []
        if not steps:
            return 0.0, 0.0, 0
        if self.cuda:
            steps[-1][2].synchronize()
            span = lambda a, b: a.elapsed_time(b) / 1000.0  # noqa: E731
        else:
            span = lambda a, b: b - a  # noqa: E731
        return sum(span(a, b) for a, b, _ in steps), sum(span(b, c) for _, b, c in steps), len(steps)


def add_logs(acc: dict[str, Any], loss: torch.Tensor, logs: dict[str, torch.Tensor]) -> None:
    """Adds the step's loss and its logged parts (z_std, VICReg's terms, ...) to the epoch sums on
    the device, in one foreach launch; they are read once, at the epoch's end."""
    parts = acc["parts"]
    names = [k for k in logs if k != "loss" and isinstance(logs[k], torch.Tensor)]
    for k in names:
        if k not in parts:
            parts[k] = torch.zeros((), dtype=torch.float64, device=loss.device)
    torch._foreach_add_([acc["loss_sum"], *(parts[k] for k in names)],
                        [loss.double(), *(logs[k].detach().double() for k in names)])
    acc["n"] += 1


def epoch_means(acc: dict[str, Any], reduce) -> dict[str, float]:
    """{'loss': ..., part: ...} means of the epoch, reduced over ranks by `reduce` in one call."""
    names = list(acc["parts"])
    sums = torch.stack([acc["loss_sum"], *(acc["parts"][k] for k in names)]) / max(1, acc["n"])
    vals = reduce(sums).tolist()
    return dict(zip(["loss", *names], vals))


def acc_to(acc: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    """The epoch sums with their tensors on `device` (cpu for a checkpoint, back on resume)."""
    return {**acc, "loss_sum": acc["loss_sum"].to(device),
            "parts": {k: v.to(device) for k, v in acc.get("parts", {}).items()}}


def fresh_acc(device: torch.device) -> dict[str, Any]:
    """Running sums of the current epoch (stored in mid-epoch checkpoints)."""
    return {"loss_sum": torch.zeros((), dtype=torch.float64, device=device), "parts": {}, "n": 0,
            "aug_s": 0.0, "model_s": 0.0, "n_timed": 0, "elapsed": 0.0}


def open_tensorboard(enabled: bool, log_dir):
    """A SummaryWriter for `log_dir`, or None. TensorBoard is an optional extra, imported only here."""
    if not enabled or log_dir is None:
        return None
    check_tensorboard(enabled)
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))


def check_tensorboard(enabled: bool) -> None:
    """Refuses `tensorboard: true` before any work when the package is missing."""
    if not enabled:
        return
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        from augbench.config import ConfigError

        raise ConfigError("field 'tensorboard' is true but the tensorboard package is not installed "
                          "(pip install 'augbench[tensorboard]')")
