"""A refused run creates nothing: every check, the data-dependent ones too, runs before the run lock
makes <results>/checkpoints/<run_id>/."""
import pytest

from augbench.cli import build_parser
from augbench.cli import main as cli_main
from augbench.run import config_from_args

TINY = ["--cifar-stem", "--width", "4", "--epochs", "1", "--eval-subset", "2", "--linear-epochs", "0",
        "--knn-k", "5", "--proj-hidden", "16", "--proj-dim", "8", "--no-progress", "--num-threads", "1",
        "--device", "cpu"]


def _run_id(argv) -> str:
    return config_from_args(build_parser().parse_args(argv)).run_id


def _nothing_written(root, run_id) -> None:
    assert not (root / "checkpoints" / run_id).exists()
    assert not (root / "runs" / f"{run_id}.json").exists()
    assert not (root / "logs").exists()


@pytest.mark.parametrize("case", ["batch_larger_than_the_data", "policy_size_differs"])
def test_a_refused_train_leaves_no_checkpoint_folder_and_no_row(tmp_path, capsys, case):
    if case == "batch_larger_than_the_data":  # subset 2 x 10 classes = 20 images, a batch of 64
        flags, field = ["--subset", "2", "--batch-size", "64"], "batch_size"
    else:  # the policy's output size differs from image_size
        pol = tmp_path / "p.yaml"
        pol.write_text("name: p\nops:\n  - {op: random_resized_crop, size: 32}\n  - {op: normalize}\n")
        flags, field = ["--subset", "2", "--batch-size", "16", "--image-size", "24", "--policy", str(pol)], "image_size"
    root = tmp_path / "results"
    argv = ["train", "--results", str(root), *TINY, *flags]
    rc = cli_main(argv)
    err = capsys.readouterr().err
    assert rc != 0 and f"'{field}'" in err and "Traceback" not in err, err
    _nothing_written(root, _run_id(argv))


def test_missing_data_leaves_no_checkpoint_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUGBENCH_DATA", str(tmp_path / "nowhere"))
    root = tmp_path / "results"
    argv = ["train", "--results", str(root), *TINY, "--subset", "2", "--batch-size", "16"]
    assert cli_main(argv) == 2
    assert "nowhere" in capsys.readouterr().err
    _nothing_written(root, _run_id(argv))


def test_batch_too_large_in_a_subprocess(tmp_path):
    import subprocess
    import sys

    root = tmp_path / "results"
    argv = ["train", "--results", str(root), *TINY, "--subset", "2", "--batch-size", "64"]
    p = subprocess.run([sys.executable, "-m", "augbench.cli", *argv], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "field 'batch_size' (64)" in p.stderr and "20 training images" in p.stderr, p.stderr
    _nothing_written(root, _run_id(argv))
    assert not (root / "checkpoints").exists()


def test_an_accepted_run_still_trains_and_keeps_its_final_checkpoint(tmp_path, capsys):
    from augbench.train import checkpoint

    root = tmp_path / "results"
    argv = ["train", "--results", str(root), *TINY, "--subset", "2", "--batch-size", "10", "--ckpt-every", "0"]
    assert cli_main(argv) == 0, capsys.readouterr().err
    rid = _run_id(argv)
    saved = checkpoint.load(root / "checkpoints" / rid)  # ckpt_every 0: saved at the end only, and kept
    assert saved["run_id"] == rid and (saved["epoch"], saved["step_in_epoch"]) == (1, 0)
    assert not (root / "checkpoints" / rid / "lock.json").exists()
