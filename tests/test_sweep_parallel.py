"""`sweep run --local --parallel N` on real tiny runs (sweeps/smoke.yaml settings, 1 epoch): each run
started once, one row per run, the budget, failures, the hard stop, and the estimate by parallelism."""
import json
from pathlib import Path

import pytest
import yaml

from augbench.cli import main as cli
from augbench.store.rows import RunStore, read_row
from augbench.sweeps import SWEEPS_DIR, Estimator, expand, load_sweep


def write_sweep(tmp_path: Path, name: str, **changes) -> Path:
    """sweeps/smoke.yaml at 1 epoch, renamed, with `changes` to its top-level keys or base."""
    d = yaml.safe_load((SWEEPS_DIR / "smoke.yaml").read_text())
    d["name"] = name
    d["base"].update({"epochs": 1, "linear_epochs": 1, **changes.pop("base", {})})
    d.update(changes)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def starts(root: Path, name: str, run_id: str) -> int:
    """How many times the parent started a worker for this run (one line per start in its log)."""
    log = root / "sweeps" / name / "local" / f"{run_id}.log"
    return log.read_text().count("augbench: started ") if log.exists() else 0


def run(path, root, *args) -> int:
    return cli(["sweep", "run", str(path), "--local", "--results", str(root), *args])


def test_two_workers_run_four_runs_each_once(tmp_path, capsys):
    path = write_sweep(tmp_path, "par4")
    root = tmp_path / "results"
    assert run(path, root, "--parallel", "2", "--budget-s", "600") == 0
    out = capsys.readouterr().out
    cfgs = expand(load_sweep(path))
    assert len(cfgs) == 4
    assert sorted(p.stem for p in (root / "runs").glob("*.json")) == sorted(c.run_id for c in cfgs)
    for c in cfgs:
        row = read_row(c.run_id, root / "runs")
        assert row["status"] == "done" and row["env"]["parallel"] == 2 and row["sweep"] == "par4"
        assert row["timings"]["images"] == 192  # 200 images, batch 64, drop_last: 3 steps
        assert starts(root, "par4", c.run_id) == 1
    assert "4 done, 0 failed, 0 stopped, 0 skipped" in out and "(2 running)" in out
    session = json.loads((root / "sweeps" / "par4" / "sessions.jsonl").read_text().splitlines()[-1])
    assert session["parallel"] == 2 and session["done"] == 4
    assert session["runs_per_hour"] > 0 and session["images_per_s"] > 0
    # nothing left: a rerun starts nothing
    assert run(path, root, "--parallel", "2") == 0
    assert "0 to run" in capsys.readouterr().out
    assert all(starts(root, "par4", c.run_id) == 1 for c in cfgs)


def test_budget_leaves_runs_pending_and_the_next_session_completes_them(tmp_path, capsys):
    # smoke.yaml's estimate, 2 s/epoch x 2 runs at once: 4 s for the 1-epoch run, which fits a 4.5 s
    # budget; the 3-epoch run (12 s) does not, waits for the first to end and, remeasured (process
    # start-up included), still does not fit: it is left pending although a worker slot is free
    path = write_sweep(tmp_path, "parbudget", axes={"policy": ["full"], "seed": [0], "epochs": [1, 3]})
    root = tmp_path / "results"
    assert run(path, root, "--parallel", "2", "--budget-s", "4.5") == 0
    out = capsys.readouterr().out
    assert "1 done, 0 failed, 0 stopped, 1 skipped" in out and "1 run(s) left pending" in out
    short, long = expand(load_sweep(path))
    first = read_row(short.run_id, root / "runs")
    assert first["status"] == "done" and read_row(long.run_id, root / "runs") is None
    assert run(path, root, "--parallel", "2", "--budget-s", "600") == 0
    out = capsys.readouterr().out
    assert "1 to run" in out and "1 done, 0 failed" in out
    assert len(list((root / "runs").glob("*.json"))) == 2
    for c in (short, long):
        assert read_row(c.run_id, root / "runs")["status"] == "done" and starts(root, "parbudget", c.run_id) == 1
    assert read_row(short.run_id, root / "runs") == first  # the first session's row is untouched


def test_a_failing_run_is_reported_and_the_other_finishes(tmp_path, capsys):
    # lr 1e30 with plain SGD (the generic recipe) passes validation, then the loss becomes NaN: a `failed` row
    path = write_sweep(tmp_path, "parfail", axes={"policy": ["full"], "seed": [0]},
                       include=[{"policy": "full", "seed": 0, "lr": 1e30, "recipe": "generic"}])
    root = tmp_path / "results"
    assert run(path, root, "--parallel", "2") == 1
    out = capsys.readouterr().out
    ok, bad = expand(load_sweep(path))
    assert read_row(ok.run_id, root / "runs")["status"] == "done"
    row = read_row(bad.run_id, root / "runs")
    assert row["status"] == "failed" and row["error"].startswith("NonFiniteLoss")
    assert f"failed {bad.run_id}" in out and "NonFiniteLoss" in out
    assert "1 done, 1 failed, 0 stopped, 0 skipped" in out


def test_hard_stop_checkpoints_running_runs(tmp_path, capsys):
    # one long run (40 epochs) that the tiny estimate lets start; at 6 s it is asked to save and stop
    path = write_sweep(tmp_path, "parstop", axes={"policy": ["full"], "seed": [0]}, base={"epochs": 40},
                       estimate={"resnet18": 0.01})
    root = tmp_path / "results"
    assert run(path, root, "--parallel", "1", "--budget-s", "6", "--hard-stop") == 0
    out = capsys.readouterr().out
    assert "asking 1 run(s) to checkpoint and stop" in out and "0 done, 0 failed, 1 stopped" in out
    (cfg,) = expand(load_sweep(path))
    assert read_row(cfg.run_id, root / "runs")["status"] == "running"  # resumed by the next session
    assert (RunStore(root).ckpt_dir(cfg.run_id) / "last.pt").exists()
    assert run(path, root, "--parallel", "1", "--dry-run") == 0
    assert "1 lost" in capsys.readouterr().out


@pytest.mark.parametrize("args, msg", [(["--parallel", "0"], "--parallel: needs a positive number"),
                                       (["--hard-stop"], "--hard-stop: needs --budget-s")])
def test_bad_values_name_the_option(tmp_path, capsys, args, msg):
    assert cli(["sweep", "run", "smoke", "--local", "--results", str(tmp_path), *args]) == 2
    assert msg in capsys.readouterr().err


def test_estimate_comes_from_rows_at_the_same_parallelism(tmp_path):
    sweep = load_sweep("smoke")
    cfg = expand(sweep)[0]
    runs = tmp_path / "runs"
    runs.mkdir()

    def row(i, per_epoch, parallel=None):
        env = {} if parallel is None else {"parallel": parallel}
        r = {"run_id": f"r{i}", "status": "done", "sweep": "smoke", "backbone": "resnet18", "epochs": 2,
             "timings": {"train_s": 2 * per_epoch - 0.5, "eval_s": 0.5}, "env": env}
        (runs / f"r{i}.json").write_text(json.dumps(r))

    assert Estimator(sweep, RunStore(tmp_path)).per_epoch(cfg, 3)[0] == 6.0  # no rows: the plan's 2 s x 3
    row(0, 1.0)  # ran alone (rows from before --parallel have no env.parallel)
    assert Estimator(sweep, RunStore(tmp_path)).per_epoch(cfg)[0] == 1.0
    assert Estimator(sweep, RunStore(tmp_path)).per_epoch(cfg, 2)[0] == 2.0  # alone x 2
    row(1, 1.5, parallel=2)
    assert Estimator(sweep, RunStore(tmp_path)).per_epoch(cfg, 2)[0] == 1.5  # measured at 2 at once
    assert Estimator(sweep, RunStore(tmp_path)).per_epoch(cfg, 1)[0] == 1.0


def test_parallel_auto_follows_measured_sessions(tmp_path, capsys):
    """`--parallel auto` is 1 until sessions of this device and workload at 1 and at N exist, then
    N only if N moved >= GAIN x the images/s of 1 (real tiny runs: whichever way they came out)."""
    from augbench.sweeps.parallelism import GAIN, sessions

    root = tmp_path / "results"
    a = write_sweep(tmp_path, "auto_a", axes={"policy": ["full"], "seed": [0, 1]})
    assert run(a, root, "--parallel", "auto", "--dry-run") == 0
    assert "--parallel auto: 1 (no measured session at 1 and at N" in capsys.readouterr().out
    assert run(a, root, "--parallel", "1") == 0
    assert run(write_sweep(tmp_path, "auto_b", axes={"policy": ["full"], "seed": [2, 3]}), root, "--parallel", "2") == 0
    capsys.readouterr()
    s = {x["parallel"]: x for x in sessions(root)}
    assert sorted(s) == [1, 2] and s[1]["done"] == s[2]["done"] == 2
    assert s[1]["workload"] == s[2]["workload"] == "simclr/resnet18/b64" and s[1]["device"] == s[2]["device"]
    assert run(write_sweep(tmp_path, "auto_c", axes={"policy": ["full"], "seed": [4, 5]}), root,
               "--parallel", "auto", "--dry-run") == 0
    want = 2 if s[2]["images_per_s"] >= GAIN * s[1]["images_per_s"] else 1
    out = capsys.readouterr().out
    assert f"--parallel auto: {want} (" in out and "1: " in out and "2: " in out
    # another workload (batch 32) has no sessions: back to 1
    assert run(write_sweep(tmp_path, "auto_d", axes={"policy": ["full"], "seed": [6]}, base={"batch_size": 32}),
               root, "--parallel", "auto", "--dry-run") == 0
    assert "--parallel auto: 1 (no measured session" in capsys.readouterr().out
