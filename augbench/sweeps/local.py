"""Local executors: N worker processes sharing this machine (the same code for N = 1), and the
in-process one (runs in order in this process; what a SLURM task does for its one run).

Workers: the parent hands out runs in order, one per free slot, so no run is ever started twice by
it; the run lock (augbench.store.locks) keeps a second sweep on the same results from training it too
(that worker exits BUSY and the run is reported `busy`). Each run is `python -m augbench.cli train
--config <run_id>.yaml --results <root> --sweep NAME` with AUGBENCH_PARALLEL=N (recorded as
env.parallel); its output is appended to <root>/sweeps/<name>/local/<run_id>.log after an
`augbench: started ...` line. A failed run does not stop the others; the sweep exits non-zero.

Budget (plan.Budget, shared by both executors): a run starts only if elapsed + its estimate (+ the
per-run process overhead measured so far) fits. A run that does not fit waits for the next run to
end (the estimate is remeasured) and is skipped, with the rest, once nothing is running. At the
budget, running runs finish; with `hard_stop` they get SIGUSR1 (repeated: a worker ignores it until
its training is set up), save a checkpoint at the next step and exit (`stopped`; the row stays
`running`, so the next session resumes them), and are killed if still alive STOP_GRACE_S later.

Each session appends its counts and throughput to <root>/sweeps/<name>/sessions.jsonl.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import yaml

from augbench.config import RunConfig
from augbench.env import REPO_ROOT, git_commit
from augbench.errors import UserError
from augbench.store.atomic import atomic_write
from augbench.store.rows import DONE, FAILED, STOPPED, RunStore
from augbench.sweeps.plan import Budget, fmt_s

STOP_GRACE_S = 120  # after SIGUSR1, how long a worker may take to save before it is killed
POLL_S = 0.2
RESEND_S = 2.0  # the stop request is repeated this often until the worker exits
EXIT_STOPPED, EXIT_BUSY = 3, 4  # augbench.run's exit statuses (not imported: that module imports torch)
BUSY = "busy"


@dataclass
class Outcome:
    """What a session did; `failed` makes the sweep exit non-zero."""
    counts: dict[str, int] = field(default_factory=lambda: {DONE: 0, FAILED: 0, STOPPED: 0, BUSY: 0})
    skipped: int = 0
    wall_s: float = 0.0
    images: int = 0

    def line(self) -> str:
        c = self.counts
        return (f"{c[DONE]} done, {c[FAILED]} failed, {c[STOPPED]} stopped, {self.skipped} skipped"
                + (f", {c[BUSY]} busy (trained by another process)" if c[BUSY] else ""))


class Progress:
    """`[k/n] ... elapsed, ETA` lines: the ETA is the mean wall time per finished run so far."""

    def __init__(self, total: int):
        self.total, self.done, self.t0 = total, 0, time.monotonic()

    def finished(self, msg: str) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done)
        print(f"[{self.done}/{self.total} finished, elapsed {fmt_s(elapsed)}, ETA {fmt_s(eta)}] {msg}", flush=True)


@dataclass
class Worker:
    cfg: RunConfig
    proc: subprocess.Popen
    log: IO[str]
    started: float


def worker_env(parallel: int) -> dict[str, str]:
    env = dict(os.environ)
    here = str(REPO_ROOT)  # workers import this very checkout
    env["PYTHONPATH"] = os.pathsep.join([here] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(AUGBENCH_PARALLEL=str(parallel), AUGBENCH_GIT_COMMIT=git_commit(), PYTHONUNBUFFERED="1")
    return env


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


class LocalExecutor:
    """`sweep run --local [--parallel N]`: N worker processes (default 1)."""

    def __init__(self, sweep, root: Path, budget: Budget, hard_stop: bool = False, discard_corrupt: bool = False):
        self.sweep, self.store, self.budget = sweep, RunStore.at(Path(root).resolve()), budget
        self.parallel, self.hard_stop, self.discard_corrupt = budget.parallel, hard_stop, discard_corrupt
        self.local = sweep.dir(self.store.root) / "local"

    def start(self, cfg: RunConfig, env: dict[str, str]) -> Worker:
        plain = json.loads(json.dumps(cfg.to_dict(expand_policy=False)))  # tuples -> lists
        cfg_path = atomic_write(self.local / f"{cfg.run_id}.yaml", yaml.safe_dump(plain, sort_keys=False))
        log = open(self.local / f"{cfg.run_id}.log", "a")
        log.write(f"augbench: started {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                  f"parallel={self.parallel}\n")
        log.flush()
        cmd = [sys.executable, "-m", "augbench.cli", "train", "--config", str(cfg_path),
               "--results", str(self.store.root), "--sweep", self.sweep.name]
        if self.discard_corrupt:
            cmd.append("--discard-corrupt")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        return Worker(cfg, proc, log, time.monotonic())

    def outcome(self, w: Worker) -> tuple[str, dict[str, Any]]:
        """done / failed from the row; stopped or busy from the worker's exit status."""
        try:
            row = self.store.read_row(w.cfg.run_id) or {}
        except UserError:  # a corrupt row: the worker's log says so
            row = {}
        if row.get("status") in (DONE, FAILED):
            return row["status"], row
        return {EXIT_STOPPED: STOPPED, EXIT_BUSY: BUSY}.get(w.proc.returncode, FAILED), row

    @staticmethod
    def why(w: Worker, row: dict[str, Any]) -> str:
        if row.get("error"):
            return row["error"].splitlines()[0]
        lines = Path(w.log.name).read_text(errors="replace").strip().splitlines()
        return f"exit status {w.proc.returncode}: {lines[-1] if lines else ''}"

    def run(self, configs: list[RunConfig]) -> Outcome:
        self.local.mkdir(parents=True, exist_ok=True)
        env = worker_env(self.parallel)
        pending, running, out, progress = list(configs), [], Outcome(), Progress(len(configs))
        overheads: list[float] = []
        t0, blocked, stop_sent, resend_at, next_est = time.monotonic(), False, None, 0.0, 0.0
        budget_s = self.budget.seconds
        main_thread = threading.current_thread() is threading.main_thread()
        if main_thread:  # SIGTERM (e.g. `timeout`): end the workers too
            old_term = signal.signal(signal.SIGTERM, _exit_on_signal)
        try:
            while True:
                elapsed = time.monotonic() - t0
                if self.hard_stop and budget_s is not None and elapsed >= budget_s and running:
                    if stop_sent is None:
                        print(f"budget: {budget_s:g}s reached; asking {len(running)} run(s) to checkpoint and stop",
                              flush=True)
                        stop_sent = time.monotonic()
                    if time.monotonic() >= resend_at:  # repeated: a worker still starting up ignores it
                        for w in running:
                            w.proc.send_signal(signal.SIGUSR1)
                        resend_at = time.monotonic() + RESEND_S
                while pending and len(running) < self.parallel and not blocked and stop_sent is None:
                    cfg = pending[0]
                    fits, next_est = self.budget.fits(cfg, elapsed, sum(overheads) / len(overheads) if overheads else 0.0)
                    if not fits:
                        blocked = True  # until a running run ends and the estimate is remeasured
                        break
                    pending.pop(0)
                    running.append(self.start(cfg, env))
                    print(f"[{len(configs) - len(pending)}/{len(configs)}] start {cfg.run_id} {cfg.method} "
                          f"{cfg.policy_name} seed={cfg.seed} ({len(running)} running)", flush=True)
                if not running:
                    break
                time.sleep(POLL_S)
                for w in [w for w in running if w.proc.poll() is not None]:
                    running.remove(w)
                    w.log.close()
                    status, row = self.outcome(w)
                    out.counts[status] += 1
                    blocked = False
                    self.budget.estimator.refresh()
                    wall = time.monotonic() - w.started
                    msg = f"{status} {w.cfg.run_id} after {wall:.1f}s"
                    if status == DONE:
                        t = row.get("timings") or {}
                        overheads.append(max(0.0, wall - t.get("train_s", 0.0) - t.get("eval_s", 0.0)))
                        out.images += int(t.get("images") or 0)
                    elif status in (FAILED, BUSY):
                        msg += f": {self.why(w, row)} (log: {w.log.name})"
                    progress.finished(msg)
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
            if main_thread:
                signal.signal(signal.SIGTERM, old_term)
        out.wall_s, out.skipped = time.monotonic() - t0, len(pending)
        if pending:
            print(f"budget: {len(pending)} run(s) left pending (next: {pending[0].run_id}, estimated "
                  f"{next_est:.0f}s at {self.parallel} at once; elapsed {out.wall_s:.1f}s of {budget_s:g}s)",
                  flush=True)
        self.record_session(out, configs)
        return out

    def record_session(self, out: Outcome, configs: list[RunConfig]) -> None:
        """One line of `sessions.jsonl`: this session's throughput, device and workload (what
        `--parallel auto` compares; see sweeps/parallelism.py)."""
        from augbench.sweeps.parallelism import session_device, workload

        wall = out.wall_s
        summary = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "parallel": self.parallel, "device": session_device(configs), "workload": workload(configs), "budget_s": self.budget.seconds, **out.counts, "skipped": out.skipped,
                   "wall_s": round(wall, 2),
                   "runs_per_hour": round(out.counts[DONE] * 3600 / wall, 2) if wall > 0 else 0.0,
                   "images_per_s": round(out.images / wall, 1) if wall > 0 else 0.0}
        with open(self.sweep.dir(self.store.root) / "sessions.jsonl", "a") as f:
            f.write(json.dumps(summary) + "\n")
        print(f"parallel {self.parallel}: {out.line()} in {wall:.1f}s; throughput {summary['runs_per_hour']:g} "
              f"runs/h, {summary['images_per_s']:g} images/s over all workers", flush=True)


def train_one(root: str, sweep: str, cfg_dict: dict[str, Any]) -> dict[str, Any]:
    """One run in this process (what a SLURM task and the in-process executor do): a done row is
    returned as it is (a requeue after the end does nothing), else it trains, resuming from its
    checkpoint; under DDP one rank per task, and only rank 0 writes the row."""
    from augbench.train import checkpoint, distributed
    from augbench.run import run_config

    cfg = RunConfig.from_concrete(cfg_dict, source=f"sweep {sweep}")
    store = RunStore.at(root)
    row = store.read_row(cfg.run_id)
    if row and row["status"] == DONE:
        return row
    checkpoint.clear_request()
    ckpt = store.ckpt_dir(cfg.run_id)
    if checkpoint.checkpoint_path(ckpt).exists():
        print(f"augbench: resuming run {cfg.run_id} from {checkpoint.checkpoint_path(ckpt)}", flush=True)
    distributed.init_from_env()
    return run_config(cfg, results_dir=store.runs, ckpt_dir=ckpt, sweep=sweep)


class InProcessExecutor:
    """`sweep run --executor inprocess`: in order, in this process (debugging; no process start-up)."""

    def __init__(self, sweep, root: Path, budget: Budget):
        self.root, self.sweep, self.budget = str(Path(root).resolve()), sweep.name, budget

    def run(self, configs: list[RunConfig]) -> Outcome:
        from augbench.store.locks import RunLocked

        out, progress, t0 = Outcome(), Progress(len(configs)), time.monotonic()
        for i, cfg in enumerate(configs):
            fits, est = self.budget.fits(cfg, time.monotonic() - t0)
            if not fits:
                print(f"budget: stopping before run {cfg.run_id} (elapsed {time.monotonic() - t0:.1f}s + estimate "
                      f"{est:.1f}s > {self.budget.seconds:g}s); {len(configs) - i} run(s) left pending", flush=True)
                out.skipped = len(configs) - i
                break
            print(f"start {cfg.run_id} {cfg.method} {cfg.policy_name} seed={cfg.seed}", flush=True)
            try:
                row = train_one(self.root, self.sweep, cfg.to_dict(expand_policy=False))
                status, why = row["status"], (row.get("error") or "").split("\n")[0]
            except RunLocked as e:
                status, why = BUSY, str(e)
            except Exception as e:  # the failed row is written by run_config; go on with the next run
                status, why = FAILED, f"{type(e).__name__}: {e}"
            out.counts[status] += 1
            self.budget.estimator.refresh()
            progress.finished(f"{status} {cfg.run_id}" + (f": {why}" if why else ""))
        out.wall_s = time.monotonic() - t0
        print(f"in-process: {out.line()} in {out.wall_s:.1f}s", flush=True)
        return out
