"""Result rows as a pandas frame (`collect`), and the row functions by rows folder (the library API;
the layout itself is augbench.store's)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from augbench.atomic import atomic_write
from augbench.store import ROW_STATUSES as STATUSES, Row, RunStore, atomic_write_json  # noqa: F401


def runs_dir(runs: str | Path | None = None) -> Path:
    """The rows folder: `runs` itself, else <results root>/runs."""
    return RunStore.of_runs_dir(runs).runs


def row_path(run_id: str, runs: str | Path | None = None) -> Path:
    return RunStore.of_runs_dir(runs).row_path(run_id)


def write_row(row: Row, runs: str | Path | None = None) -> Path:
    return RunStore.of_runs_dir(runs).write_row(row)


def read_row(run_id: str, runs: str | Path | None = None) -> Row | None:
    """The row, None if there is none; store.CorruptFile (naming the file) if it cannot be read."""
    return RunStore.of_runs_dir(runs).read_row(run_id)


def iter_rows(runs: str | Path | None = None) -> Iterable[Row]:
    yield from RunStore.of_runs_dir(runs).iter_rows()


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
