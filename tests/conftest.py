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


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread; more only spin when the 2 CI cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


# Real rows for the other figures and claims (pairwise heatmap, strength curves ResNet vs ViT, momentum
# on/off under full and weak, projector depth, masking ViT vs ResNet): seed 0 only, each policy built
# by the generators so the names are theirs. patch_size 8 everywhere: a 16-token ViT (vit_tiny's
# 192-dim, 12 blocks) runs in seconds on CPU, and token masking needs the mask's patch = the ViT's.
# 17 runs, about 50 s on one thread (more threads spin-wait badly when other tests share the cores).
TINY_GRID_BASE = dict(TINY_BASE, patch_size=8, momentum=False)


def tiny_grid_cells() -> list[dict]:
    from augbench.augment.policy import Policy, pairwise, strength_sweep

    full = Policy.named("full")
    mask = Policy.named("mask_instead_of_crop").with_params("patch_mask", name="mask_instead_of_crop", patch_size=8)
    cells = [dict(policy=p.to_dict(), momentum=m) for p in (full, Policy.named("weak")) for m in (False, True)]
    cells.append(dict(policy=full.to_dict(), proj_depth=0))
    cells += [dict(policy=p.to_dict()) for p in pairwise(full, ("crop", "color"))]
    cells += [dict(policy=p.to_dict()) for p in strength_sweep(full, "crop_scale", (0.08, 0.5))]
    cells.append(dict(policy=mask.to_dict()))
    cells.append(dict(policy=full.to_dict(), backbone="vit_tiny"))
    cells.append(dict(policy=mask.to_dict(), backbone="vit_tiny"))
    for backbone in ("resnet18", "vit_tiny"):
        cells += [dict(policy=p.to_dict(), backbone=backbone) for p in strength_sweep(mask, "mask_ratio", (0, 0.5))]
    return cells


@pytest.fixture(scope="session")
def tiny_grid_rows_dir(tmp_path_factory):
    from augbench.config import RunConfig
    from augbench.run import run_config

    root = tmp_path_factory.mktemp("tiny_grid_results")
    for cell in tiny_grid_cells():
        cfg = RunConfig.from_dict({**TINY_GRID_BASE, "seed": 0, **cell})
        row = run_config(cfg, results_dir=root / "runs", ckpt_dir=root / "ckpt" / cfg.run_id)
        assert row["status"] == "done", row.get("error")
    return root / "runs"
