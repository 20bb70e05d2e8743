"""Real SLURM, real DDP: one array task with two submitit tasks trains one run as two torch.distributed
ranks (gloo on CPU). Fixtures and style of test_slurm.py; a fresh results root (so submitit folder) per test."""
import pytest
import yaml

from augbench.env import REPO_ROOT
from augbench.store.rows import read_row
from augbench.sweeps.slurm import submit
from augbench.sweeps import expand, load_sweep
from augbench.train.optim import lr_at, peak_lr
from test_slurm import rows, slurm  # noqa: F401  (the session fixture that starts the cluster)

pytestmark = pytest.mark.slurm


def ddp_sweep(tmp_path, name="ddp", tasks=2):
    """The smoke sweep, one run, as `tasks` CPU ranks of one task each (the whole 2-CPU node)."""
    d = yaml.safe_load((REPO_ROOT / "sweeps" / "smoke.yaml").read_text())
    d["name"] = name
    d["base"].update(subset=20, epochs=2, batch_size=32, warmup_epochs=0, num_threads=1)
    d["axes"] = {"policy": ["full"], "seed": [0]}
    d["slurm"].update(tasks_per_node=tasks, cpus_per_task=1, timeout_min=20)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(d))
    return path


def test_two_task_job_trains_one_run_with_ddp(slurm, tmp_path):  # noqa: F811
    root = tmp_path / "res"
    sweep = load_sweep(ddp_sweep(tmp_path))
    (cfg,) = expand(sweep)
    (job,) = submit(sweep, [cfg], root)
    per_rank = job.results()  # one return value per submitit task: rank 0's row, then rank 1's (unwritten)
    assert len(per_rank) == 2
    assert [r["env"]["world_size"] for r in per_rank] == [2, 2]

    # one row, by rank 0, complete
    assert [p.stem for p in rows(root)] == [cfg.run_id]
    row = read_row(cfg.run_id, root / "runs")
    assert row["status"] == "done", row["error"]
    assert row["env"]["world_size"] == 2 and row["env"]["slurm_job_id"]
    assert row["config"] == cfg.to_dict()
    assert set(row["metrics"]) == {"knn_top1", "knn_top1_projector", "linear_top1", "knn_top1_random_init",
                                   "final_loss"}
    assert set(row["timings"]) == {"train_s", "epoch_s", "aug_fraction", "eval_s", "images"}
    assert per_rank[0]["status"] == "done" and per_rank[1]["status"] == "running"  # rank 1 stops after training

    # DDP, not two independent runs: each rank trained on its own half of the data with its own
    # augmentations, yet the averaged gradients kept the parameters bit-identical on both ranks ...
    assert per_rank[0]["weights_sha256"] == per_rank[1]["weights_sha256"] == row["weights_sha256"]
    # ... and the epoch losses are the mean over ranks, so both ranks logged the same history
    assert [h["loss"] for h in per_rank[0]["history"]] == [h["loss"] for h in per_rank[1]["history"]]

    # the shards: 200 images / 2 ranks = 100 per rank -> 3 steps of 32 per epoch (1 process: 6);
    # the lr: linear scaling by the global batch 32 x 2
    steps = (cfg.subset * 10 // 2) // cfg.batch_size
    assert steps == 3
    lrs = [h["lr"] for h in row["history"]]
    assert lrs == [lr_at(e * steps - 1, cfg.epochs * steps, 0, peak_lr(cfg, 2)) for e in (1, 2)]
    assert [h["img_s"] > 0 for h in row["history"]] == [True, True]


def test_master_port_is_one_per_job_and_below_the_ephemeral_range():
    """Every task of a job computes the same rendezvous port from the job id, outside Linux's default
    ephemeral range, where an outgoing connection's local port could hold it (EADDRINUSE on rank 0)."""
    from augbench.train.distributed import MASTER_PORTS, master_port

    ports = [master_port(str(j)) for j in range(3000)] + [master_port("68238_4")]
    assert all(MASTER_PORTS[0] <= p <= MASTER_PORTS[1] < 32768 for p in ports)
    assert len(set(ports)) > 2000  # spread: two jobs on a node rarely share one
    assert master_port("68238_4") == master_port("68238_4") and master_port(68238) == master_port("68238")
