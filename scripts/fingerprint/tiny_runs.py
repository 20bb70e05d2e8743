"""Tiny runs of each harvest method at the harvest's recipe (cpu-small, CIFAR stem): metrics and weights hash.
    AUGBENCH_DATA=../shared/data python scripts/fingerprint/tiny_runs.py (see README.md)"""
import sys, tempfile, json
from augbench.run import run_config
from augbench.config import RunConfig
base = dict(policy="full", cifar_stem=True, width=4, subset=10, epochs=2, batch_size=20, eval_subset=10,
            knn_k=10, linear_epochs=2, progress=False, num_threads=1, device="cpu", recipe="cpu-small")
for m in ("simclr", "byol", "vicreg"):
    for pol in ("full", "crop_only"):
        cfg = RunConfig(**{**base, "method": m, "policy": pol})
        with tempfile.TemporaryDirectory() as d:
            row = run_config(cfg, results_dir=d + "/runs")
        print(m, pol, cfg.run_id, row["status"], json.dumps(row["metrics"], sort_keys=True), row.get("weights_sha256") or row.get("artifacts", {}))
