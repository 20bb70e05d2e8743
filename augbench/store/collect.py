"""Result rows as a pandas frame (`collect`, what the analysis reads), and `augbench collect`: result
rows -> <results>/runs.csv. The layout itself is augbench.store.rows'."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from augbench.store.atomic import atomic_write
from augbench.store.rows import RunStore, iter_rows, runs_dir


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """One flat record per row for pandas: config fields (list values as JSON text), the policy's name and
    its full spec (`policy_spec`, JSON), whether the row was imported, metrics, timings and env side by side."""
    cfg = dict(row.get("config", {}))
    pol = row.get("policy") or {}
    flat = {
        "run_id": row.get("run_id"),
        "status": row.get("status"),
        "method": row.get("method"),
        "policy": pol.get("name") if isinstance(pol, dict) else pol,
        "backbone": row.get("backbone"),
        "dataset": row.get("dataset"),
        "epochs": row.get("epochs"),
        "seed": row.get("seed"),
        "sweep": row.get("sweep"),
        "started_at": row.get("started_at"),
        "finished_at": row.get("finished_at"),
        "error": row.get("error"),
    }
    for k, v in cfg.items():  # lists (vicreg_weights, ...) as canonical JSON text, so they group and compare
        if k not in flat and k != "policy":
            flat[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v
    # the policy's every parameter, not only its name (two specs of one name are different runs)
    flat["policy_spec"] = json.dumps(pol, sort_keys=True) if isinstance(pol, dict) else None
    flat["imported"] = bool(row.get("imported"))
    for group in ("metrics", "timings", "env"):
        for k, v in (row.get(group) or {}).items():
            flat[f"{group}.{k}" if group == "env" else k] = v
    return flat


def collect(runs: str | Path | None = None, csv_path: str | Path | None = None):
    """All rows as a DataFrame (one line per run); written to <root>/runs.csv unless csv_path=False."""
    import pandas as pd

    df = pd.DataFrame([flatten_row(r) for r in iter_rows(runs)])
    if csv_path is not False:
        csv_path = Path(csv_path) if csv_path else runs_dir(runs).parent / "runs.csv"
        if not df.empty:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(csv_path, df.to_csv(index=False))
    return df


# ---------------------------------------------------------------------------- `augbench collect`
def add_arguments(p) -> None:
    p.add_argument("--results", metavar="ROOT", default=None,
                   help="results root: reads ROOT/runs (default: $AUGBENCH_RESULTS or ./results)")
    p.add_argument("--runs", default=None, help=argparse.SUPPRESS)  # before --results meant the root: a rows folder
    p.add_argument("--csv", default=None, help="output CSV (default: ROOT/runs.csv)")


def main(args) -> int:
    store = RunStore.of_runs_dir(args.runs) if args.runs else RunStore.at(args.results)
    df = collect(store.runs, args.csv)
    if df.empty:
        print(f"no result rows under {store.runs}")
        return 0
    counts = df.groupby("status").size().to_dict()
    print(f"{len(df)} rows ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}) -> "
          f"{args.csv or store.runs.parent / 'runs.csv'}")
    return 0
