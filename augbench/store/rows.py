"""The run store: the one module that knows the results layout, the row type and the status words,
and the row functions by rows folder (the library API: ``read_row(run_id, runs)``, ...).

    <root>/runs/<run_id>.json          one row per run (schema: docs/design.md), written atomically
    <root>/logs/<run_id>.csv           per-epoch log
    <root>/checkpoints/<run_id>/       last.pt (exact resume; the final one is kept, for export) and
                                       lock.json (who trains it now)
    <root>/sweeps/<name>/              jobs.json (SLURM ledger), sweep.yaml, submitit/ and local/ logs
    <root>/cache/                      machine-local measurements (CPU calibration)
    <root>/exports/<run_id>.pt|.json   a run's backbone and its card (`augbench export`)
    <root>/corrupt/                    files set aside by --discard-corrupt (never deleted)

`<root>` is `--results` in every command, else $AUGBENCH_RESULTS, else ./results.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, TypedDict

from augbench.store.atomic import atomic_write
from augbench.env import results_root
from augbench.errors import UserError

# ---- the status vocabulary. A row holds DONE, FAILED or RUNNING; the plan adds the others.
DONE, FAILED, RUNNING, LOST, PENDING = "done", "failed", "running", "lost", "pending"
STOPPED = "stopped"  # a local worker that saved a checkpoint on request (its row stays RUNNING)
ROW_STATUSES = (DONE, FAILED, RUNNING)
PLAN_STATUSES = (DONE, FAILED, RUNNING, LOST, PENDING)


class Row(TypedDict, total=False):
    """One run's result row, as stored in runs/<run_id>.json."""
    run_id: str
    status: str
    error: str | None
    method: str
    policy: dict[str, Any] | str
    backbone: str
    dataset: str
    epochs: int
    seed: int
    sweep: str | None
    config: dict[str, Any]
    metrics: dict[str, float]
    timings: dict[str, float]
    env: dict[str, Any]
    started_at: str
    finished_at: str | None
    history: list[dict[str, Any]]
    weights_sha256: str
    imported: dict[str, Any]


REQUIRED = {"run_id": str, "status": str}  # what every reader relies on
REQUIRED_FULL = {**REQUIRED, "method": str, "seed": int, "config": dict, "metrics": dict}  # a run_config row


class CorruptFile(UserError):
    """A results file that cannot be read; `path` is what --discard-corrupt moves aside."""

    def __init__(self, path: Path, what: str, cause: str):
        self.path = Path(path)
        super().__init__(f"{path}: corrupt {what} ({cause}); fix or remove it, or rerun with "
                         f"--discard-corrupt to move it aside into <results>/corrupt/")


class NotWritable(UserError):
    pass


def check_row(row: Any, where: str, full: bool = False) -> Row:
    """The fields a row must have to be read (`full`: every field analysis uses, as run_config writes)."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: a row is a JSON object, got {type(row).__name__}")
    for k, kind in (REQUIRED_FULL if full else REQUIRED).items():
        if not isinstance(row.get(k), kind) or (kind is int and isinstance(row.get(k), bool)):
            raise ValueError(f"{where}: field '{k}' must be a {kind.__name__}, got {row.get(k)!r}")
    if row["status"] not in ROW_STATUSES:
        raise ValueError(f"{where}: field 'status' must be one of {list(ROW_STATUSES)}, got {row['status']!r}")
    return row  # type: ignore[return-value]


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def read_json(path: Path, what: str) -> Any:
    """A JSON file, or CorruptFile naming it; None when it does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFile(path, what, f"not valid JSON: {e}") from None


@dataclass(frozen=True)
class RunStore:
    root: Path
    rows: Path | None = None  # the rows folder when the library API names it; else <root>/runs

    @classmethod
    def at(cls, root: str | Path | None = None) -> "RunStore":
        return cls(Path(root) if root is not None else results_root())

    @classmethod
    def of_runs_dir(cls, runs: str | Path | None) -> "RunStore":
        """The store whose rows folder is `runs` (its parent holds logs/, checkpoints/, ...)."""
        return cls.at(None) if runs is None else cls(Path(runs).parent, Path(runs))

    # ---- the layout
    @property
    def runs(self) -> Path:
        return self.rows or self.root / "runs"

    def row_path(self, run_id: str) -> Path:
        return self.runs / f"{run_id}.json"

    def log_path(self, run_id: str) -> Path:
        return self.root / "logs" / f"{run_id}.csv"

    def ckpt_dir(self, run_id: str) -> Path:
        return self.root / "checkpoints" / run_id

    def sweep_dir(self, name: str) -> Path:
        return self.root / "sweeps" / name

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    # ---- rows
    def read_row(self, run_id: str) -> Row | None:
        path = self.row_path(run_id)
        row = read_json(path, "result row")
        if row is None:
            return None
        try:
            return check_row(row, str(path))
        except ValueError as e:
            raise CorruptFile(path, "result row", str(e).split(": ", 1)[-1]) from None

    def write_row(self, row: Row) -> Path:
        check_row(row, "row")
        return atomic_write_json(self.row_path(row["run_id"]), row)

    def iter_rows(self) -> Iterator[Row]:
        if self.runs.is_dir():
            for p in sorted(self.runs.glob("*.json")):
                row = self.read_row(p.stem)
                if row is not None:
                    yield row

    # ---- failures
    def check_writable(self, *extra: Path) -> None:
        """Every folder a run writes to can be made and written, checked before any training without
        creating anything: its nearest existing ancestor must be a writable folder."""
        for d in (self.runs, self.root / "logs", self.root / "checkpoints", *extra):
            p = Path(d).absolute()
            while not p.exists() and p != p.parent:
                p = p.parent
            why = ("a file, not a folder" if not p.is_dir() else
                   "no write permission" if not os.access(p, os.W_OK | os.X_OK) else None)
            if why:
                raise NotWritable(f"{d}: cannot write here ({p} is {why}); fix its permissions or choose "
                                  f"another --results root (or --ckpt-dir)")


def discard(path: str | Path) -> Path:
    """Move a corrupt file aside into <root>/corrupt/<time>/ (root: the folder above runs/,
    checkpoints/ or sweeps/ in its path), never deleting it."""
    path = Path(path).resolve()
    root = next((p.parent for p in path.parents if p.name in ("runs", "checkpoints", "sweeps")), path.parent)
    dest = root / "corrupt" / time.strftime("%Y%m%dT%H%M%S") / path.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest


# ---------------------------------------------------------------------------- by rows folder (library API)
def runs_dir(runs: str | Path | None = None) -> Path:
    """The rows folder: `runs` itself, else <results root>/runs."""
    return RunStore.of_runs_dir(runs).runs


def row_path(run_id: str, runs: str | Path | None = None) -> Path:
    return RunStore.of_runs_dir(runs).row_path(run_id)


def write_row(row: Row, runs: str | Path | None = None) -> Path:
    return RunStore.of_runs_dir(runs).write_row(row)


def read_row(run_id: str, runs: str | Path | None = None) -> Row | None:
    """The row, None if there is none; CorruptFile (naming the file) if it cannot be read."""
    return RunStore.of_runs_dir(runs).read_row(run_id)


def iter_rows(runs: str | Path | None = None) -> Iterable[Row]:
    yield from RunStore.of_runs_dir(runs).iter_rows()
