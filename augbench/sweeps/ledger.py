"""A sweep's SLURM ledger (<root>/sweeps/<name>/jobs.json: run_id -> job id per submission) and
what SLURM says of those jobs (squeue: live; sacct: final state). No submitit here: a machine
without it can still plan and run sweeps locally."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

from augbench.store.rows import CorruptFile, atomic_write_json, read_json


# ---------------------------------------------------------------------- the ledger
def ledger_path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / "jobs.json"


def read_ledger(sweep_dir: Path) -> dict[str, Any]:
    p = ledger_path(sweep_dir)
    ledger = read_json(p, "job ledger")
    if ledger is None:
        return {"submissions": []}
    if not isinstance(ledger, dict) or not isinstance(ledger.get("submissions"), list) or not all(
            isinstance(s, dict) and isinstance(s.get("jobs"), dict) for s in ledger["submissions"]):
        raise CorruptFile(p, "job ledger", "expected {submissions: [{jobs: {run_id: job_id}}, ...]}")
    return ledger


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
                             text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return sacct_last_state(out)


def sacct_last_state(out: str) -> str | None:
    """The last line of `sacct -P -o State`, whole: "CANCELLED by 0" (uid 0 cancelled it), not "0"."""
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    return lines[-1] if lines else None


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
