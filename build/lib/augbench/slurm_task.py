"""Executing a sweep: one submitit array task per run (checkpointable, so preemption resumes),
the job ledger (results/sweeps/<name>/jobs.json), status from squeue, and the local runner.

Preemption: submitit calls `checkpoint()` from its USR2 handler in the main thread. Training runs
in a worker thread, so the handler can ask it to save at the next step boundary
(`augbench.checkpoint.request_checkpoint`), wait for the save, and only then return the
DelayedSubmission that submitit requeues; the requeued task resumes from that checkpoint.
"""
from __future__ import annotations

import datetime as dt
import json
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
from augbench.results import atomic_write_json, read_row

CKPT_WAIT_S = 120  # how long the preemption handler waits for the step-boundary save


def ckpt_dir(root: str | Path, run_id: str) -> Path:
    return Path(root) / "checkpoints" / run_id  # run.py's default place too


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
        """The work itself, in the calling thread (the local executor calls this directly)."""
        from augbench import checkpoint, distributed
        from augbench.run import run_config

        cfg = RunConfig.from_dict(cfg_dict, source=f"sweep {self.sweep}")
        row = read_row(cfg.run_id, Path(self.root) / "runs")
        if row and row.get("status") == "done":  # idempotent: a requeue after the end does nothing
            return row
        checkpoint.clear_request()
        ckpt = ckpt_dir(self.root, cfg.run_id)
        if checkpoint.checkpoint_path(ckpt).exists():
            print(f"augbench: resuming run {cfg.run_id} from {checkpoint.checkpoint_path(ckpt)}", flush=True)
        distributed.init_from_env()  # multi-task jobs: one DDP rank per task; only rank 0 writes the row
        return run_config(cfg, results_dir=Path(self.root) / "runs",
                          ckpt_dir=ckpt, sweep=self.sweep)

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
            from augbench.checkpoint import Preempted

            if isinstance(err, Preempted) and _global_rank() != 0:
                # multi-GPU: rank 0 may still be saving; exiting now could get the step killed first.
                # The requeue that rank 0 asks for ends this process.
                time.sleep(CKPT_WAIT_S)
            raise err
        return self._outcome["row"]

    def checkpoint(self, cfg_dict: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        from augbench import checkpoint

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
    ex = executor_for(sweep, root)
    jobs = ex.map_array(task, [c.to_dict(expand_policy=False) for c in configs])
    record_submission(sweep.dir(root), {c.run_id: j.job_id for c, j in zip(configs, jobs)},
                      folder=str(sweep.dir(root) / "submitit"), commit=task.commit)
    return jobs


def wait(jobs: list[submitit.Job]) -> int:
    """Block until every task ends; print failures. Exit code 1 if any failed."""
    failed = 0
    for j in jobs:
        try:
            j.result()
        except Exception as e:  # submitit re-raises the task's error or reports a lost job
            failed += 1
            print(f"job {j.job_id} failed: {str(e).strip().splitlines()[-1] if str(e).strip() else e!r}")
    print(f"{len(jobs) - failed} of {len(jobs)} array tasks finished")
    return 1 if failed else 0


# ---------------------------------------------------------------------- the ledger
def ledger_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "jobs.json"


def read_ledger(sweep_dir: Path) -> dict[str, Any]:
    p = ledger_path(sweep_dir)
    if not p.exists():
        return {"submissions": []}
    return json.loads(p.read_text())


def record_submission(sweep_dir: Path, jobs: dict[str, str], folder: str, commit: str) -> None:
    ledger = read_ledger(sweep_dir)
    ledger["submissions"].append({"submitted_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                  "folder": folder, "git_commit": commit, "jobs": jobs})
    atomic_write_json(ledger_path(sweep_dir), ledger)


def latest_jobs(sweep_dir: Path) -> dict[str, str]:
    """run_id -> the job id of its latest submission."""
    out: dict[str, str] = {}
    for sub in read_ledger(sweep_dir)["submissions"]:
        out.update(sub["jobs"])
    return out


def squeue_ids() -> dict[str, str] | None:
    """Live job ids (array tasks one per line, '123_4') -> state; None when SLURM is not reachable."""
    if not shutil.which("squeue"):
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(line.split("|", 1) for line in out.split() if "|" in line)


def sacct_state(job_id: str) -> str | None:
    """SLURM's final word on a job (COMPLETED, FAILED, CANCELLED, ...); None without accounting."""
    if not shutil.which("sacct"):
        return None
    try:
        out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", job_id], capture_output=True,
                             text=True, timeout=30).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[-1] if out else None


def active_runs(sweep_dir: Path) -> dict[str, str]:
    """run_id -> job id for runs whose latest job is still pending or running in SLURM."""
    jobs = latest_jobs(sweep_dir)
    if not jobs:
        return {}
    live = squeue_ids() or {}
    return {rid: jid for rid, jid in jobs.items() if jid in live}


def cancel(sweep_dir: Path) -> list[str]:
    """scancel every array the ledger records for this sweep (finished ones are ignored by SLURM)."""
    arrays = sorted({jid.split("_")[0] for jid in latest_jobs(sweep_dir).values()})
    if arrays and shutil.which("scancel"):
        subprocess.run(["scancel", *arrays], check=False, timeout=60)
    return arrays


# ---------------------------------------------------------------------- local execution
def seconds_per_epoch(cfg: RunConfig, runs_root: Path, sweep, parallel: int = 1) -> float | None:
    """Wall time per epoch (eval included) from past done rows of the same sweep and backbone run
    at this parallelism (row env.parallel; rows without it ran alone). Else, for parallel N > 1,
    the estimate for one run alone (those rows, or the plan's) times N: conservative."""
    per_epoch: dict[int, list[float]] = {}
    for p in Path(runs_root).glob("*.json"):
        try:
            row = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        t = row.get("timings") or {}
        if (row.get("status") == "done" and row.get("sweep") == sweep.name and row.get("backbone") == cfg.backbone
                and t.get("train_s") is not None and row.get("epochs")):
            n = int((row.get("env") or {}).get("parallel") or 1)
            per_epoch.setdefault(n, []).append((t["train_s"] + (t.get("eval_s") or 0.0)) / row["epochs"])
    for n, scale in ((parallel, 1), (1, parallel)):
        if per_epoch.get(n):
            return scale * sum(per_epoch[n]) / len(per_epoch[n])
    est = sweep.estimate.get(cfg.backbone)
    return None if est is None else est * parallel


def run_local(sweep, configs: list[RunConfig], root: Path, budget_s: float | None = None) -> int:
    """Run in order in this process. With a budget, start no run whose estimate would overrun it."""
    root = Path(root).resolve()
    task = SweepTask(root, sweep.name)
    start, ran = time.monotonic(), 0
    for i, cfg in enumerate(configs):
        if budget_s is not None:
            per_epoch = seconds_per_epoch(cfg, root / "runs", sweep)
            est = (per_epoch or 0.0) * cfg.epochs
            elapsed = time.monotonic() - start
            if elapsed + est > budget_s:
                print(f"budget: stopping before run {cfg.run_id} (elapsed {elapsed:.1f}s + estimate {est:.1f}s "
                      f"> {budget_s:g}s); {len(configs) - i} run(s) left pending", flush=True)
                break
        print(f"[{i + 1}/{len(configs)}] {cfg.run_id} {cfg.method} {cfg.policy_name} seed={cfg.seed}", flush=True)
        try:
            task.run(cfg.to_dict(expand_policy=False))
        except Exception as e:  # the failed row is written by run_config; go on with the next run
            print(f"  failed: {e!r}", flush=True)
        ran += 1
    return ran
