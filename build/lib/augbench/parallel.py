"""Local budget mode with N runs sharing one device: `augbench sweep run SWEEP --local --parallel N`.

The parent hands out runs in order, one per free slot, so no run is ever started twice. Each run
is a worker process, `python -m augbench.cli train --config <run_id>.yaml --results <root>/runs
--ckpt-dir <root>/checkpoints/<run_id> --sweep NAME`, with AUGBENCH_PARALLEL=N (the row records
it as env.parallel); its output is appended to <root>/sweeps/<name>/local/<run_id>.log after a
`augbench: started ...` line. The worker writes its own row (one file per run_id, atomically); the
parent reads it when the worker exits. A failed run does not stop the others.

Budget: a run starts only if elapsed + its estimate fits the budget. The estimate is
slurm_task.seconds_per_epoch at this parallelism x epochs, plus the per-run process overhead
(start-up, data loading: wall time minus train_s + eval_s) measured so far this session. A run that
does not fit waits for the next run to end (the estimate is remeasured) and is skipped, with the
rest, once nothing is running. At the budget, running runs finish; with `hard_stop` they get
SIGUSR1 (repeated: a worker ignores it until its training is set up), save a checkpoint at the next
step and exit (status `stopped`; the row stays `running`, so the next session resumes them), and
are killed if still alive STOP_GRACE_S later.

Each session appends its counts and throughput (runs per hour, pretraining images per second over
all workers) to <root>/sweeps/<name>/sessions.jsonl and prints them: compare N=1, 2, 4 that way.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

import augbench
from augbench.atomic import atomic_write
from augbench.config import RunConfig
from augbench.env import git_commit
from augbench.results import read_row
from augbench.slurm_task import ckpt_dir, seconds_per_epoch

STOP_GRACE_S = 120  # after SIGUSR1, how long a worker may take to save before it is killed
POLL_S = 0.2
RESEND_S = 2.0  # the stop request is repeated this often until the worker exits
STOPPED = 3  # augbench.run.STOPPED (not imported: that module imports torch)


@dataclass
class Worker:
    cfg: RunConfig
    proc: subprocess.Popen
    log: IO[str]
    started: float


def worker_env(parallel: int) -> dict[str, str]:
    env = dict(os.environ)
    here = str(Path(augbench.__file__).resolve().parents[1])  # workers import this very checkout
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(AUGBENCH_PARALLEL=str(parallel), AUGBENCH_GIT_COMMIT=git_commit(), PYTHONUNBUFFERED="1")
    return env


def start(cfg: RunConfig, root: Path, sweep, env: dict[str, str]) -> Worker:
    local = sweep.dir(root) / "local"
    plain = json.loads(json.dumps(cfg.to_dict(expand_policy=False)))  # tuples -> lists
    cfg_path = atomic_write(local / f"{cfg.run_id}.yaml", yaml.safe_dump(plain, sort_keys=False))
    log = open(local / f"{cfg.run_id}.log", "a")
    log.write(f"augbench: started {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
              f"parallel={env['AUGBENCH_PARALLEL']}\n")
    log.flush()
    cmd = [sys.executable, "-m", "augbench.cli", "train", "--config", str(cfg_path), "--results", str(root / "runs"),
           "--ckpt-dir", str(ckpt_dir(root, cfg.run_id)), "--sweep", sweep.name]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
    return Worker(cfg, proc, log, time.monotonic())


def outcome(w: Worker, root: Path) -> tuple[str, dict[str, Any]]:
    """done / failed from the row; stopped when the worker saved a checkpoint on request."""
    row = read_row(w.cfg.run_id, root / "runs") or {}
    if row.get("status") in ("done", "failed"):
        return row["status"], row
    return ("stopped" if w.proc.returncode == STOPPED else "failed"), row


def why(w: Worker, row: dict[str, Any]) -> str:
    if row.get("error"):
        return row["error"].splitlines()[0]
    lines = Path(w.log.name).read_text(errors="replace").strip().splitlines()
    return f"exit status {w.proc.returncode}: {lines[-1] if lines else ''}"


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def run_parallel(sweep, configs: list[RunConfig], root: Path, parallel: int, budget_s: float | None = None,
                 hard_stop: bool = False) -> dict[str, Any]:
    """Run `configs` with at most `parallel` workers at a time; return the session's summary."""
    root = Path(root).resolve()
    (sweep.dir(root) / "local").mkdir(parents=True, exist_ok=True)
    env = worker_env(parallel)
    pending, running = list(configs), []
    counts = {"done": 0, "failed": 0, "stopped": 0}
    overheads: list[float] = []
    images, t0, blocked, stop_sent, resend_at, next_est = 0, time.monotonic(), False, None, 0.0, 0.0
    if threading.current_thread() is threading.main_thread():  # SIGTERM (e.g. `timeout`): end the workers too
        old_term = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        while True:
            elapsed = time.monotonic() - t0
            if hard_stop and budget_s is not None and elapsed >= budget_s and running:
                if stop_sent is None:
                    print(f"budget: {budget_s:g}s reached; asking {len(running)} run(s) to checkpoint and stop",
                          flush=True)
                    stop_sent = time.monotonic()
                if time.monotonic() >= resend_at:  # repeated: a worker still starting up ignores it
                    for w in running:
                        w.proc.send_signal(signal.SIGUSR1)
                    resend_at = time.monotonic() + RESEND_S
            while pending and len(running) < parallel and not blocked and stop_sent is None:
                cfg = pending[0]
                if budget_s is not None:
                    per_epoch = seconds_per_epoch(cfg, root / "runs", sweep, parallel) or 0.0
                    est = per_epoch * cfg.epochs + (sum(overheads) / len(overheads) if overheads else 0.0)
                    next_est = est
                    if elapsed + est > budget_s:
                        blocked = True  # until a running run ends and the estimate is remeasured
                        break
                pending.pop(0)
                running.append(start(cfg, root, sweep, env))
                print(f"[{len(configs) - len(pending)}/{len(configs)}] start {cfg.run_id} {cfg.method} "
                      f"{cfg.policy_name} seed={cfg.seed} ({len(running)} running)", flush=True)
            if not running:
                break
            time.sleep(POLL_S)
            for w in [w for w in running if w.proc.poll() is not None]:
                running.remove(w)
                w.log.close()
                status, row = outcome(w, root)
                counts[status] += 1
                blocked = False
                wall = time.monotonic() - w.started
                msg = f"  {status} {w.cfg.run_id} after {wall:.1f}s"
                if status == "done":
                    t = row.get("timings") or {}
                    overheads.append(max(0.0, wall - t.get("train_s", 0.0) - t.get("eval_s", 0.0)))
                    images += int(t.get("images") or 0)
                elif status == "failed":
                    msg += f": {why(w, row)} (log: {w.log.name})"
                print(msg, flush=True)
            if stop_sent is not None and time.monotonic() - stop_sent > STOP_GRACE_S:
                for w in running:
                    print(f"  killing {w.cfg.run_id}: no checkpoint within {STOP_GRACE_S}s", flush=True)
                    w.proc.kill()
                    w.proc.wait()
    finally:
        for w in running:  # only on an error, Ctrl-C or SIGTERM in the parent: leave no orphans
            w.proc.kill()
            w.proc.wait()
            w.log.close()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, old_term)
    wall = time.monotonic() - t0
    if pending:
        print(f"budget: {len(pending)} run(s) left pending (next: {pending[0].run_id}, estimated {next_est:.0f}s "
              f"at {parallel} at once; elapsed {wall:.1f}s of {budget_s:g}s)", flush=True)
    summary = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "parallel": parallel,
               "budget_s": budget_s, **counts, "skipped": len(pending), "wall_s": round(wall, 2),
               "runs_per_hour": round(counts["done"] * 3600 / wall, 2) if wall > 0 else 0.0,
               "images_per_s": round(images / wall, 1) if wall > 0 else 0.0}
    with open(sweep.dir(root) / "sessions.jsonl", "a") as f:
        f.write(json.dumps(summary) + "\n")
    print(f"parallel {parallel}: {counts['done']} done, {counts['failed']} failed, {counts['stopped']} stopped, "
          f"{len(pending)} skipped in {wall:.1f}s; throughput {summary['runs_per_hour']:g} runs/h, "
          f"{summary['images_per_s']:g} images/s over all workers", flush=True)
    return summary
