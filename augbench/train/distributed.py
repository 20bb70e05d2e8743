"""torch.distributed set-up from SLURM/submitit (or torchrun) environment variables.

Single-process runs never initialise a process group: every helper here answers rank 0 of 1.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


# The rendezvous port: picked from the job id (every task computes the same one) below Linux's default
# ephemeral range (32768-60999). submitit's own pick (20000-60000) lands in that range 70 % of the
# time, where the local port of any outgoing connection on the node can hold it: EADDRINUSE on rank 0
# while the other ranks wait for it (seen once on the local SLURM).
MASTER_PORTS = (20000, 32767)


def master_port(job_id: str) -> int:
    import random

    return random.Random(str(job_id)).randint(*MASTER_PORTS)


def _export_submitit_env() -> None:
    """Inside a multi-task submitit job, export MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK."""
    try:
        from submitit import JobEnvironment
        from submitit.helpers import TorchDistributedEnvironment
    except ImportError:  # submitit is only needed for SLURM jobs
        return
    try:
        job = JobEnvironment()
        tasks = job.num_tasks
    except RuntimeError:  # not a submitit job (no SLURM/submitit variables): single process
        return
    if tasks <= 1:
        return
    # Any failure from here on must surface: falling back to one process would let every task
    # train alone and each write the row as rank 0. WORLD_SIZE is unset (checked by the caller),
    # so stale MASTER_ADDR/RANK/... from the submitting shell are replaced by this job's values.
    # CUDA_VISIBLE_DEVICES is left alone: we pick the GPU by LOCAL_RANK (CUDA may already be up).
    os.environ["MASTER_PORT"] = str(master_port(job.job_id))  # replaces a stale one, like the rest
    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def init_from_env(backend: str | None = None) -> tuple[int, int]:
    """Initialise the default process group when the environment describes more than one task.
    Returns (rank, world_size). nccl on CUDA, gloo on CPU unless `backend` says otherwise."""
    if dist.is_available() and dist.is_initialized():
        return rank(), world_size()
    if "WORLD_SIZE" not in os.environ:
        _export_submitit_env()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return 0, 1
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend or ("nccl" if torch.cuda.is_available() else "gloo"))
    return rank(), world_size()


def all_reduce_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is True on any (so all ranks stop at the same step)."""
    if not is_distributed():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if not is_distributed():
        return t
    t = t.clone()
    dist.all_reduce(t)
    return t / dist.get_world_size()
