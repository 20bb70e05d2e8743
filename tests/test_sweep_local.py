"""The local executor on real smoke runs: budget mode, idempotent reruns, status, the task's pickling."""
import pickle

import pytest

from augbench.cli import main as cli
from augbench.env import git_commit
from augbench.store.rows import RunStore, read_row
from augbench.sweeps import Estimator, apply_overrides, expand, load_sweep
from augbench.sweeps.slurm import SweepTask


@pytest.fixture(scope="module")
def smoke_root(tmp_path_factory):
    """Two real smoke runs (seed 0, policies full and no_crop) run through the CLI's local executor."""
    root = tmp_path_factory.mktemp("sweep_local")
    rc = cli(["sweep", "run", "smoke", "--local", "--seeds", "0", "--budget-s", "1000", "--results", str(root)])
    assert rc == 0
    return root


def smoke_configs(seeds="0"):
    sweep = apply_overrides(load_sweep("smoke"), None, seeds, None)
    return sweep, expand(sweep)


def test_budget_too_small_starts_nothing(tmp_path, capsys):
    # the plan's estimate (smoke.yaml: 2 s/epoch x 2 epochs) exceeds a 1 s budget: nothing starts
    assert cli(["sweep", "run", "smoke", "--local", "--seeds", "0", "--budget-s", "1", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "budget: 2 run(s) left pending" in out and "0 done, 0 failed, 0 stopped, 2 skipped" in out
    assert not list((tmp_path / "runs").glob("*.json"))


def test_local_sweep_writes_one_done_row_per_run(smoke_root):
    sweep, cfgs = smoke_configs()
    files = sorted(p.stem for p in (smoke_root / "runs").glob("*.json"))
    assert files == sorted(c.run_id for c in cfgs)
    for c in cfgs:
        row = read_row(c.run_id, smoke_root / "runs")
        assert row["status"] == "done" and row["sweep"] == "smoke"
        assert row["env"]["git_commit"] == git_commit()
        assert 0.0 <= row["metrics"]["knn_top1"] <= 100.0 and row["timings"]["train_s"] > 0


def test_rerun_skips_done_runs_and_never_duplicates(smoke_root, capsys, monkeypatch):
    monkeypatch.setenv("AUGBENCH_GIT_COMMIT", git_commit())  # the task sets it; undone after the test
    _, cfgs = smoke_configs()
    before = {c.run_id: (smoke_root / "runs" / f"{c.run_id}.json").read_text() for c in cfgs}
    assert cli(["sweep", "run", "smoke", "--local", "--seeds", "0", "--results", str(smoke_root)]) == 0
    assert "2 done" in capsys.readouterr().out
    # the task itself is idempotent too (what a requeue after the end does)
    row = SweepTask(smoke_root, "smoke")(cfgs[0].to_dict(expand_policy=False))
    assert row["status"] == "done"
    after = {p.stem: p.read_text() for p in (smoke_root / "runs").glob("*.json")}
    assert after == before


def test_budget_estimate_comes_from_previous_rows(smoke_root, capsys):
    sweep, cfgs = smoke_configs()
    rows = [read_row(c.run_id, smoke_root / "runs") for c in cfgs]
    want = sum((r["timings"]["train_s"] + r["timings"]["eval_s"]) / r["epochs"] for r in rows) / len(rows)
    assert Estimator(sweep, RunStore(smoke_root)).per_epoch(cfgs[0])[0] == pytest.approx(want)
    # seed 1 is new: its measured estimate (not the plan's) is over half the budget, so it does not start
    budget = f"{want * cfgs[0].epochs / 2:.6f}"
    assert cli(["sweep", "run", "smoke", "--local", "--seeds", "0,1", "--budget-s", budget,
                "--results", str(smoke_root)]) == 0
    assert "0 done, 0 failed, 0 stopped, 2 skipped" in capsys.readouterr().out
    assert cli(["sweep", "status", "smoke", "--results", str(smoke_root)]) == 0
    out = capsys.readouterr().out
    assert "2 done" in out and "2 pending" in out  # the snapshot holds --seeds 0,1


def test_task_pickles_without_its_thread_and_checkpoint_resubmits_it(tmp_path):
    task = SweepTask(tmp_path, "smoke", commit="abc123")
    task._thread, task._outcome = object(), {"row": 1}  # what __call__ leaves behind
    clone = pickle.loads(pickle.dumps(task))
    assert (clone.root, clone.sweep, clone.commit, clone._thread) == (task.root, "smoke", "abc123", None)
    task._thread = None
    delayed = task.checkpoint({"seed": 3})
    again = pickle.loads(pickle.dumps(delayed))
    assert again.args == ({"seed": 3},) and again.function.commit == "abc123"
    from augbench.train import checkpoint
    assert checkpoint.checkpoint_requested()
    checkpoint.clear_request()
