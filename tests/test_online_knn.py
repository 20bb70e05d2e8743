"""Accuracy during training (issue 20 item 7): an online kNN every N epochs on a fixed held-out slice,
in the CSV log, the row's history and TensorBoard; it must not change what the run trains."""
import csv

import pytest
import torch

from augbench.config import ConfigError, RunConfig
from augbench.data import load_dataset
from augbench.eval.online import OnlineKNN, balanced_slice
from augbench.methods import build_method
from augbench.models import build_backbone
from augbench.run import run_config
from augbench.store.rows import RunStore
from augbench.train import step as fast

pytestmark = pytest.mark.usefixtures("one_thread")
# 100 CIFAR-10 training images, 5 steps per epoch; 2 epochs so that `every=2` skips the first
SMALL = dict(method="simclr", policy="simclr", cifar_stem=True, width=4, subset=10, batch_size=20, epochs=2,
             eval_subset=10, knn_k=5, linear_epochs=0, optimizer="sgd", lr=0.1, proj_hidden=32, proj_dim=16,
             progress=False, ckpt_every=0)


def test_balanced_slice_takes_the_first_of_each_class_without_a_random_draw():
    labels = torch.tensor([2, 0, 1, 0, 2, 0, 1, 1, 2, 0])
    state = torch.random.get_rng_state()
    idx = balanced_slice(labels, 3, 2)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert idx.tolist() == [0, 1, 2, 3, 4, 6]
    assert torch.bincount(labels[balanced_slice(labels, 3, 3)], minlength=3).tolist() == [3, 3, 3]
    assert len(balanced_slice(labels, 3, 10)) == 10  # a class with fewer gives what it has


def test_the_monitor_reads_the_encoder_only():
    cfg = RunConfig(**SMALL)
    train = load_dataset("cifar10", split="train", subset=10, seed=0)
    test = load_dataset("cifar10", split="test", subset=10, seed=0)
    torch.manual_seed(0)
    method = build_method(cfg, build_backbone(cfg))
    method.train()
    buffers = {k: v.clone() for k, v in method.state_dict().items()}
    rng = torch.random.get_rng_state()
    knn = OnlineKNN(train, test, torch.device("cpu"), every=2, per_class=5, k=5, t=0.1, norm=None, size=(32, 32))
    assert len(knn.bank_y) == 50 and torch.bincount(knn.query_y, minlength=10).tolist() == [5] * 10
    assert knn(method, 1) == {}  # not an epoch it runs on
    out = knn(method, 2)
    assert set(out) == {"knn_online", "knn_online_s"} and 0.0 <= out["knn_online"] <= 100.0
    assert method.training  # put back in training mode
    assert torch.equal(torch.random.get_rng_state(), rng)
    after = method.state_dict()
    assert all(torch.equal(buffers[k], after[k]) for k in buffers)  # BatchNorm statistics untouched


def test_online_knn_is_logged_and_trains_the_same_weights(tmp_path, monkeypatch):
    scalars = []

    class Recorder:  # stands in for TensorBoard's SummaryWriter (an optional extra, absent here)
        def add_scalar(self, tag, value, step):
            scalars.append((tag, step, value))

        def flush(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(fast, "check_tensorboard", lambda enabled: None)
    monkeypatch.setattr(fast, "open_tensorboard", lambda enabled, log_dir: Recorder() if enabled else None)
    off = RunConfig(**SMALL)
    on = RunConfig(**{**SMALL, "online_knn_every": 2, "online_knn_per_class": 5, "tensorboard": True})
    assert on.run_id == off.run_id  # execution only: the run id and the result are the same
    row_off = run_config(off, results_dir=tmp_path / "off" / "runs")
    row_on = run_config(on, results_dir=tmp_path / "on" / "runs")
    assert row_on["status"] == row_off["status"] == "done"
    assert row_on["weights_sha256"] == row_off["weights_sha256"]
    assert row_on["metrics"] == row_off["metrics"]
    assert [h["loss"] for h in row_on["history"]] == [h["loss"] for h in row_off["history"]]

    first, second = row_on["history"]
    assert "knn_online" not in first and 0.0 <= second["knn_online"] <= 100.0 and second["knn_online_s"] > 0
    assert not any("knn_online" in h for h in row_off["history"])
    with open(RunStore.at(tmp_path / "on").log_path(on.run_id), newline="") as f:
        log = list(csv.DictReader(f))
    assert log[0]["knn_online"] == "" and float(log[1]["knn_online"]) == second["knn_online"]
    assert ("train/knn_online", 2, second["knn_online"]) in scalars
    assert not any(tag == "train/knn_online" and step == 1 for tag, step, _ in scalars)


@pytest.mark.parametrize("field,value", [("online_knn_every", -1), ("online_knn_per_class", 0),
                                         ("online_knn_every", 1.5)])
def test_bad_online_knn_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"field '{field}'"):
        RunConfig.from_dict({**SMALL, field: value})
