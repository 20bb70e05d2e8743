"""The plan of a sweep: each run's state, what a run would start, and what it would cost.

State (augbench.store.rows' words): done / failed from the row; running while a live SLURM job or a
live local process (its run lock) holds it; lost when started (a `running` row) but nothing alive
holds it any more; else pending. A run starts when pending or lost (failed: with --retry-failed).

Estimates, per run, for the plan and the budget (`Estimator`): measured rows of the same sweep and
backbone on this results root; else, when the runs would train on this machine's CPU although the
sweep file's `estimate` is for a GPU (device not `cpu`, no CUDA here), a measured CPU calibration
(augbench.sweeps.calibrate); else the sweep file's `estimate` (seconds per epoch on the device the
runs name).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from augbench.config import RunConfig
from augbench.store.locks import owner_alive
from augbench.store.rows import DONE, FAILED, LOST, PENDING, PLAN_STATUSES, RUNNING, RunStore
from augbench.sweeps.schema import Sweep


@dataclass
class Plan:
    sweep: Sweep
    configs: list[RunConfig]  # seed-major
    state: dict[str, str]  # run_id -> one of PLAN_STATUSES
    todo: list[RunConfig]  # what a run would start, in order
    estimate_s: float | None  # wall seconds for `todo`, one at a time (None: unknown)
    estimate_basis: str  # "GPU" (the sweep file's guess), "this CPU", "measured rows"; "" = not estimated
    active: dict[str, str]  # run_id -> live SLURM job id

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in PLAN_STATUSES}
        for s in self.state.values():
            out[s] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        if not self.estimate_basis:
            est = ""
        elif self.estimate_s is None:
            est = "estimated time unknown (no estimate for its backbone)"
        elif self.estimate_basis == "GPU":
            est = f"estimated {self.estimate_s / 3600:.3g} GPU-hours"
        else:
            est = f"estimated {fmt_s(self.estimate_s)} on {self.estimate_basis} (one at a time)"
        return (f"sweep {self.sweep.name}: {len(self.configs)} runs - " + ", ".join(f"{c[s]} {s}" for s in PLAN_STATUSES)
                + f"; {len(self.todo)} to run" + (f", {est}" if est else ""))


def fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def run_state(cfg: RunConfig, store: RunStore, active: dict[str, str]) -> str:
    row = store.read_row(cfg.run_id)
    status = row["status"] if row else None
    if status in (DONE, FAILED):
        return status
    if cfg.run_id in active or owner_alive(store.ckpt_dir(cfg.run_id)):
        return RUNNING
    return LOST if status == RUNNING else PENDING


class Estimator:
    """Seconds per epoch of a run (eval included) at a given parallelism; see the module doc."""

    def __init__(self, sweep: Sweep, store: RunStore):
        self.sweep, self.store = sweep, store
        self._measured: dict[str, dict[int, list[float]]] = {}

    def refresh(self) -> None:
        """Read the rows again (after runs end)."""
        self._measured.clear()

    def measured(self, backbone: str) -> dict[int, list[float]]:
        """parallelism -> seconds per epoch of this sweep's done rows with this backbone."""
        if backbone in self._measured:
            return self._measured[backbone]
        out: dict[int, list[float]] = self._measured.setdefault(backbone, {})
        for row in self.store.iter_rows():
            t = row.get("timings") or {}
            if (row["status"] == DONE and row.get("sweep") == self.sweep.name and row.get("backbone") == backbone
                    and t.get("train_s") is not None and row.get("epochs")):
                n = int((row.get("env") or {}).get("parallel") or 1)
                out.setdefault(n, []).append((t["train_s"] + (t.get("eval_s") or 0.0)) / row["epochs"])
        return out

    def per_epoch(self, cfg: RunConfig, parallel: int = 1) -> tuple[float | None, str]:
        """(seconds, basis). For N > 1 without rows at N: the estimate alone times N (conservative)."""
        per = self.measured(cfg.backbone)
        for n, scale in ((parallel, 1), (1, parallel)):
            if per.get(n):
                return scale * sum(per[n]) / len(per[n]), "measured rows"
        if cfg.device != "cpu" and not _cuda():
            from augbench.sweeps.calibrate import cpu_seconds_per_epoch

            return cpu_seconds_per_epoch(cfg, self.store) * parallel, "this CPU"
        est = self.sweep.estimate.get(cfg.backbone)
        return (None if est is None else est * parallel), ("this CPU" if cfg.device == "cpu" else "GPU")

    def run_s(self, cfg: RunConfig, parallel: int = 1) -> float | None:
        s, _ = self.per_epoch(cfg, parallel)
        return None if s is None else s * cfg.epochs


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def make_plan(sweep: Sweep, configs: list[RunConfig], root: Path, retry_failed: bool = False,
              active: dict[str, str] | None = None, estimate: bool = True) -> Plan:
    store = RunStore.at(root)
    if active is None:
        from augbench.sweeps.ledger import active_runs

        active = active_runs(sweep.dir(root))
    state = {c.run_id: run_state(c, store, active) for c in configs}
    todo_states = {PENDING, LOST} | ({FAILED} if retry_failed else set())
    todo = [c for c in configs if state[c.run_id] in todo_states]
    total: float | None = 0.0
    basis = "GPU" if estimate else ""
    est = Estimator(sweep, store)
    for c in todo if estimate else []:
        s, basis = est.per_epoch(c)
        if s is None:
            total = None
            break
        gpus = max(1, int(sweep.slurm.get("gpus_per_node", 1))) if basis == "GPU" else 1
        total += s * c.epochs * gpus
    return Plan(sweep, configs, state, todo, total if estimate else None, basis, active)


@dataclass
class Budget:
    """The one budget logic of every local executor: start a run only if elapsed + its estimate fit."""
    seconds: float | None
    estimator: Estimator
    parallel: int = 1

    def fits(self, cfg: RunConfig, elapsed: float, overhead: float = 0.0) -> tuple[bool, float]:
        if self.seconds is None:
            return True, 0.0
        est = (self.estimator.run_s(cfg, self.parallel) or 0.0) + overhead
        return elapsed + est <= self.seconds, est
