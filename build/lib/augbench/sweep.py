"""Sweeps: a YAML grid of run configs -> validated RunConfigs -> a plan -> SLURM arrays or local runs.

A sweep file (see sweeps/*.yaml):
    name: crop_matters
    base: {backbone: resnet18, epochs: 30}            # RunConfig fields shared by every run
    axes: {method: [simclr, byol], seed: [0, 1, 2],   # crossed; a policy axis may hold generators
           policy: [full, {leave_one_out: full}]}
    include: [{method: simsiam, policy: full}]        # extra runs (base + entry), optional
    exclude: [{method: byol, policy: no_crop}]        # drop crossed runs matching every key, optional
    slurm: {partition: gpu, gpus_per_node: 1, ...}    # submitit parameters, optional
                                                      # (tasks_per_node: DDP ranks per node, default
                                                      #  one per GPU; set it for CPU runs with gloo)
    estimate: {resnet18: 9.0}                         # GPU-seconds per epoch per backbone (for the plan)

Policy generators (augbench.augment.policy): `{leave_one_out: full}`, `{pairwise: full}`,
`{only: [[crop], [crop, color]], base: full}`, `{strength: mask_ratio, base: X, values: [...]}`.

Everything is expanded and validated before anything is submitted: a bad file raises a UserError
naming the file and the field. A run whose row is `done` is never run again; rows are named by
run_id, so a rerun can only overwrite, never duplicate. A run started but not alive any more (its
row still `running`, e.g. after SIGKILL) is `lost` and is run again; `failed` rows only with
--retry-failed. Files under results/sweeps/<name>/: jobs.json (the ledger: run_id -> SLURM job
id per submission), sweep.yaml (the sweep as last run, overrides applied), submitit/ (logs).

Locally (--local) runs go in order in this process, or N at once in worker processes with
--parallel N (augbench.parallel); --budget-s starts no run whose estimate would overrun it.

`sweep run --policy NAME` runs NAME and the `full` baseline for simclr, seeds 0,1,2, on the base
of sweeps/default.yaml (ResNet-18, CIFAR-10, 30 epochs), or of sweeps/smoke.yaml with --smoke;
--method/--seeds/--epochs override those, as they override any sweep's axes.
"""
from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from augbench.atomic import atomic_write
from augbench.config import RunConfig
from augbench.env import REPO_ROOT, results_root
from augbench.errors import UserError, read_yaml
from augbench.results import read_row

SWEEPS_DIR = REPO_ROOT / "sweeps"
TOP_KEYS = {"name", "description", "base", "axes", "include", "exclude", "slurm", "estimate"}
SLURM_KEYS = {"partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min",
              "array_parallelism", "account", "qos", "nodes", "constraint", "tasks_per_node"}
RUN_FIELDS = {f.name for f in fields(RunConfig)}
POLICY_GENERATORS = ("leave_one_out", "only", "pairwise", "strength")


class SweepError(UserError):
    """A bad sweep file or sweep option; the message names the file and the field."""


@dataclass
class Sweep:
    name: str
    source: str
    base: dict[str, Any] = field(default_factory=dict)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    include: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    slurm: dict[str, Any] = field(default_factory=dict)
    estimate: dict[str, float] = field(default_factory=dict)

    def dir(self, root: str | Path | None = None) -> Path:
        """results/sweeps/<name>: the job ledger, the sweep as run, and submitit logs."""
        return Path(root or results_root()) / "sweeps" / self.name

    def save_snapshot(self, root: Path) -> Path:
        """The sweep as run (overrides applied), so `status` sees what was submitted."""
        d = {"name": self.name, "base": self.base, "axes": self.axes, "include": self.include,
             "exclude": self.exclude, "slurm": self.slurm, "estimate": self.estimate}
        return atomic_write(self.dir(root) / "sweep.yaml", yaml.safe_dump(d, sort_keys=False))


# ---------------------------------------------------------------------- loading and validation
def resolve_path(spec: str | Path) -> Path:
    """A path to a YAML file, or the name of one in sweeps/ (``crop_matters``)."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for cand in (SWEEPS_DIR / f"{spec}.yaml", Path("sweeps") / f"{spec}.yaml"):
        if cand.exists():
            return cand
    known = sorted(q.stem for q in SWEEPS_DIR.glob("*.yaml"))
    raise SweepError(f"{spec}: no such sweep file (named sweeps: {known})")


def load_sweep(spec: str | Path) -> Sweep:
    path = resolve_path(spec)
    return sweep_from_dict(read_yaml(path, "sweep file", SweepError), source=str(path))


def sweep_from_dict(data: Any, source: str = "sweep") -> Sweep:
    if not isinstance(data, dict):
        raise SweepError(f"{source}: expected a mapping with name, base, axes, ...")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise SweepError(f"{source}: unknown key(s) {unknown}; known: {sorted(TOP_KEYS)}")
    name = data.get("name")
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise SweepError(f"{source}: field 'name' must be a non-empty word (letters, digits, _ or -), got {name!r}")

    def mapping(key: str) -> dict:
        v = data.get(key) or {}
        if not isinstance(v, dict):
            raise SweepError(f"{source}: field '{key}' must be a mapping, got {type(v).__name__}")
        return v

    def partials(key: str) -> list[dict]:
        v = data.get(key) or []
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise SweepError(f"{source}: field '{key}' must be a list of partial run configs")
        for i, x in enumerate(v):
            _check_run_keys(x, f"{source}: {key}[{i}]")
        return v

    base, axes, slurm, estimate = mapping("base"), mapping("axes"), mapping("slurm"), mapping("estimate")
    _check_run_keys(base, f"{source}: base")
    _check_run_keys(axes, f"{source}: axes")
    for k, v in axes.items():
        if k == "policy" and isinstance(v, dict):
            axes[k] = v = [v]  # a single generator spec
        if not isinstance(v, list) or not v:
            raise SweepError(f"{source}: axes.{k} must be a non-empty list, got {v!r}")
    bad = sorted(set(slurm) - SLURM_KEYS)
    if bad:
        raise SweepError(f"{source}: unknown key(s) slurm.{bad}; known: {sorted(SLURM_KEYS)}")
    for k in ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism", "nodes",
              "tasks_per_node"):
        v = slurm.get(k)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if k == "gpus_per_node" else 1)):
            raise SweepError(f"{source}: slurm.{k} must be a positive integer, got {v!r}")
    gpus, tasks = slurm.get("gpus_per_node") or 0, slurm.get("tasks_per_node")
    if gpus and tasks is not None and tasks != gpus:
        raise SweepError(f"{source}: slurm.tasks_per_node ({tasks}) must equal slurm.gpus_per_node ({gpus}): "
                         f"one DDP rank per GPU (leave tasks_per_node out on GPU nodes)")
    for k, v in estimate.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise SweepError(f"{source}: estimate.{k} must be a positive number of GPU-seconds per epoch, got {v!r}")
    return Sweep(name=name, source=source, base=dict(base), axes=dict(axes), include=partials("include"),
                 exclude=partials("exclude"), slurm=dict(slurm), estimate={k: float(v) for k, v in estimate.items()})


def _check_run_keys(d: dict, where: str) -> None:
    unknown = sorted(set(d) - RUN_FIELDS)
    if unknown:
        raise SweepError(f"{where}: unknown run field(s) {unknown}; known: {sorted(RUN_FIELDS)}")


# ---------------------------------------------------------------------- expansion
def expand_policies(items: list[Any], where: str) -> list[Any]:
    """Policy axis entries -> policy names or dicts. Generators come from augbench.augment.policy."""
    from augbench.augment import policy as P

    out: list[Any] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            try:
                P.Policy.named(item)  # fail now, naming the file and entry, if unknown
            except UserError as e:
                raise SweepError(f"{at}: {e}") from None
            out.append(item)
            continue
        if not isinstance(item, dict):
            raise SweepError(f"{at}: expected a policy name, a policy mapping or a generator, got {item!r}")
        if "ops" in item:
            out.append(P.Policy.from_dict(item, source=at).to_dict())
            continue
        gen = [k for k in POLICY_GENERATORS if k in item]
        if len(gen) != 1:
            raise SweepError(f"{at}: expected exactly one generator of {list(POLICY_GENERATORS)}, got keys {sorted(item)}")
        g = gen[0]
        allowed = {g, "base", "values", "groups"}
        if set(item) - allowed:
            raise SweepError(f"{at}: unknown key(s) {sorted(set(item) - allowed)} for generator {g!r}")
        try:
            if g == "leave_one_out":
                pols = P.leave_one_out(P.Policy.named(item[g]), item.get("groups"))
            elif g == "pairwise":
                pols = P.pairwise(P.Policy.named(item[g]), *([item["groups"]] if "groups" in item else []))
            elif g == "only":
                groups = item[g]
                if not isinstance(groups, list) or not all(isinstance(x, list) and x for x in groups):
                    raise SweepError(f"{at}.only: expected a list of group lists such as [[crop], [crop, color]]")
                base = P.Policy.named(item.get("base", "full"))
                pols = [P.only(base, gs) for gs in groups]
            else:  # strength
                values = item.get("values")
                if not isinstance(values, list) or not values:
                    raise SweepError(f"{at}.values: a strength sweep needs a non-empty list of values")
                pols = P.strength_sweep(P.Policy.named(item.get("base", "full")), item[g], values)
        except (TypeError, ValueError, KeyError) as e:
            if isinstance(e, SweepError):
                raise
            if isinstance(e, UserError):
                raise SweepError(f"{at}: {e}") from None
            raise SweepError(f"{at}: bad {g} generator: {e!r}") from None
        out.extend(p.to_dict() for p in pols)
    return out


def _policy_name(p: Any) -> str:
    return p if isinstance(p, str) else p.get("name", "?")


def _matches(run: dict[str, Any], partial: dict[str, Any]) -> bool:
    for k, v in partial.items():
        have = run.get(k)
        if k == "policy":
            have, v = _policy_name(have), _policy_name(v)
        if have != v:
            return False
    return True


def expand(sweep: Sweep) -> list[RunConfig]:
    """Every run of the sweep as a validated RunConfig, in a stable order, identical runs once."""
    axes = dict(sweep.axes)
    if "policy" in axes:
        axes["policy"] = expand_policies(axes["policy"], f"{sweep.source}: axes.policy")
    keys = list(axes)
    dicts = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        run = {**sweep.base, **dict(zip(keys, combo))}
        if not any(_matches(run, ex) for ex in sweep.exclude):
            dicts.append(run)
    for inc in sweep.include:
        run = {**sweep.base, **inc}
        if isinstance(run.get("policy"), list):
            raise SweepError(f"{sweep.source}: include entries take one policy, got a list")
        dicts.append(run)
    configs, seen = [], set()
    for run in dicts:
        label = ", ".join(f"{k}={_policy_name(v) if k == 'policy' else v}" for k, v in run.items() if k in keys or k in ("method", "policy", "seed"))
        cfg = RunConfig.from_dict(run, source=f"{sweep.source} (run {label})")
        if cfg.run_id not in seen:
            seen.add(cfg.run_id)
            configs.append(cfg)
    if not configs:
        raise SweepError(f"{sweep.source}: the sweep expands to no runs (check axes and exclude)")
    return configs


# ---------------------------------------------------------------------- plan and status
@dataclass
class Plan:
    sweep: Sweep
    configs: list[RunConfig]
    state: dict[str, str]  # run_id -> done | failed | running | lost | pending
    todo: list[RunConfig]  # what a run would start, in order
    gpu_hours: float | None

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("done", "failed", "running", "lost", "pending")}
        for s in self.state.values():
            out[s] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        gh = "unknown (no estimate for its backbone)" if self.gpu_hours is None else f"{self.gpu_hours:.3g}"
        return (f"sweep {self.sweep.name}: {len(self.configs)} runs - {c['done']} done, {c['failed']} failed, "
                f"{c['running']} running, {c['lost']} lost, {c['pending']} pending; "
                f"{len(self.todo)} to run, estimated {gh} GPU-hours")


def run_state(cfg: RunConfig, runs_root: Path, active: dict[str, str]) -> str:
    """done/failed from the row; running if a live SLURM job holds it; lost if it was started
    (a 'running' row or a ledger entry) but nothing is alive any more; else pending."""
    row = read_row(cfg.run_id, runs_root)
    status = row.get("status") if row else None
    if status in ("done", "failed"):
        return status
    if cfg.run_id in active:
        return "running"
    return "lost" if status == "running" else "pending"


def make_plan(sweep: Sweep, configs: list[RunConfig], root: Path, retry_failed: bool = False,
              active: dict[str, str] | None = None) -> Plan:
    from augbench import slurm_task

    if active is None:
        active = slurm_task.active_runs(sweep.dir(root))
    state = {c.run_id: run_state(c, root / "runs", active) for c in configs}
    todo_states = {"pending", "lost"} | ({"failed"} if retry_failed else set())
    todo = [c for c in configs if state[c.run_id] in todo_states]
    gpu_s = [sweep.estimate.get(c.backbone) for c in todo]
    gpu_hours = None if any(s is None for s in gpu_s) else sum(
        s * c.epochs * max(1, sweep.slurm.get("gpus_per_node", 1)) for s, c in zip(gpu_s, todo)) / 3600
    return Plan(sweep, configs, state, todo, gpu_hours)


# ---------------------------------------------------------------------- the CLI
def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="sweep_cmd", metavar="ACTION", required=True)
    r = sub.add_parser("run", help="plan and run a sweep (or one policy against the full baseline)")
    r.add_argument("sweep", nargs="?", help="sweep name in sweeps/ or a YAML path")
    r.add_argument("--policy", help="run this policy and the `full` baseline, seeds 0,1,2 (base: sweeps/default.yaml)")
    r.add_argument("--smoke", action="store_true", help="with --policy: use sweeps/smoke.yaml as the base (tiny, CPU)")
    r.add_argument("--method", help="only this method (overrides the method axis)")
    r.add_argument("--seeds", help="comma-separated seeds (overrides the seed axis), e.g. 0,1,2")
    r.add_argument("--epochs", type=int, help="epochs for every run")
    r.add_argument("--executor", choices=("auto", "slurm", "local"), default="auto",
                   help="auto = SLURM when sbatch is on PATH, else local (in-process, in order)")
    r.add_argument("--local", action="store_true", help="same as --executor local")
    r.add_argument("--budget-s", type=float, help="local: start no run that would end after this many seconds")
    r.add_argument("--parallel", type=int, metavar="N",
                   help="local: N runs at once, each in its own worker process, sharing the device "
                        "(default: one at a time in this process); prints throughput to compare N")
    r.add_argument("--hard-stop", action="store_true",
                   help="with --budget-s: at the budget, running runs save a checkpoint and stop "
                        "(resumed next time) instead of finishing")
    r.add_argument("--retry-failed", action="store_true", help="also rerun runs whose row is failed")
    r.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    r.add_argument("--results", help="results root (default: $AUGBENCH_RESULTS or ./results)")
    r.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and print the outcome")
    s = sub.add_parser("status", help="done/failed/running/lost/pending per sweep")
    s.add_argument("sweep", nargs="?", help="a sweep (default: every sweep with a ledger or file in sweeps/)")
    s.add_argument("--results", help="results root")
    c = sub.add_parser("cancel", help="scancel the SLURM jobs recorded for a sweep")
    c.add_argument("sweep", help="sweep name or YAML path")
    c.add_argument("--results", help="results root")


def policy_sweep(policy: str, smoke: bool = False) -> Sweep:
    """`make sweep POLICY=x`: x against the full baseline, simclr, seeds 0,1,2, on the default base."""
    base = load_sweep("smoke" if smoke else "default")
    base.name = f"policy_{policy}" + ("_smoke" if smoke else "")
    base.source = f"--policy {policy} (base {base.source})"
    base.axes = {"policy": ["full"] + ([policy] if policy != "full" else []), "method": ["simclr"], "seed": [0, 1, 2]}
    base.include, base.exclude = [], []
    return base


def apply_overrides(sweep: Sweep, method: str | None, seeds: str | None, epochs: int | None) -> Sweep:
    if method:
        sweep.axes["method"] = [method]
        sweep.base.pop("method", None)
    if seeds:
        try:
            sweep.axes["seed"] = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise SweepError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
        sweep.base.pop("seed", None)
    if epochs is not None:
        sweep.base["epochs"] = epochs
        sweep.axes.pop("epochs", None)
    for partial in sweep.include:
        for k, v in (("method", method), ("epochs", epochs)):
            if v is not None and k in partial:
                partial[k] = v
    return sweep


def pick_executor(name: str) -> str:
    if name == "auto":
        return "slurm" if shutil.which("sbatch") else "local"
    if name == "slurm" and not shutil.which("sbatch"):
        raise SweepError("--executor slurm: sbatch is not on PATH (use --executor local)")
    return name


def main(args) -> int:
    return {"run": cmd_run, "status": cmd_status, "cancel": cmd_cancel}[args.sweep_cmd](args)


def cmd_run(args) -> int:
    from augbench import slurm_task

    if bool(args.sweep) == bool(args.policy):
        raise SweepError("sweep run: give a sweep name/file or --policy NAME (one of them)")
    sweep = policy_sweep(args.policy, args.smoke) if args.policy else load_sweep(args.sweep)
    sweep = apply_overrides(sweep, args.method, args.seeds, args.epochs)
    configs = expand(sweep)  # validates every run before anything starts
    executor = pick_executor("local" if args.local else args.executor)
    if args.budget_s is not None and (executor != "local" or args.budget_s <= 0):
        raise SweepError("--budget-s: needs a positive number of seconds and the local executor")
    if args.parallel is not None and (executor != "local" or args.parallel < 1):
        raise SweepError(f"--parallel: needs a positive number of runs at once (got {args.parallel}) "
                         f"and the local executor")
    if args.hard_stop and args.budget_s is None:
        raise SweepError("--hard-stop: needs --budget-s (the time at which running runs stop)")
    root = Path(args.results or results_root()).resolve()
    plan = make_plan(sweep, configs, root, args.retry_failed)
    print(plan.summary(), flush=True)
    if args.dry_run or not plan.todo:
        return 0
    sweep.save_snapshot(root)
    if executor == "slurm":
        jobs = slurm_task.submit(sweep, plan.todo, root)
        print(f"submitted {len(jobs)} array tasks (job {jobs[0].job_id.split('_')[0]}); "
              f"ledger: {sweep.dir(root) / 'jobs.json'}", flush=True)
        if args.wait:
            return slurm_task.wait(jobs)
        return 0
    if args.parallel is not None or args.hard_stop:
        from augbench.parallel import run_parallel

        summary = run_parallel(sweep, plan.todo, root, args.parallel or 1, args.budget_s, args.hard_stop)
        return 1 if summary["failed"] else 0
    ran = slurm_task.run_local(sweep, plan.todo, root, budget_s=args.budget_s)
    print(f"ran {ran} of {len(plan.todo)} runs locally", flush=True)
    return 0


def known_sweeps(root: Path) -> list[str]:
    names = {p.stem for p in SWEEPS_DIR.glob("*.yaml")} | {p.name for p in (root / "sweeps").glob("*") if p.is_dir()}
    return sorted(names)


def cmd_status(args) -> int:
    from augbench import slurm_task

    root = Path(args.results or results_root()).resolve()
    names = [args.sweep] if args.sweep else known_sweeps(root)
    shown = 0
    for name in names:
        sweep_dir = root / "sweeps" / Path(name).stem
        ledger = slurm_task.read_ledger(sweep_dir)
        snapshot = sweep_dir / "sweep.yaml"
        try:
            sweep = load_sweep(snapshot if snapshot.exists() else name)
            configs = expand(sweep)
        except SweepError:
            if args.sweep:
                raise
            sweep = None
        if sweep is None or (not args.sweep and not ledger["submissions"] and not any(
                (root / "runs" / f"{c.run_id}.json").exists() for c in configs)):
            continue  # a shipped sweep nothing has run of yet, or an ad-hoc one without a file
        plan = make_plan(sweep, configs, root)
        print(plan.summary())
        shown += 1
        jobs = slurm_task.latest_jobs(sweep_dir)
        for c in configs:
            st = plan.state[c.run_id]
            if st == "done":
                continue
            job = jobs.get(c.run_id)
            why = f" (job {job}: {slurm_task.sacct_state(job) or 'ended'})" if job and st in ("lost", "failed", "pending") else (
                f" (job {job})" if job and st == "running" else "")
            print(f"  {st:8s} {c.run_id} {c.method} {c.policy_name} seed={c.seed} {c.backbone}{why}")
    if not shown:
        print(f"no sweep has run under {root} yet (start one with `augbench sweep run SWEEP`)")
    return 0


def cmd_cancel(args) -> int:
    from augbench import slurm_task

    root = Path(args.results or results_root()).resolve()
    name = Path(args.sweep).stem
    ids = slurm_task.cancel(root / "sweeps" / name)
    print(f"cancelled {len(ids)} job(s) of sweep {name}: {' '.join(ids) or '-'}")
    return 0
