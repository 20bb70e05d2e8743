"""Sweeps: the file schema and expansion (schema), the plan and its estimates (plan, calibrate),
and the executors behind one `run(configs) -> Outcome` interface: local worker processes and
in-process (local), SLURM arrays (slurm, with the ledger in ledger). The CLI is sweeps.cli."""
from augbench.sweeps.plan import Budget, Estimator, Plan, make_plan, run_state
from augbench.sweeps.schema import (SWEEPS_DIR, Sweep, SweepError, apply_overrides, expand, load_sweep, policy_sweep,
                                    seed_major, sweep_from_dict)

__all__ = ["SWEEPS_DIR", "Budget", "Estimator", "Plan", "Sweep", "SweepError", "apply_overrides", "expand",
           "load_sweep", "make_plan", "policy_sweep", "run_state", "seed_major", "sweep_from_dict"]
