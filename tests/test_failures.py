"""The execution layer under bad inputs, concurrency, kills and corruption: every failure is one
message naming the file or cause and what to do, a non-zero exit, no traceback (--debug shows it),
and nothing already written is lost."""
import json
import multiprocessing as mp
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from augbench.train.checkpoint import HOLD_ENV
from augbench.cli import main as cli
from augbench.store.locks import LOCK_NAME, STALE_S, RunLock, RunLocked, owner_alive
from augbench.store.rows import RunStore
from augbench.sweeps import expand, load_sweep, make_plan, sweep_from_dict
from augbench.sweeps.slurm import slurm_hint

REPO = Path(__file__).resolve().parents[1]
TINY = ["--method", "simclr", "--width", "8", "--subset", "10", "--epochs", "2", "--batch-size", "50",
        "--proj-hidden", "32", "--proj-dim", "16", "--knn-k", "5", "--linear-epochs", "1", "--eval-subset", "5",
        "--device", "cpu", "--num-threads", "1", "--no-progress", "--no-amp"]


def train(root, *extra):
    return cli(["train", *TINY, "--results", str(root), *extra])


def run_id(root) -> str:
    (p,) = (Path(root) / "runs").glob("*.json")
    return p.stem


# ---------------------------------------------------------------------- corrupt files
def test_corrupt_row_is_named_and_discard_corrupt_moves_it_aside(tmp_path, capsys):
    root = tmp_path / "res"
    assert train(root) == 0
    rid = run_id(root)
    row = root / "runs" / f"{rid}.json"
    row.write_text('{"run_id": "x", "status"')  # torn by hand
    smoke_row = root / "runs" / f"{expand(load_sweep('smoke'))[0].run_id}.json"
    smoke_row.write_text("")
    first = min(row, smoke_row, key=lambda p: p.name)  # collect reads rows in name order: the first corrupt one
    for argv, bad in ((["train", *TINY], row), (["collect"], first), (["sweep", "status", "smoke"], smoke_row),
                      (["sweep", "run", "smoke", "--local", "--dry-run"], smoke_row)):
        capsys.readouterr()
        assert cli([*argv, "--results", str(root)]) == 2
        err = capsys.readouterr().err
        assert f"{bad}: corrupt result row" in err and "--discard-corrupt" in err and "Traceback" not in err
    smoke_row.unlink()
    assert cli(["collect", "--results", str(root), "--debug"]) == 2
    assert "Traceback" in capsys.readouterr().err  # --debug shows where
    assert train(root, "--discard-corrupt") == 0  # set aside, then trained again
    (moved,) = (root / "corrupt").rglob(f"{rid}.json")
    assert moved.read_text() == '{"run_id": "x", "status"'  # never deleted
    assert json.loads(row.read_text())["status"] == "done"


def test_corrupt_checkpoint_and_ledger_are_named(tmp_path, capsys):
    root = tmp_path / "res"
    assert train(root, "--epochs", "1") == 0
    rid = run_id(root)
    ckpt = root / "checkpoints" / rid / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # truncated
    (root / "runs" / f"{rid}.json").unlink()  # as if it died before writing its row
    capsys.readouterr()
    assert train(root, "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert f"{ckpt}: corrupt checkpoint" in err and "--discard-corrupt" in err and "Traceback" not in err
    assert train(root, "--epochs", "1", "--discard-corrupt") == 0
    assert list((root / "corrupt").rglob("last.pt"))
    ledger = root / "sweeps" / "smoke" / "jobs.json"
    ledger.parent.mkdir(parents=True)
    ledger.write_text("[1, 2")
    capsys.readouterr()
    assert cli(["sweep", "status", "smoke", "--results", str(root)]) == 2
    assert f"{ledger}: corrupt job ledger" in capsys.readouterr().err
    assert cli(["sweep", "status", "smoke", "--results", str(root), "--discard-corrupt"]) == 0
    assert not ledger.exists() and list((root / "corrupt").rglob("jobs.json"))


# ---------------------------------------------------------------------- done rows, folders
def test_train_keeps_a_done_row_and_force_trains_it_again(tmp_path, capsys):
    root = tmp_path / "res"
    assert train(root) == 0
    rid = run_id(root)
    first = (root / "runs" / f"{rid}.json").read_text()
    capsys.readouterr()
    assert train(root) == 0
    assert "already done" in capsys.readouterr().out and (root / "runs" / f"{rid}.json").read_text() == first
    assert train(root, "--force") == 0
    again = json.loads((root / "runs" / f"{rid}.json").read_text())
    assert again["status"] == "done" and again["metrics"] == json.loads(first)["metrics"]  # from scratch, same seed
    assert again["started_at"] >= json.loads(first)["started_at"]


def test_unwritable_results_are_refused_before_any_training(tmp_path, capsys):
    root = tmp_path / "res"
    root.mkdir()
    (root / "checkpoints").write_text("a file where a folder should be")  # unwritable even for root
    assert train(root) == 2
    err = capsys.readouterr().err
    assert f"{root / 'checkpoints'}: cannot write here" in err and "Traceback" not in err
    assert not list((root / "runs").glob("*.json"))
    assert cli(["sweep", "run", "smoke", "--local", "--seeds", "0", "--results", str(root)]) == 2
    assert "cannot write here" in capsys.readouterr().err and not list((root / "runs").glob("*.json"))


# ---------------------------------------------------------------------- locks
def _hold_lock(ckpt, go, ready):
    lock = RunLock(ckpt, "r1").acquire()
    ready.set()
    go.wait(60)
    lock.release()


def _race(ckpt, start, q):
    start.wait()
    try:
        RunLock(ckpt, "r1").acquire()
        q.put("won")
        time.sleep(2)  # hold it while the others try
    except RunLocked:
        q.put("lost")


def test_eight_racing_processes_one_lock_holder(tmp_path):
    ctx = mp.get_context("fork")
    start, q = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(tmp_path, start, q)) for _ in range(8)]
    for p in procs:
        p.start()
    start.set()
    got = sorted(q.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(30)
    assert got == ["lost"] * 7 + ["won"]


def test_a_live_lock_refuses_and_a_killed_owners_lock_is_taken_over(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time; from augbench.store.locks import RunLock
RunLock({str(tmp_path)!r}, "r1").acquire(); print("held", flush=True); time.sleep(120)"""],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunLocked, match=f"pid {holder.pid} on {platform.node()}"):
        RunLock(tmp_path, "r1").acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert owner_alive(tmp_path) is None  # its pid is gone: stale
    lock = RunLock(tmp_path, "r1").acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_from_another_host_is_stale_only_without_heartbeat(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"host": "node-elsewhere", "pid": 1, "job_id": "77_1", "since": "then"}))
    with pytest.raises(RunLocked, match="SLURM job 77_1"):
        RunLock(tmp_path, "r1").acquire()
    old = time.time() - STALE_S - 5
    os.utime(path, (old, old))  # its heartbeat stopped
    RunLock(tmp_path, "r1").acquire().release()


def test_a_run_held_by_a_live_process_shows_running_and_is_not_planned(tmp_path):
    sweep = sweep_from_dict({"name": "t", "base": {"epochs": 1, "device": "cpu"}, "axes": {"seed": [0, 1]},
                             "estimate": {"resnet18": 1.0}})
    cfgs = expand(sweep)
    store = RunStore(tmp_path)
    lock = RunLock(store.ckpt_dir(cfgs[0].run_id), cfgs[0].run_id).acquire()
    plan = make_plan(sweep, cfgs, tmp_path, active={})
    assert plan.state[cfgs[0].run_id] == "running" and [c.run_id for c in plan.todo] == [cfgs[1].run_id]
    lock.release()
    assert make_plan(sweep, cfgs, tmp_path, active={}).state[cfgs[0].run_id] == "pending"


def test_a_busy_run_is_refused_by_train(tmp_path, capsys):
    from augbench.run import config_from_args
    from augbench.cli import build_parser

    cfg = config_from_args(build_parser().parse_args(["train", *TINY]))
    lock = RunLock(RunStore(tmp_path).ckpt_dir(cfg.run_id), cfg.run_id).acquire()
    try:
        assert train(tmp_path) == 4
        assert f"run {cfg.run_id} is being trained by pid {os.getpid()}" in capsys.readouterr().err
    finally:
        lock.release()
    assert not list((tmp_path / "runs").glob("*.json"))


# ---------------------------------------------------------------------- killed, interrupted
def test_ctrl_c_says_how_to_resume_and_the_rerun_completes(tmp_path):
    root, barrier = tmp_path / "res", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO), HOLD_ENV: str(barrier)}
    cmd = [sys.executable, "-m", "augbench.cli", "train", *TINY, "--results", str(root)]
    # the child gets Python's own Ctrl-C handler whatever the test process did with SIGINT (a child
    # started with SIGINT ignored never installs it)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    end = time.monotonic() + 300
    while not Path(str(barrier) + ".held").exists() and time.monotonic() < end:
        time.sleep(0.2)  # the first epoch's checkpoint is saved: mid-training
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again" in err and "Traceback" not in err
    rid = run_id(root)
    assert json.loads((root / "runs" / f"{rid}.json").read_text())["status"] == "running"
    assert not (root / "checkpoints" / rid / LOCK_NAME).exists()  # released on the way out
    barrier.touch()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and f"{rid} done" in done.stdout


# ---------------------------------------------------------------------- sweeps
def test_a_failed_run_makes_the_in_process_sweep_exit_non_zero(tmp_path, capsys):
    import yaml

    d = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    d.update(name="fails", axes={"policy": ["full"], "seed": [0]})
    d["base"].update(epochs=1, lr=1e30, recipe="generic")  # passes validation, NaN loss in training (plain SGD)
    path = tmp_path / "fails.yaml"
    path.write_text(yaml.safe_dump(d))
    assert cli(["sweep", "run", str(path), "--executor", "inprocess", "--results", str(tmp_path / "r")]) == 1
    out, err = capsys.readouterr()
    assert "failed" in out and "NonFiniteLoss" in out and "1 run(s) failed" in err
    assert "[1/1 finished, elapsed" in out and "ETA" in out


def test_a_long_cpu_sweep_asks_for_yes_and_points_to_smoke(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the plan is in GPU-hours")
    root = tmp_path / "r"
    assert cli(["sweep", "run", "--policy", "no_crop", "--local", "--dry-run", "--results", str(root)]) == 0
    assert "on this CPU" in capsys.readouterr().out
    assert cli(["sweep", "run", "--policy", "no_crop", "--local", "--results", str(root)]) == 2
    err = capsys.readouterr().err
    assert "--yes" in err and "augbench sweep run smoke --local" in err and "this machine's CPU" in err
    assert not (root / "runs").exists() and not (root / "sweeps").exists()  # nothing started
    assert (root / "cache" / "calibration.json").exists()  # measured once, kept


def test_sbatch_refusals_get_a_hint():
    assert "slurm.gpus_per_node: 0" in slurm_hint(
        "sbatch: error: Batch job submission failed: Invalid generic resource (gres) specification")
    assert "make slurm-up" in slurm_hint("sbatch: error: Batch job submission failed: Unable to contact slurm "
                                         "controller (connect failure)")
    assert "slurm.partition" in slurm_hint("sbatch: error: invalid partition specified: gpu")


def test_controller_down_is_one_message(tmp_path, capsys, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("sbatch", "squeue", "sacct"):  # a cluster whose controller does not answer
        (fake / name).write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Unable to contact "
                                 "slurm controller (connect failure)' >&2\nexit 1\n")
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}{os.pathsep}{os.environ['PATH']}")
    pytest.importorskip("submitit")
    assert cli(["sweep", "run", "smoke", "--executor", "slurm", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "sbatch refused sweep smoke" in err and "make slurm-up" in err and "Traceback" not in err


def test_runs_are_seed_major_so_a_cut_grid_is_balanced(tmp_path, capsys):
    cfgs = expand(load_sweep("crop_matters"))
    seeds = [c.seed for c in cfgs]
    assert seeds == sorted(seeds) and len(set(seeds)) == 3
    cells = [(c.method, c.policy_name) for c in cfgs if c.seed == 0]
    assert [(c.method, c.policy_name) for c in cfgs if c.seed == 1] == cells  # the same cell order each seed
    capsys.readouterr()
    assert cli(["sweep", "status", "smoke", "--results", str(tmp_path)]) == 0
    listed = [line.split("seed=")[1].split()[0] for line in capsys.readouterr().out.splitlines() if "seed=" in line]
    assert listed == ["0", "0", "1", "1"]


@pytest.mark.slow
def test_two_sweeps_on_one_results_root_train_each_run_once(tmp_path):
    import yaml

    d = yaml.safe_load((REPO / "sweeps" / "smoke.yaml").read_text())
    d.update(name="twice", axes={"policy": ["full", "no_crop"], "seed": [0]})
    d["base"].update(epochs=1, linear_epochs=1)
    path, root = tmp_path / "twice.yaml", tmp_path / "r"
    path.write_text(yaml.safe_dump(d))
    cmd = [sys.executable, "-m", "augbench.cli", "sweep", "run", str(path), "--local", "--results", str(root)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    for c in expand(load_sweep(path)):
        log = (root / "sweeps" / "twice" / "local" / f"{c.run_id}.log").read_text()
        assert log.count(f"{c.run_id} done ") == 1, log  # trained by one process only
        assert json.loads((root / "runs" / f"{c.run_id}.json").read_text())["status"] == "done"
