"""`augbench rows verify`: a committed row retrained from its recorded config matches exactly; a row
whose figures were changed is reported, and nothing under the results root is written."""
import json

import pytest

from augbench.cli import main as cli_main
from augbench.config import RunConfig
from augbench.run import run_config

# 100 images, 2 epochs of 5 steps, no probe: a few seconds, but every part of a run (random-init kNN,
# pretraining, kNN on backbone and projector) is in the comparison
TINY = dict(method="simclr", policy="full", cifar_stem=False, width=4, subset=10, epochs=2, batch_size=20,
            eval_subset=10, knn_k=10, linear_epochs=2, proj_hidden=32, proj_dim=16, progress=False,
            num_threads=1, device="cpu")


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    cfg = RunConfig(**TINY)
    row = run_config(cfg, results_dir=root / "runs")
    assert row["status"] == "done", row["error"]
    return root, cfg.run_id


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_row_retrained_matches_exactly(done_run, capsys):
    root, run_id = done_run
    before = _files(root)
    assert cli_main(["rows", "verify", run_id, "--results", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"{run_id} match" in out and "1 of 1 matched exactly" in out
    assert _files(root) == before  # nothing written, no cache filled


def test_sample_picks_done_rows(done_run, capsys):
    root, run_id = done_run
    assert cli_main(["rows", "verify", "--sample", "1", "--seed", "3", "--results", str(root)]) == 0
    assert f"{run_id} match" in capsys.readouterr().out


def test_a_changed_figure_is_a_mismatch_and_the_row_is_kept(done_run, tmp_path, capsys):
    root, run_id = done_run
    other = tmp_path / "results"
    (other / "runs").mkdir(parents=True)
    row = json.loads((root / "runs" / f"{run_id}.json").read_text())
    row["metrics"]["knn_top1"] += 0.5
    row["env"]["git_commit"] = "0" * 40
    assert row["env"]["cpu_isa"]  # recorded by the run; here a row from another CPU and torch build
    row["env"].update(cpu_isa="AVX2", torch="2.12.0+cpu")
    path = other / "runs" / f"{run_id}.json"
    path.write_text(json.dumps(row))
    before = path.read_bytes()
    assert cli_main(["rows", "verify", run_id, "--results", str(other)]) == 1
    out = capsys.readouterr().out
    assert f"{run_id} MISMATCH" in out and "knn_top1: recorded" in out
    assert "the row was made at " + "0" * 40 in out  # says the code is elsewhere
    assert "the row was made on AVX2" in out and "made with 2.12.0+cpu" in out  # ... and the machine
    assert path.read_bytes() == before and _files(other) == {path.relative_to(other): before}


def test_bad_requests_are_refused(done_run, capsys):
    root, run_id = done_run
    assert cli_main(["rows", "verify", "--results", str(root)]) == 2
    assert "nothing to verify" in capsys.readouterr().err
    assert cli_main(["rows", "verify", "feedfacefeedface", "--results", str(root)]) == 2
    assert "no such row" in capsys.readouterr().err
    assert cli_main(["rows", "verify", "--sample", "5", "--results", str(root)]) == 2
    assert "1 done row(s)" in capsys.readouterr().err


def test_sample_skips_rows_this_machine_cannot_re_derive(done_run, tmp_path, capsys):
    root, run_id = done_run
    other = tmp_path / "results"
    (other / "runs").mkdir(parents=True)
    row = json.loads((root / "runs" / f"{run_id}.json").read_text())
    (other / "runs" / f"{run_id}.json").write_text(json.dumps(row))
    gpu = {**row, "run_id": "feedfacefeedface", "imported": {"source": "gpu-rows/x"},
           "env": {**row["env"], "device": "cuda:0"}}
    (other / "runs" / "feedfacefeedface.json").write_text(json.dumps(gpu))
    assert cli_main(["rows", "verify", "--sample", "2", "--results", str(other)]) == 2
    assert "1 done row(s)" in capsys.readouterr().err  # the imported GPU row is not a candidate
