"""What a result row records about where it ran: git commit, versions, device."""
from __future__ import annotations

import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code that ran, with '+dirty' when the tracked tree had changes."""
    env_commit = os.environ.get("AUGBENCH_GIT_COMMIT")  # set by sweeps for jobs run from a copy
    if env_commit:
        return env_commit
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_isa() -> str:
    """The CPU's vector ISA as torch dispatches it, plus the bf16 extensions oneDNN uses
    ('AVX512+avx512_bf16'): oneDNN picks its kernels by these, so a CPU run reproduces bitwise on
    a CPU with the same ones (and the same thread count)."""
    import torch

    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    extra = [x for x in ("avx512_bf16", "amx_bf16") if x in flags]
    return "+".join([torch.backends.cpu.get_cpu_capability(), *extra])


def package_version(name: str) -> str | None:
    """An installed package's version without importing it; None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment(device) -> dict:
    import torch

    return {
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "kornia": package_version("kornia"),  # optional: the core install has no Kornia
        "numba": package_version("numba"),  # optional: the fused engine's CPU kernel
        "triton": package_version("triton"),  # optional: the fused engine's CUDA kernel
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        "num_threads": torch.get_num_threads(),  # CPU results are bitwise reproducible at this count
        "cpu_isa": cpu_isa(),  # ... and on this ISA
        "hostname": platform.node(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }


def data_root() -> Path:
    """Where datasets resolve: $AUGBENCH_DATA, else ./data."""
    return Path(os.environ.get("AUGBENCH_DATA", "data")).expanduser()


def results_root() -> Path:
    """Where result rows go: $AUGBENCH_RESULTS, else ./results (tests point it at a tmp dir)."""
    return Path(os.environ.get("AUGBENCH_RESULTS", "results")).expanduser()
