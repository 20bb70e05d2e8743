"""`augbench sweep run | status | cancel`: plan a sweep, hand its runs to an executor, report.

A run whose row is `done` is never run again; rows are named by run_id, so a rerun can only
overwrite, never duplicate. A run started but not alive any more (its row still `running`, no live
job or lock) is `lost` and is run again; `failed` rows only with --retry-failed. A sweep in which a
run failed exits 1.

`sweep run --policy NAME` runs NAME and the `full` baseline for simclr, seeds 0,1,2, on the base
of sweeps/default.yaml (ResNet-18, CIFAR-10, 30 epochs), or of sweeps/smoke.yaml with --smoke;
--method/--seeds/--epochs override those, as they override any sweep's axes.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from augbench.env import results_root
from augbench.store.locks import read_owner
from augbench.store.rows import FAILED, LOST, PENDING, RUNNING, RunStore
from augbench.sweeps.ledger import cancel, latest_jobs, read_ledger, sacct_state
from augbench.sweeps.local import InProcessExecutor, LocalExecutor
from augbench.sweeps.plan import Budget, Estimator, fmt_s, make_plan
from augbench.sweeps.schema import SweepError, apply_overrides, expand, load_sweep, named_sweeps, policy_sweep

CONFIRM_CPU_S = 30 * 60  # a local CPU plan longer than this needs --yes


def add_arguments(p) -> None:
    from augbench.errors import common_options

    sub = p.add_subparsers(dest="sweep_cmd", metavar="ACTION", required=True)
    common = [common_options(leaf=True)]
    r = sub.add_parser("run", help="plan and run a sweep (or one policy against the full baseline)", parents=common)
    r.add_argument("sweep", nargs="?", help="sweep name in sweeps/ or a YAML path")
    r.add_argument("--policy", help="run this policy and the `full` baseline, seeds 0,1,2 (base: sweeps/default.yaml)")
    r.add_argument("--smoke", action="store_true", help="with --policy: use sweeps/smoke.yaml as the base (tiny, CPU)")
    r.add_argument("--method", help="only this method (overrides the method axis)")
    r.add_argument("--seeds", help="comma-separated seeds (overrides the seed axis), e.g. 0,1,2")
    r.add_argument("--epochs", type=int, help="epochs for every run")
    r.add_argument("--executor", choices=("auto", "slurm", "local", "inprocess"), default="auto",
                   help="auto = SLURM when sbatch is on PATH, else local (worker processes, --parallel of "
                        "them); inprocess = in order in this process")
    r.add_argument("--local", action="store_true", help="same as --executor local")
    r.add_argument("--budget-s", type=float, help="local: start no run that would end after this many seconds")
    r.add_argument("--parallel", type=_parallel_arg, metavar="N|auto",
                   help="local: N runs at once, each in its own worker process, sharing the device "
                        "(default 1); prints throughput to compare N. auto: more than 1 only where earlier "
                        "sessions on this device and workload moved >= 1.1x the images/s of 1")
    r.add_argument("--hard-stop", action="store_true",
                   help="with --budget-s: at the budget, running runs save a checkpoint and stop "
                        "(resumed next time) instead of finishing")
    r.add_argument("--retry-failed", action="store_true", help="also rerun runs whose row is failed")
    r.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    r.add_argument("--yes", action="store_true",
                   help="start even when the plan estimates over 30 minutes on this machine's CPU, and "
                        "download a missing dataset first (`augbench data get`)")
    r.add_argument("--results", help="results root (default: $AUGBENCH_RESULTS or ./results)")
    r.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and print the outcome")
    s = sub.add_parser("status", help="done/failed/running/lost/pending per sweep", parents=common)
    s.add_argument("sweep", nargs="?", help="a sweep (default: every sweep with a ledger or file in sweeps/)")
    s.add_argument("--results", help="results root")
    c = sub.add_parser("cancel", help="scancel the SLURM jobs recorded for a sweep", parents=common)
    c.add_argument("sweep", help="sweep name or YAML path")
    c.add_argument("--results", help="results root")


def _parallel_arg(v: str):
    if v == "auto":
        return v
    try:
        return int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of runs at once or 'auto', got {v!r}") from None


def pick_executor(name: str) -> str:
    if name == "auto":
        return "slurm" if shutil.which("sbatch") else "local"
    if name == "slurm" and not shutil.which("sbatch"):
        raise SweepError("--executor slurm: sbatch is not on PATH (use --executor local)")
    return name


def main(args) -> int:
    return {"run": cmd_run, "status": cmd_status, "cancel": cmd_cancel}[args.sweep_cmd](args)


def cmd_run(args) -> int:
    if bool(args.sweep) == bool(args.policy):
        raise SweepError("sweep run: give a sweep name/file or --policy NAME (one of them)")
    sweep = policy_sweep(args.policy, args.smoke) if args.policy else load_sweep(args.sweep)
    sweep = apply_overrides(sweep, args.method, args.seeds, args.epochs)
    configs = expand(sweep)  # validates every run before anything starts
    executor = pick_executor("local" if args.local else args.executor)
    if args.budget_s is not None and (executor == "slurm" or args.budget_s <= 0):
        raise SweepError("--budget-s: needs a positive number of seconds and the local executor")
    if args.parallel is not None and (executor != "local" or (args.parallel != "auto" and args.parallel < 1)):
        raise SweepError(f"--parallel: needs a positive number of runs at once (got {args.parallel}) "
                         f"and the local executor")
    if args.hard_stop and (args.budget_s is None or executor != "local"):
        raise SweepError("--hard-stop: needs --budget-s (the time at which running runs stop)")
    root = Path(args.results or results_root()).resolve()
    plan = make_plan(sweep, configs, root, args.retry_failed)
    print(plan.summary(), flush=True)
    if args.parallel == "auto" and plan.todo:
        from augbench.sweeps.parallelism import choose, session_device, workload

        args.parallel, why = choose(root, session_device(plan.todo), workload(plan.todo))
        print(f"--parallel auto: {args.parallel} ({why})", flush=True)
    missing = missing_data(plan.todo)
    if args.dry_run or not plan.todo:
        for name in missing:
            print(f"note: {name} is not here yet; the run needs it: {_how_to_get(name)}")
        return 0
    if missing and not args.yes:
        raise SweepError(f"sweep {sweep.name}: " + "; ".join(
            f"{name} is not under the data root yet. {_how_to_get(name)}" for name in missing)
            + ". Or pass --yes (make sweep ... YES=1) to download it now and start")
    for name in missing:  # --yes
        from augbench.data.download import get

        get(name, log=lambda msg: print(msg, flush=True))
    if executor != "slurm" and plan.estimate_basis == "this CPU" and (plan.estimate_s or 0) > CONFIRM_CPU_S \
            and not args.yes:
        raise SweepError(f"sweep {sweep.name}: {len(plan.todo)} run(s) would take about {fmt_s(plan.estimate_s)} on "
                         f"this machine's CPU (no GPU here). Pass --yes to start anyway, or try the smoke sweep "
                         f"first: `augbench sweep run smoke --local` (a few minutes)")
    store = RunStore.at(root)
    store.check_writable(sweep.dir(root))  # before any training or submission
    sweep.save_snapshot(root)
    budget = Budget(args.budget_s, Estimator(sweep, store), args.parallel or 1)
    if executor == "slurm":
        from augbench.sweeps.slurm import SlurmExecutor

        runner = SlurmExecutor(sweep, root, wait=args.wait)
    elif executor == "inprocess":
        runner = InProcessExecutor(sweep, root, budget)
    else:
        runner = LocalExecutor(sweep, root, budget, args.hard_stop, args.discard_corrupt)
    out = runner.run(plan.todo)
    if out.counts[FAILED]:
        print(f"sweep {sweep.name}: {out.counts[FAILED]} run(s) failed; their rows and logs say why "
              f"(`augbench sweep status {sweep.name}`); --retry-failed reruns them", file=sys.stderr)
        return 1
    return 0


def missing_data(configs) -> list[str]:
    """Datasets of `configs` that `augbench data get` can fetch and that are not under the data root."""
    from augbench.data.download import archive_for, present

    names = {archive_for(c.dataset) for c in configs} - {None}  # stl10-unlabeled: stl10's archive
    return sorted(n for n in names if present(n) is None)


def _how_to_get(name: str) -> str:
    from augbench.data.download import how_to_get

    return how_to_get(name)


def known_sweeps(root: Path) -> list[str]:
    names = set(named_sweeps()) | {p.name for p in (root / "sweeps").glob("*") if p.is_dir()}
    return sorted(names)


def cmd_status(args) -> int:
    root = Path(args.results or results_root()).resolve()
    names = [args.sweep] if args.sweep else known_sweeps(root)
    store, shown = RunStore.at(root), 0
    for name in names:
        sweep_dir = root / "sweeps" / Path(name).stem
        ledger = read_ledger(sweep_dir)
        snapshot = sweep_dir / "sweep.yaml"
        try:
            sweep = load_sweep(snapshot if snapshot.exists() else name)
            configs = expand(sweep)
        except SweepError:
            if args.sweep:
                raise
            sweep = None
        if sweep is None or (not args.sweep and not ledger["submissions"] and not any(
                store.row_path(c.run_id).exists() for c in configs)):
            continue  # a shipped sweep nothing has run of yet, or an ad-hoc one without a file
        plan = make_plan(sweep, configs, root, estimate=False)
        print(plan.summary())
        shown += 1
        jobs = latest_jobs(sweep_dir)
        for c in configs:  # seed-major, the order runs start in
            st = plan.state[c.run_id]
            if st == "done":
                continue
            job = jobs.get(c.run_id)
            owner = read_owner(store.ckpt_dir(c.run_id)) if st == RUNNING and c.run_id not in plan.active else None
            why = f" (job {job}: {sacct_state(job) or 'ended'})" if job and st in (LOST, FAILED, PENDING) else (
                f" (job {job})" if job and st == RUNNING else
                f" (pid {owner.get('pid')} on {owner.get('host')})" if owner else "")
            print(f"  {st:8s} {c.run_id} {c.method} {c.policy_name} seed={c.seed} {c.backbone}{why}")
    if not shown:
        print(f"no sweep has run under {root} yet (start one with `augbench sweep run SWEEP`)")
    return 0


def cmd_cancel(args) -> int:
    root = Path(args.results or results_root()).resolve()
    name = Path(args.sweep).stem
    ids = cancel(root / "sweeps" / name)
    print(f"cancelled {len(ids)} job(s) of sweep {name}: {' '.join(ids) or '-'}")
    return 0
