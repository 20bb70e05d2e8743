"""Real SLURM (the local cluster of ../shared/slurm): arrays, preemption + resume, SIGKILL + rerun,
cancel, refusal before submission. Each test has its own results root, so its own submitit folder."""
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml

from augbench.cli import main as cli
from augbench.env import REPO_ROOT, git_commit
from augbench.store.rows import read_row
from augbench.train.checkpoint import HOLD_ENV
from augbench.run import run_config
from augbench.sweeps.ledger import latest_jobs, read_ledger, sacct_last_state, squeue_ids
from augbench.sweeps import expand, load_sweep

pytestmark = pytest.mark.slurm
START = REPO_ROOT.parent / "shared" / "slurm" / "start-local-slurm.sh"


@pytest.fixture(scope="session")
def slurm():
    if not shutil.which("sbatch"):
        pytest.skip("sbatch is not on PATH")
    up = subprocess.run(["sinfo", "-h", "-o", "%a"], capture_output=True, text=True, timeout=30)
    if up.returncode != 0 or "up" not in up.stdout:
        if not START.exists():
            pytest.skip(f"SLURM is not up and {START} is missing")
        subprocess.run(["bash", str(START)], env={**os.environ, "SLURM_LOCAL_ACCOUNTING": "1"}, check=True,
                       timeout=300)


def poll(pred, timeout=180.0, every=0.2, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sweep_file(tmp_path, name, epochs=2, cpus=1, **axes):
    """The smoke sweep under another name, optionally longer, with fewer runs."""
    d = yaml.safe_load((REPO_ROOT / "sweeps" / "smoke.yaml").read_text())
    d["name"], d["base"]["epochs"] = name, epochs
    d["axes"].update(axes)
    d["slurm"].update(cpus_per_task=cpus, timeout_min=20)  # > 10: USR2 means preemption, not timeout
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def rows(root):
    return sorted((root / "runs").glob("*.json"))


def test_array_of_four_smoke_runs_gives_exactly_four_rows(slurm, tmp_path, capsys):
    root = tmp_path / "res"
    assert cli(["sweep", "run", "smoke", "--executor", "slurm", "--results", str(root), "--wait"]) == 0
    cfgs = expand(load_sweep("smoke"))
    assert [p.stem for p in rows(root)] == sorted(c.run_id for c in cfgs)
    for c in cfgs:
        row = read_row(c.run_id, root / "runs")
        assert row["status"] == "done" and row["env"]["git_commit"] == git_commit() and row["env"]["slurm_job_id"]
    jobs = latest_jobs(root / "sweeps" / "smoke")
    assert len(jobs) == 4 and len({j.split("_")[0] for j in jobs.values()}) == 1  # one array, four tasks
    capsys.readouterr()
    assert cli(["sweep", "run", "smoke", "--executor", "slurm", "--results", str(root)]) == 0
    assert "0 to run" in capsys.readouterr().out
    assert len(read_ledger(root / "sweeps" / "smoke")["submissions"]) == 1  # nothing resubmitted
    assert len(rows(root)) == 4


def test_preempted_task_resumes_from_its_checkpoint_with_the_same_metrics(slurm, tmp_path):
    root = tmp_path / "res"
    path = sweep_file(tmp_path, "preempt", epochs=5, cpus=2, policy=["full"], seed=[0])  # the whole node
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root)]) == 0
    (cfg,) = expand(load_sweep(path))
    (job_id,) = latest_jobs(root / "sweeps" / "preempt").values()
    ckpt = root / "checkpoints" / cfg.run_id / "last.pt"
    poll(ckpt.exists, what="the first epoch's checkpoint")
    # a higher-priority job needs the node: SLURM sends USR2, the task saves at a step boundary and requeues
    subprocess.run(["sbatch", "-p", "urgent", "-c", "2", "-J", "augbench-test-urgent",
                    "-o", str(tmp_path / "urgent-%j.out"), "--wrap", "sleep 1"],
                   check=True, capture_output=True, timeout=30)
    final = poll(lambda: (read_row(cfg.run_id, root / "runs") or {}).get("status") in ("done", "failed"),
                 timeout=240, what="the requeued task to finish")
    got = read_row(cfg.run_id, root / "runs")
    assert final and got["status"] == "done", got["error"]
    log = "".join(p.read_text() for p in (root / "sweeps" / "preempt" / "submitit").rglob("*_log.out"))
    assert "Caught signal SIGUSR2" in log and "training stopped: checkpoint saved at epoch" in log
    assert f"resuming run {cfg.run_id}" in log and f"Requeued job {job_id.split('_')[0]}" in log
    ref = run_config(cfg, results_dir=tmp_path / "ref" / "runs")  # the same config, never interrupted
    assert got["metrics"] == ref["metrics"]
    assert [h["loss"] for h in got["history"]] == [h["loss"] for h in ref["history"]]
    assert len(rows(root)) == 1


def test_sigkilled_task_is_reported_and_a_rerun_completes_it_without_duplicates(slurm, tmp_path, capsys,
                                                                                  monkeypatch):
    root = tmp_path / "res"
    barrier = tmp_path / "release"  # the task holds after its first checkpoint until this file exists
    monkeypatch.setenv(HOLD_ENV, str(barrier))  # exported to the SLURM job by sbatch
    path = sweep_file(tmp_path, "killed", epochs=3, policy=["full"], seed=[0])
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root)]) == 0
    (cfg,) = expand(load_sweep(path))
    (job_id,) = latest_jobs(root / "sweeps" / "killed").values()
    held = poll(lambda: Path(str(barrier) + ".held").exists(), what="the task to save its first checkpoint")
    # provably mid-training: one of three epochs checkpointed, the row still running, the job alive
    ckpt = torch.load(root / "checkpoints" / cfg.run_id / "last.pt", map_location="cpu", weights_only=True)
    assert held and (ckpt["epoch"], ckpt["step_in_epoch"]) == (1, 0)
    assert read_row(cfg.run_id, root / "runs")["status"] == "running"
    assert job_id in (squeue_ids() or {})
    subprocess.run(["scancel", "--signal=KILL", job_id], check=True, timeout=30)
    poll(lambda: job_id not in (squeue_ids() or {}), what="the killed job to leave the queue")
    assert read_row(cfg.run_id, root / "runs")["status"] == "running"  # no done row: it died mid-run
    capsys.readouterr()

    def status_says_lost():  # sacct can lag a few seconds behind the kill: poll, don't check once
        assert cli(["sweep", "status", str(path), "--results", str(root)]) == 0
        out = capsys.readouterr().out
        return "1 lost" in out and f"lost     {cfg.run_id}" in out and f"job {job_id}" in out and out

    out = poll(status_says_lost, timeout=60, every=1.0, what="status to report the killed run as lost")
    assert f"job {job_id}: 0)" not in out  # sacct's "CANCELLED by 0" is shown whole
    barrier.touch()
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root), "--wait"]) == 0
    assert [p.stem for p in rows(root)] == [cfg.run_id]
    got = read_row(cfg.run_id, root / "runs")
    assert got["status"] == "done", got["error"]
    assert len(read_ledger(root / "sweeps" / "killed")["submissions"]) == 2
    log = "".join(p.read_text() for p in (root / "sweeps" / "killed" / "submitit").rglob("*_log.out"))
    assert f"resuming run {cfg.run_id}" in log  # the rerun continued from the killed run's checkpoint
    ref = run_config(cfg, results_dir=tmp_path / "ref" / "runs")  # the same config, never interrupted
    assert got["metrics"] == ref["metrics"]
    assert [h["loss"] for h in got["history"]] == [h["loss"] for h in ref["history"]]


def test_sacct_state_keeps_who_cancelled():
    assert sacct_last_state("CANCELLED by 0\n") == "CANCELLED by 0"
    assert sacct_last_state("COMPLETED\n\n") == "COMPLETED"
    assert sacct_last_state("") is None


def test_cancel_scancels_the_sweeps_jobs(slurm, tmp_path, capsys):
    root = tmp_path / "res"
    path = sweep_file(tmp_path, "cancelme", epochs=50)
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root)]) == 0
    ids = set(latest_jobs(root / "sweeps" / "cancelme").values())
    assert len(ids) == 4
    assert cli(["sweep", "cancel", str(path), "--results", str(root)]) == 0
    assert "cancelled 1 job(s)" in capsys.readouterr().out
    poll(lambda: not ids & set(squeue_ids() or {}), timeout=60, what="the cancelled jobs to leave the queue")
    assert not any((read_row(r, root / "runs") or {}).get("status") == "done" for r in latest_jobs(root / "sweeps" / "cancelme"))


def test_bad_sweep_is_refused_before_anything_is_submitted(slurm, tmp_path, capsys):
    root = tmp_path / "res"
    path = sweep_file(tmp_path, "badsweep", method=["simclr", "mocov9"])
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "'method'" in err and "mocov9" in err
    assert not root.exists()  # no ledger, no submitit folder, no rows
    queued = subprocess.run(["squeue", "-h", "-n", "augbench-badsweep"], capture_output=True, text=True, timeout=30)
    assert queued.returncode == 0 and queued.stdout.strip() == ""


def test_no_gpu_gres_is_one_message_with_the_fix(slurm, tmp_path, capsys):
    path = sweep_file(tmp_path, "needsgpu", policy=["full"], seed=[0])
    d = yaml.safe_load(path.read_text())
    d["slurm"]["gpus_per_node"] = 1  # this cluster has no GPU gres
    path.write_text(yaml.safe_dump(d))
    root = tmp_path / "res"
    assert cli(["sweep", "run", str(path), "--executor", "slurm", "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert "sbatch refused sweep needsgpu" in err and "slurm.gpus_per_node: 0" in err and "Traceback" not in err
    assert read_ledger(root / "sweeps" / "needsgpu")["submissions"] == []  # nothing recorded as submitted
