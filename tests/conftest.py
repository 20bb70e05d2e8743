"""Shared test set-up: real data under $AUGBENCH_DATA (default ../shared/data), results in tmp dirs."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("AUGBENCH_DATA", str((REPO.parent / "shared" / "data").resolve()))
# Tests never write into the repository's results/: each test that writes gets a tmp root.
os.environ.setdefault("AUGBENCH_RESULTS", str(REPO / ".pytest_results"))
os.environ.setdefault("OMP_NUM_THREADS", "2")
# The decoded-image cache stays inside the checkout (ignored by git), never in the shared data folder.
os.environ.setdefault("AUGBENCH_CACHE", str(REPO / ".augbench_cache"))


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    root = tmp_path / "results"
    monkeypatch.setenv("AUGBENCH_RESULTS", str(root))
    return root


def cifar10_root() -> Path:
    return Path(os.environ["AUGBENCH_DATA"]) / "cifar10"


# Real result rows for the analysis tests: 6 tiny CPU runs (full / no_crop / crop_only x seeds 0, 1),
# trained and evaluated by augbench.run.run_config, a few seconds each, as sweep `analysis_tiny` (its
# snapshot is written where `augbench sweep` keeps it, so the report can list expected-but-missing runs).
TINY_BASE = dict(method="simclr", backbone="resnet18", width=8, subset=20, epochs=1, batch_size=64,
                 proj_hidden=64, proj_dim=32, knn_k=20, linear_epochs=1, eval_subset=20, amp=False,
                 device="cpu", num_threads=1, progress=False)
TINY_AXES = dict(policy=["full", "no_crop", "crop_only"], seed=[0, 1])


@pytest.fixture(scope="session")
def tiny_rows_dir(tmp_path_factory):
    import yaml

    from augbench.config import RunConfig
    from augbench.run import run_config

    root = tmp_path_factory.mktemp("tiny_results")
    runs = root / "runs"
    snap = root / "sweeps" / "analysis_tiny" / "sweep.yaml"
    snap.parent.mkdir(parents=True)
    snap.write_text(yaml.safe_dump({"name": "analysis_tiny", "base": TINY_BASE, "axes": TINY_AXES}))
    for policy in TINY_AXES["policy"]:
        for seed in TINY_AXES["seed"]:
            cfg = RunConfig.from_dict({**TINY_BASE, "policy": policy, "seed": seed})
            row = run_config(cfg, results_dir=runs, ckpt_dir=root / "ckpt" / cfg.run_id, sweep="analysis_tiny")
            assert row["status"] == "done", row.get("error")
    return runs
