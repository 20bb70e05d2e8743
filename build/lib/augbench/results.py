"""Result rows: one JSON file per run, written atomically; collected into a pandas frame."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from augbench.atomic import atomic_write
from augbench.env import results_root

STATUSES = ("done", "failed", "running")


def runs_dir(root: str | Path | None = None) -> Path:
    return Path(root) if root is not None else results_root() / "runs"


def row_path(run_id: str, root: str | Path | None = None) -> Path:
    return runs_dir(root) / f"{run_id}.json"


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """One JSON file, written atomically (see augbench.atomic)."""
    return atomic_write(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def write_row(row: dict[str, Any], root: str | Path | None = None) -> Path:
    if "run_id" not in row or "status" not in row:
        raise ValueError("a result row needs 'run_id' and 'status'")
    return atomic_write_json(row_path(row["run_id"], root), row)


def read_row(run_id: str, root: str | Path | None = None) -> dict[str, Any] | None:
    p = row_path(run_id, root)
    if not p.exists():
        return None
    return json.loads(p.read_text())


def iter_rows(root: str | Path | None = None) -> Iterable[dict[str, Any]]:
    d = runs_dir(root)
    if not d.is_dir():
        return
    for p in sorted(d.glob("*.json")):
        try:
            yield json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p}: not a valid result row: {e}") from None


def flatten_row(row: dict[str, Any]) -> dict[str, Any]:
    """One flat record per row for pandas: config fields, metrics, timings and env side by side."""
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
    for k, v in cfg.items():
        if k not in flat and k != "policy" and not isinstance(v, (dict, list)):
            flat[k] = v
    for group in ("metrics", "timings", "env"):
        for k, v in (row.get(group) or {}).items():
            flat[f"{group}.{k}" if group == "env" else k] = v
    return flat


def collect(root: str | Path | None = None, csv_path: str | Path | None = None):
    """All rows as a DataFrame (one line per run); written to results/runs.csv unless csv_path=False."""
    import pandas as pd

    df = pd.DataFrame([flatten_row(r) for r in iter_rows(root)])
    if csv_path is not False:
        csv_path = Path(csv_path) if csv_path else runs_dir(root).parent / "runs.csv"
        if not df.empty:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(csv_path, df.to_csv(index=False))
    return df
