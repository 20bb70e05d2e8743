"""Result rows: atomic writes survive concurrent writers; collect flattens rows for pandas."""
import json
import multiprocessing as mp

from augbench.store.collect import collect
from augbench.store.rows import atomic_write_json, read_row, write_row


def _hammer(args):
    path, i = args
    for k in range(30):
        atomic_write_json(path, {"writer": i, "k": k, "pad": "x" * 20000})


def test_concurrent_writers_to_one_file_never_leave_a_torn_file(tmp_path):
    path = tmp_path / "row.json"
    with mp.get_context("fork").Pool(4) as pool:
        pool.map(_hammer, [(path, i) for i in range(4)])
    data = json.loads(path.read_text())  # parses: no half-written file
    assert data["k"] == 29 and len(data["pad"]) == 20000
    assert [p.name for p in tmp_path.iterdir()] == ["row.json"]  # no temporary files left behind


def test_write_read_and_collect(tmp_path):
    runs = tmp_path / "runs"
    for i, status in enumerate(["done", "failed"]):
        write_row({"run_id": f"r{i}", "status": status, "method": "simclr", "seed": i,
                   "policy": {"name": "full", "ops": []}, "config": {"epochs": 2, "lr": 0.1},
                   "metrics": {"knn_top1": 50.0 + i}, "env": {"git_commit": "abc"}}, runs)
    assert read_row("r1", runs)["status"] == "failed"
    assert read_row("nope", runs) is None
    df = collect(runs, tmp_path / "runs.csv")
    assert sorted(df["run_id"]) == ["r0", "r1"]
    assert set(["policy", "knn_top1", "env.git_commit", "lr"]) <= set(df.columns)
    assert (tmp_path / "runs.csv").exists()
