"""Checkpoints for exact resume: model, optimiser, step, every RNG state, the engine's generator.

Saved atomically (tmp + rename) and loaded with ``torch.load(weights_only=True)``, so every RNG
state is stored as tensors and plain containers. ``request_checkpoint()`` is the preemption hook:
the SLURM task calls it from its signal handler; the trainer saves at the next step boundary and
raises ``Preempted`` so the run exits cleanly and a requeued job resumes where it stopped.
"""
from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from augbench.store.atomic import atomic_write
from augbench.store.rows import CorruptFile

CKPT_NAME = "last.pt"
_requested = threading.Event()


class Preempted(Exception):
    """Training stopped at a step boundary after a checkpoint was requested; the checkpoint is saved."""


def request_checkpoint() -> None:
    """Ask the running trainer to save at the next step boundary and stop (safe from signal handlers)."""
    _requested.set()


def checkpoint_requested() -> bool:
    return _requested.is_set()


def clear_request() -> None:
    _requested.clear()


# ---------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """torch CPU/CUDA, numpy and python RNG states as weights_only-loadable objects."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


# ---------------------------------------------------------------------------- files
def checkpoint_path(ckpt_dir: str | Path) -> Path:
    return Path(ckpt_dir) / CKPT_NAME


def save(ckpt_dir: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` (plus the RNG states) to <ckpt_dir>/last.pt: temporary file, fsync, rename."""
    full = {**state, "rng": rng_state()}
    path = atomic_write(checkpoint_path(ckpt_dir), lambda f: torch.save(full, f), mode=0o600)
    _hold_after_save(path)
    return path


HOLD_ENV = "AUGBENCH_TEST_HOLD_AFTER_SAVE"  # test hook: a barrier file (see _hold_after_save)
HOLD_MAX_S = 600


def _hold_after_save(path: Path) -> None:
    """Test hook, off unless $AUGBENCH_TEST_HOLD_AFTER_SAVE names a file F that does not exist yet:
    after a checkpoint is saved, write F.held (the checkpoint's path) and wait until F exists. A
    test can then kill a run that is provably mid-training (a checkpoint saved, not finished)."""
    barrier = os.environ.get(HOLD_ENV)
    if not barrier or Path(barrier).exists():
        return
    Path(barrier + ".held").write_text(str(path))
    end = time.monotonic() + HOLD_MAX_S
    while not Path(barrier).exists() and time.monotonic() < end:
        time.sleep(0.1)


def load(ckpt_dir: str | Path | None) -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint. RNG states are NOT applied here:
    the caller applies them (set_rng_state) after rebuilding everything that draws random numbers."""
    if ckpt_dir is None:
        return None
    path = checkpoint_path(ckpt_dir)
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle, unsafe type: all mean the file cannot be used
        raise CorruptFile(path, "checkpoint", f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    if not isinstance(state, dict) or not {"run_id", "epoch", "step_in_epoch", "model"} <= set(state):
        raise CorruptFile(path, "checkpoint", "not an augbench checkpoint")
    return state
