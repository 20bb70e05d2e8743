"""The SLURM executor: one submitit array task per run (checkpointable, so preemption resumes),
the job ledger (<root>/sweeps/<name>/jobs.json), live jobs from squeue, final states from sacct.
sbatch's refusals (no such gres or partition, controller down) become a SlurmError with a hint.

Preemption: submitit calls `checkpoint()` from its USR2 handler in the main thread. Training runs
in a worker thread, so the handler can ask it to save at the next step boundary
(`augbench.train.checkpoint.request_checkpoint`), wait for the save, and only then return the
DelayedSubmission that submitit requeues; the requeued task resumes from that checkpoint.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import submitit

from augbench.config import RunConfig
from augbench.env import git_commit
from augbench.errors import UserError
from augbench.sweeps.ledger import record_submission
from augbench.sweeps.local import train_one

CKPT_WAIT_S = 120  # how long the preemption handler waits for the step-boundary save


class SlurmError(UserError):
    """sbatch / squeue refused; the message says why and what to change."""


HINTS = (
    ("gres", "this cluster has no such GPU resource: for CPU runs set `slurm.gpus_per_node: 0` in the sweep "
             "file, or set `slurm.partition:` to a partition with GPUs (`sinfo -o '%P %G'` lists them)"),
    ("partition", "set `slurm.partition:` to one of the partitions `sinfo -h -o %P` lists"),
    ("contact slurm controller", "the SLURM controller is not answering: start it (`make slurm-up` on a "
                                 "single machine) or run locally with --executor local"),
    ("connection refused", "the SLURM controller is not answering: start it (`make slurm-up` on a single "
                           "machine) or run locally with --executor local"),
)


def slurm_hint(message: str) -> str:
    low = message.lower()
    return next((hint for needle, hint in HINTS if needle in low), "check the sweep file's slurm: section")


def _global_rank() -> int:
    try:
        return submitit.JobEnvironment().global_rank
    except RuntimeError:  # not inside a submitit job
        return 0


class SweepTask(submitit.helpers.Checkpointable):
    """Callable on a config dict: train + evaluate + write the row, resuming from <root>/checkpoints/<run_id>."""

    def __init__(self, root: str | Path, sweep: str, commit: str | None = None):
        self.root = str(Path(root).resolve())
        self.sweep = sweep
        self.commit = commit or git_commit()
        self._thread: threading.Thread | None = None
        self._outcome: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # pickled for submission and requeue: no live thread
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread, self._outcome = None, {}

    def run(self, cfg_dict: dict[str, Any]) -> dict[str, Any]:
        """The work itself, in the calling thread."""
        return train_one(self.root, self.sweep, cfg_dict)

    def __call__(self, cfg_dict: dict[str, Any]) -> dict[str, Any]:
        os.environ["AUGBENCH_GIT_COMMIT"] = self.commit  # rows record the submitting checkout's commit
        git_commit.cache_clear()

        def target() -> None:
            try:
                self._outcome["row"] = self.run(cfg_dict)
            except BaseException as e:  # re-raised in the main thread so submitit records it
                self._outcome["error"] = e

        self._outcome = {}
        self._thread = threading.Thread(target=target, name="augbench-train", daemon=True)
        self._thread.start()
        while self._thread.is_alive():
            self._thread.join(0.5)  # short joins: the signal handler runs between them
        err = self._outcome.get("error")
        if err is not None:
            from augbench.train.checkpoint import Preempted

            if isinstance(err, Preempted) and _global_rank() != 0:
                # multi-GPU: rank 0 may still be saving; exiting now could get the step killed first.
                # The requeue that rank 0 asks for ends this process.
                time.sleep(CKPT_WAIT_S)
            raise err
        return self._outcome["row"]

    def checkpoint(self, cfg_dict: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        from augbench.train import checkpoint

        checkpoint.request_checkpoint()
        if self._thread is not None:
            self._thread.join(CKPT_WAIT_S)
            err = self._outcome.get("error")
            state = (f"stopped: {err}" if isinstance(err, checkpoint.Preempted) else
                     "still running" if self._thread.is_alive() else "had already ended")
            print(f"augbench: preempted; training {state}", flush=True)
        return submitit.helpers.DelayedSubmission(type(self)(self.root, self.sweep, self.commit), cfg_dict)


# ---------------------------------------------------------------------- submission
def executor_for(sweep, root: Path) -> submitit.AutoExecutor:
    s = sweep.slurm
    folder = sweep.dir(root) / "submitit" / "%j"
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    gpus = int(s.get("gpus_per_node", 0))
    tasks = int(s.get("tasks_per_node") or max(1, gpus))  # one DDP rank per GPU; on CPU as asked (gloo)
    extra = {k: s[k] for k in ("account", "qos", "constraint") if s.get(k)}
    params: dict[str, Any] = dict(
        name=f"augbench-{sweep.name}", timeout_min=int(s.get("timeout_min", 60)),
        nodes=int(s.get("nodes", 1)), tasks_per_node=tasks, cpus_per_task=int(s.get("cpus_per_task", 1)),
        slurm_array_parallelism=int(s.get("array_parallelism", 32)),
    )
    if gpus:
        params["gpus_per_node"] = gpus
    if s.get("mem_gb"):
        params["mem_gb"] = int(s["mem_gb"])
    if s.get("partition"):
        params["slurm_partition"] = s["partition"]
    if extra:
        params["slurm_additional_parameters"] = extra
    ex.update_parameters(**params)
    return ex


def submit(sweep, configs: list[RunConfig], root: Path) -> list[submitit.Job]:
    """One array, one task per run; the job ids go to the ledger before this returns."""
    root = Path(root).resolve()
    task = SweepTask(root, sweep.name)
    try:
        ex = executor_for(sweep, root)
        jobs = ex.map_array(task, [c.to_dict(expand_policy=False) for c in configs])
    except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedSubmissionError, OSError,
            subprocess.SubprocessError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        raise SlurmError(f"sbatch refused sweep {sweep.name} ({sweep.source}): {msg[:300]}\n  hint: "
                         f"{slurm_hint(msg)}") from None
    record_submission(sweep.dir(root), {c.run_id: j.job_id for c, j in zip(configs, jobs)},
                      folder=str(sweep.dir(root) / "submitit"), commit=task.commit)
    return jobs


def wait(jobs: list[submitit.Job]) -> int:
    """Block until every task ends; print failures. Returns how many failed."""
    failed = 0
    for j in jobs:
        try:
            j.result()
        except Exception as e:  # submitit re-raises the task's error or reports a lost job
            failed += 1
            print(f"job {j.job_id} failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}")
    print(f"{len(jobs) - failed} of {len(jobs)} array tasks finished")
    return failed


class SlurmExecutor:
    """`sweep run --executor slurm`: one array; with `wait`, the outcome of every task."""

    def __init__(self, sweep, root: Path, wait: bool = False):
        self.sweep, self.root, self.wait = sweep, Path(root), wait

    def run(self, configs: list[RunConfig]):
        from augbench.sweeps.local import Outcome

        jobs = submit(self.sweep, configs, self.root)
        print(f"submitted {len(jobs)} array tasks (job {jobs[0].job_id.split('_')[0]}); "
              f"ledger: {self.sweep.dir(self.root) / 'jobs.json'}", flush=True)
        out = Outcome()
        if self.wait:
            out.counts["failed"] = wait(jobs)
            out.counts["done"] = len(jobs) - out.counts["failed"]
        return out
