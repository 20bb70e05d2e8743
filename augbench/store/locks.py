"""Run locks: at most one process trains a run at a time, locally or on SLURM.

<root>/checkpoints/<run_id>/lock.json holds the owner (host, pid, SLURM job id, since) and is
rewritten every HEARTBEAT_S by a daemon thread. A lock is stale, and taken over, when its owner
is on this host and its pid is gone, or when its heartbeat is older than STALE_S (a dead owner on
another node). Taking a lock is an exclusive create; a stale one is first renamed away by exactly
one contender (rename is atomic), so two processes never both win.
"""
from __future__ import annotations

import json
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

from augbench.errors import UserError

LOCK_NAME = "lock.json"
HEARTBEAT_S = 15.0
STALE_S = 120.0


class RunLocked(UserError):
    """Another live process trains this run."""

    def __init__(self, run_id: str, owner: dict[str, Any], path: Path):
        self.owner = owner
        job = f", SLURM job {owner['job_id']}" if owner.get("job_id") else ""
        super().__init__(f"run {run_id} is being trained by pid {owner.get('pid')} on {owner.get('host')}{job} "
                         f"since {owner.get('since')} (lock {path}); wait for it, or stop that process")


def _me() -> dict[str, Any]:
    job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if job and os.environ.get("SLURM_ARRAY_TASK_ID") else \
        os.environ.get("SLURM_JOB_ID")
    return {"host": platform.node(), "pid": os.getpid(), "job_id": job,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_owner(ckpt_dir: Path) -> dict[str, Any] | None:
    """The lock's owner, or None when unlocked or unreadable (a half-written lock counts as none)."""
    try:
        return json.loads((Path(ckpt_dir) / LOCK_NAME).read_text())
    except (OSError, ValueError):
        return None


def owner_alive(ckpt_dir: Path) -> dict[str, Any] | None:
    """The owner if the lock is live, else None."""
    path = Path(ckpt_dir) / LOCK_NAME
    owner = read_owner(ckpt_dir)
    if owner is None:
        try:  # a lock being written right now is live
            return {"host": "?", "pid": None} if time.time() - path.stat().st_mtime < STALE_S else None
        except OSError:
            return None
    if owner.get("host") == platform.node() and isinstance(owner.get("pid"), int):
        return owner if _pid_alive(owner["pid"]) else None
    try:
        return owner if time.time() - path.stat().st_mtime < STALE_S else None
    except OSError:
        return None


class RunLock:
    """`with RunLock(ckpt_dir, run_id):` trains; raises RunLocked if a live process holds it."""

    def __init__(self, ckpt_dir: str | Path, run_id: str):
        self.dir, self.run_id = Path(ckpt_dir), run_id
        self.path = self.dir / LOCK_NAME
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.owner = _me()

    def acquire(self) -> "RunLock":
        self.dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = owner_alive(self.dir)
                if owner is not None:
                    raise RunLocked(self.run_id, owner, self.path) from None
                stale = self.path.with_name(f".{LOCK_NAME}.stale-{os.getpid()}")
                try:
                    os.rename(self.path, stale)  # only one contender moves it; the others retry
                    stale.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self.owner, f)
            self._thread = threading.Thread(target=self._beat, name="augbench-lock", daemon=True)
            self._thread.start()
            return self
        raise RunLocked(self.run_id, read_owner(self.dir) or {}, self.path)

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if read_owner(self.dir) == self.owner:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
