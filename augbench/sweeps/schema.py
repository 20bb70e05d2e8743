"""Sweep files: the schema, loading with validation, and expansion into RunConfigs.

A sweep file (see sweeps/*.yaml):
    name: crop_matters
    base: {backbone: resnet18, epochs: 30}            # RunConfig fields shared by every run
    axes: {method: [simclr, byol], seed: [0, 1, 2],   # crossed; a policy axis may hold generators
           policy: [full, {leave_one_out: full}]}     # (augbench.augment.policy_specs)
    include: [{method: simsiam, policy: full}]        # extra runs (base + entry), optional; an entry
                                                      # whose policy is a generator: one run per policy
    exclude: [{method: byol, policy: no_crop}]        # drop crossed runs matching every key, optional
    slurm: {partition: gpu, gpus_per_node: 1, ...}    # submitit parameters, optional
                                                      # (tasks_per_node: DDP ranks per node, default
                                                      #  one per GPU; set it for CPU runs with gloo)
    estimate: {resnet18: 9.0}                         # GPU-seconds per epoch per backbone (for the plan)

Everything is expanded and validated before anything runs: a bad file raises a SweepError naming
the file and the field. Runs come seed-major (every cell's seed 0 before any seed 1), so a grid cut
short by a budget is balanced across cells.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from augbench.augment.policy_specs import POLICY_GENERATORS, PolicySpecError, expand_policies
from augbench.config import RunConfig
from augbench.env import REPO_ROOT
from augbench.errors import UserError, read_yaml
from augbench.store.atomic import atomic_write
from augbench.store.rows import RunStore

# The shipped sweep files: the repository's sweeps/ in a source checkout (an editable install), else
# the copy a wheel carries as package data (augbench/sweep_files: a link to ../sweeps in the source tree).
PACKAGED_SWEEPS = Path(__file__).resolve().parents[1] / "sweep_files"
SWEEPS_DIR = REPO_ROOT / "sweeps" if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "sweeps").is_dir() \
    else PACKAGED_SWEEPS
TOP_KEYS = {"name", "description", "base", "axes", "include", "exclude", "slurm", "estimate"}
SLURM_KEYS = {"partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min",
              "array_parallelism", "account", "qos", "nodes", "constraint", "tasks_per_node"}
RUN_FIELDS = {f.name for f in fields(RunConfig)}


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
        """<root>/sweeps/<name>: the job ledger, the sweep as run, and submitit / local logs."""
        return RunStore.at(root).sweep_dir(self.name)

    def save_snapshot(self, root: Path) -> Path:
        """The sweep as run (overrides applied), so `status` sees what was submitted."""
        d = {"name": self.name, "base": self.base, "axes": self.axes, "include": self.include,
             "exclude": self.exclude, "slurm": self.slurm, "estimate": self.estimate}
        return atomic_write(self.dir(root) / "sweep.yaml", yaml.safe_dump(d, sort_keys=False))


# ---------------------------------------------------------------------- loading and validation
def resolve_path(spec: str | Path) -> Path:
    """A path to a YAML file, or the name of a sweep: the user's own ./sweeps/NAME.yaml first, then
    the shipped one (``crop_matters``)."""
    p = Path(spec)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    for folder in sweep_dirs():
        cand = folder / f"{spec}.yaml"
        if cand.exists():
            return cand
    raise SweepError(f"{spec}: no such sweep file (named sweeps: {named_sweeps()})")


def sweep_dirs() -> list[Path]:
    """Where sweep names resolve, in order: ./sweeps/ (the working directory's), then the shipped ones."""
    own = Path.cwd() / "sweeps"
    return [own] if own.resolve() == SWEEPS_DIR.resolve() else [own, SWEEPS_DIR]


def named_sweeps() -> list[str]:
    """The names of the sweep files in ./sweeps/ and the shipped ones."""
    return sorted({q.stem for d in sweep_dirs() for q in d.glob("*.yaml")})


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
    """Every run of the sweep as a validated RunConfig, seed-major, identical runs once."""
    axes = dict(sweep.axes)
    generated: set[int] = set()  # ids of the policy dicts a generator made (adapted per run below)
    if "policy" in axes:
        pols = []
        try:
            for i, item in enumerate(axes["policy"]):
                out = expand_policies([item], f"{sweep.source}: axes.policy", start=i)
                if _is_generator(item):
                    generated.update(id(p) for p in out)
                pols += out
        except PolicySpecError as e:
            raise SweepError(str(e)) from None
        axes["policy"] = pols
    keys = list(axes)
    dicts = []
    for combo in itertools.product(*(axes[k] for k in keys)):
        run = {**sweep.base, **dict(zip(keys, combo))}
        if not any(_matches(run, ex) for ex in sweep.exclude):
            dicts.append(_adapted(run) if id(run.get("policy")) in generated else run)
    for i, inc in enumerate(sweep.include):
        run = {**sweep.base, **inc}
        pol = run.get("policy")
        if isinstance(pol, list):
            raise SweepError(f"{sweep.source}: include entries take one policy, got a list")
        if _is_generator(pol):
            # a generator (strength, leave_one_out, ...) in an include entry: one run per policy it makes
            try:
                pols = expand_policies([pol], f"{sweep.source}: include[{i}].policy")
            except PolicySpecError as e:
                raise SweepError(str(e)) from None
            dicts.extend(_adapted({**run, "policy": p}) for p in pols)
            continue
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
    return seed_major(configs)


def _is_generator(policy: Any) -> bool:
    return isinstance(policy, dict) and any(g in policy for g in POLICY_GENERATORS)


def _adapted(run: dict[str, Any]) -> dict[str, Any]:
    """A run whose policy a generator derived from the registry's (written for 32 px CIFAR-10): the
    policy adapted to the run's image_size and data set, as a named policy is (RunConfig.adapt_policy).
    A mapping written in the file is the user's and stays as it is."""
    from augbench.augment.policy import Policy

    at = {k: run[k] for k in ("image_size", "dataset") if k in run}
    pol = RunConfig(**at).adapt_policy(Policy.from_dict(run["policy"]))
    return {**run, "policy": pol.to_dict()}


def seed_major(configs: list[RunConfig]) -> list[RunConfig]:
    """Every cell's seed 0, then every cell's seed 1, ...; cells keep their order within a seed."""
    return sorted(configs, key=lambda c: c.seed)  # sorted() is stable


# ---------------------------------------------------------------------- overrides
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
