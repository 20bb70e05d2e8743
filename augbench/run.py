"""One config -> one result row: validate, pretrain (resuming from a checkpoint), evaluate, write.

Also the `augbench train` command: a flag for every RunConfig field, ``--config FILE.yaml``
(flags win over the file), ``--results DIR``, ``--ckpt-dir DIR``.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import traceback
import typing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from augbench.config import ConfigError, RunConfig
from augbench.errors import UserError, read_yaml
from augbench.store.locks import LOCK_NAME, RunLock, RunLocked, owner_alive
from augbench.store.rows import DONE, RUNNING, Row, RunStore
from augbench.train import checkpoint, distributed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_device(cfg: RunConfig) -> torch.device:
    if cfg.device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", distributed.local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(cfg.device)
    except RuntimeError:
        raise ConfigError(f"field 'device' must be 'auto', 'cpu' or 'cuda[:N]' (got {cfg.device!r})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"field 'device' is {cfg.device!r} but CUDA is not available here; use 'auto' or 'cpu'")
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"field 'device' must be 'auto', 'cpu' or 'cuda[:N]' (got {cfg.device!r})")
    return device


def parallelism() -> int:
    """How many runs share this device: $AUGBENCH_PARALLEL, set by `sweep run --parallel N` (else 1)."""
    try:
        return max(1, int(os.environ.get("AUGBENCH_PARALLEL") or 1))
    except ValueError:
        return 1


def _check_policy_fits(cfg: RunConfig, policy) -> None:
    """Checks that need the policy and the backbone together."""
    if policy.has("patch_mask") and cfg.backbone.startswith("vit"):
        ps = policy.params("patch_mask")["patch_size"]
        if ps != cfg.patch_size:
            raise ConfigError(f"field 'policy': patch_mask.patch_size {ps} must equal the ViT's "
                              f"patch_size {cfg.patch_size} when masking tokens")
    size = policy.output_size
    if size is not None and tuple(size) != (cfg.image_size, cfg.image_size):
        raise ConfigError(f"field 'image_size' ({cfg.image_size}) differs from the policy's output size {list(size)}")


def run_config(cfg: RunConfig, results_dir: str | Path | None = None, ckpt_dir: str | Path | None = None,
               sweep: str | None = None, *, stop_at_step: int | None = None, force: bool = False) -> dict[str, Any]:
    """Pretrain + evaluate `cfg` and write its row to the rows folder `results_dir` (default
    <results root>/runs); its checkpoints, log and lock go beside it (augbench.store.rows).

    A run whose row is done is kept and its row returned (`force`: trained again from scratch).
    Resumes from `ckpt_dir` (default <root>/checkpoints/<run_id>/) when a checkpoint is there.
    Returns the row; a NaN loss gives a `failed` row. Bad input raises a UserError before any
    training, as does a run that another live process trains (locks.RunLocked). On a requested
    checkpoint (preemption) the row stays `running` and checkpoint.Preempted propagates.
    `stop_at_step` is a test hook (see augbench.train.loop.pretrain)."""
    cfg.validate()
    store = RunStore.of_runs_dir(results_dir)
    old = store.read_row(cfg.run_id)
    if old is not None and old["status"] == DONE and not force:
        return old
    ckpt_dir = Path(ckpt_dir) if ckpt_dir is not None else store.ckpt_dir(cfg.run_id)
    store.check_writable(ckpt_dir)
    if distributed.rank() == 0:  # a run another process trains now: refused at once, before loading any data
        owner = owner_alive(ckpt_dir)
        if owner is not None:
            raise RunLocked(cfg.run_id, owner, ckpt_dir / LOCK_NAME)
    # everything that can refuse the run (the data too) before the lock makes its checkpoint folder:
    # a refused run leaves nothing behind
    prepared = _prepare(cfg)
    if distributed.rank() != 0:  # rank 0 holds the lock for the whole job
        return _run_config(cfg, store, ckpt_dir, sweep, stop_at_step, force, prepared)
    with RunLock(ckpt_dir, cfg.run_id):
        return _run_config(cfg, store, ckpt_dir, sweep, stop_at_step, force, prepared)


def start_row(cfg: RunConfig, sweep: str | None, env: dict[str, Any]) -> Row:
    """The row as training starts (status running); run_config fills in the rest."""
    return Row(run_id=cfg.run_id, status=RUNNING, error=None, method=cfg.method, policy=cfg.policy_spec(),
               backbone=cfg.backbone, dataset=cfg.dataset, epochs=cfg.epochs, seed=cfg.seed, sweep=sweep,
               config=cfg.to_dict(), metrics={}, timings={}, env=env, started_at=_now(), finished_at=None,
               history=[])


def _prepare(cfg: RunConfig) -> tuple[Any, torch.device, Any, Any]:
    """Validate everything a run needs, its data included, before any work: (policy, device, train, test).
    Raises a UserError (a ConfigError naming the field, a DataError naming the path) otherwise."""
    from augbench.data import load_dataset
    from augbench.train.step import check_tensorboard

    cfg.validate()
    policy = cfg.policy_obj()
    _check_policy_fits(cfg, policy)
    check_tensorboard(cfg.tensorboard)
    device = resolve_device(cfg)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    # size: the side an image folder of mixed sizes is resized to (same-size folders are kept as they are)
    train = load_dataset(cfg.dataset, split="train", subset=cfg.subset, seed=0, size=cfg.image_size)
    test = load_dataset(cfg.dataset, split="test", subset=cfg.eval_subset, seed=0, size=cfg.image_size)
    world = distributed.world_size()
    if cfg.batch_size * world > len(train.pretraining):  # pretraining: stl10-unlabeled adds its unlabeled images
        raise ConfigError(f"field 'batch_size' ({cfg.batch_size}) x {world} process(es) exceeds the "
                          f"{len(train.pretraining)} training images of {cfg.dataset} (subset={cfg.subset})")
    return policy, device, train, test


def _online_knn(cfg: RunConfig, train, test, device: torch.device, norm, size):
    """The accuracy-during-training monitor when `online_knn_every` asks for it, else None."""
    if not cfg.online_knn_every:
        return None
    from augbench.eval.online import OnlineKNN

    return OnlineKNN(train, test, device, every=cfg.online_knn_every, per_class=cfg.online_knn_per_class,
                     k=cfg.knn_k, t=cfg.knn_t, norm=norm, size=size, amp=bool(cfg.amp and device.type == "cuda"))


def _run_config(cfg: RunConfig, store: RunStore, ckpt_dir: Path, sweep: str | None, stop_at_step: int | None,
                force: bool, prepared: tuple[Any, torch.device, Any, Any] | None = None) -> dict[str, Any]:
    import time

    from augbench.augment import Engine
    from augbench.augment.engine import FALLBACKS
    from augbench.env import environment
    from augbench.eval.evaluate import evaluate_encoder, random_init_knn
    from augbench.eval.features import normalization
    from augbench.methods import build_method
    from augbench.models import build_backbone
    from augbench.train.loop import NonFiniteLoss, mask_mode, pretrain, seed_everything, weights_sha256

    # ---- validate everything before any work (run_config has done so before taking the lock)
    policy, device, train, test = prepared if prepared is not None else _prepare(cfg)
    run_id = cfg.run_id
    log_path = store.log_path(run_id)
    world = distributed.world_size()
    resume = None if force else checkpoint.load(ckpt_dir)
    if resume is not None and resume.get("run_id") != run_id:
        raise UserError(f"{checkpoint.checkpoint_path(ckpt_dir)}: checkpoint of run {resume.get('run_id')}, "
                        f"not of this config ({run_id}); pass another --ckpt-dir")

    rank = distributed.rank()
    # each rank draws its own augmentations; a non-zero rank re-seeds by the resume step (only
    # rank 0's engine state is in the checkpoint)
    resume_step = 0 if resume is None else int(resume["epoch"]) * 1_000_003 + int(resume["step_in_epoch"])
    engine_seed = cfg.seed + (rank * 7919 + resume_step if rank else 0)
    engine = Engine(policy, backend=cfg.backend, seed=engine_seed, device=device, mask_mode=mask_mode(cfg, policy))
    row = start_row(cfg, sweep, {**environment(device), "world_size": world, "parallel": parallelism(),
                                 "aug_impl": engine.impl})  # the engine's code path: triton, numba, torch or kornia
    aug_fallbacks_before, result = len(FALLBACKS), None

    def record_fallbacks() -> None:
        """env: the path the engine finally ran (aug_impl) and every fast path that failed and went on
        on the reference path (`fallbacks`: the engines' kernels, fine-tuning's too, and the compiled
        step; empty when none did). Execution only: nothing hashed, nothing computed differs."""
        row["env"]["aug_impl"] = engine.impl
        row["env"]["fallbacks"] = FALLBACKS[aug_fallbacks_before:] + (
            [f for f in result.fallbacks if f["kind"] != "augment"] if result is not None else [])

    def write(r: Row) -> None:
        if rank == 0:  # the lock holder: no other process writes this row meanwhile
            store.write_row(r)

    old = store.read_row(run_id) if resume is not None else None
    if old is not None and old.get("status") == "running" and old.get("started_at"):
        row["started_at"] = old["started_at"]  # a resumed run started when its first part did
    write(row)
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    seed_everything(cfg.seed)
    norm, size = normalization(policy), policy.output_size or (cfg.image_size, cfg.image_size)
    try:
        backbone = build_backbone(cfg)
        method = build_method(cfg, backbone).to(device)
        extra: dict[str, Any] = {}
        eval_kw = dict(norm=norm, size=size, progress=cfg.progress and rank == 0)
        if resume is None:  # cached per (backbone, data, seed, eval settings) under <results>/cache
            extra["knn_top1_random_init"] = random_init_knn(cfg, method, train, test, device,
                                                            cache_dir=store.cache, **eval_kw)
        result = pretrain(cfg, method, train.pretraining, engine, device=device, ckpt_dir=ckpt_dir, log_path=log_path,
                          resume=resume, extra=extra, stop_at_step=stop_at_step,
                          monitor=_online_knn(cfg, train, test, device, norm, size))
        row["history"] = result.history
        # the same on every rank under DDP (it keeps the ranks' parameters in sync); exact resumes too
        row["weights_sha256"] = weights_sha256(method)
        if rank != 0:
            return row  # never written: rank 0 evaluates and writes the row
        t_eval = time.perf_counter()
        m = {"knn_top1_random_init": result.extra["knn_top1_random_init"], "final_loss": result.final_loss,
             **evaluate_encoder(cfg, method, train, test, device, **eval_kw)}
        row["metrics"] = m
        row["timings"] = {"train_s": result.train_s, "epoch_s": result.train_s / max(1, len(result.history)),
                          "aug_fraction": result.aug_fraction, "eval_s": time.perf_counter() - t_eval,
                          "images": result.steps * cfg.batch_size * world}  # pretraining images, all ranks
        row["status"] = "done"
    except checkpoint.Preempted:
        raise  # the row stays `running`; the requeued job resumes from the checkpoint
    except NonFiniteLoss as e:
        row.update(status="failed", error=f"NonFiniteLoss: {e}")
    except Exception as e:
        row.update(status="failed", error=f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}")
        row["finished_at"] = _now()
        record_fallbacks()
        write(row)
        raise
    row["finished_at"] = _now()
    record_fallbacks()
    write(row)
    return row


# ---------------------------------------------------------------------------- CLI
_EXTRA_FLAGS = {"config", "results", "ckpt_dir", "sweep", "force"}


def _none_or(kind):
    def parse(s: str):
        return None if s.lower() in ("none", "null") else kind(s)

    parse.__name__ = kind.__name__
    return parse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE.yaml", help="RunConfig fields from a YAML file (flags override it)")
    p.add_argument("--results", metavar="ROOT", help="results root: the row goes to ROOT/runs/ "
                   "(default: $AUGBENCH_RESULTS or ./results)")
    p.add_argument("--ckpt-dir", metavar="DIR", help="checkpoint folder (default: ROOT/checkpoints/<run_id>)")
    p.add_argument("--sweep", help="sweep name recorded in the row")
    p.add_argument("--force", action="store_true", help="train again, from scratch, a run whose row is done")
    from augbench.config import config_comments, field_choices, field_help

    hints = typing.get_type_hints(RunConfig)
    comments, choices = config_comments(), field_choices()  # what each field is: its comment in config.py
    g = p.add_argument_group("run settings (RunConfig fields; default: the --config file, else the one shown; "
                             "R: set by the recipe unless given; `none` for an optional value)")
    for f in dataclasses.fields(RunConfig):
        flag, hint = "--" + f.name.replace("_", "-"), hints[f.name]
        args = typing.get_args(hint)
        help_ = field_help(f.name, f.default, comments, choices)
        metavar = "N_PER_CLASS" if f.name in ("subset", "eval_subset") else (
            f.name.upper() if f.name in choices else None)
        if f.name == "policy":
            g.add_argument(flag, dest=f.name, default=argparse.SUPPRESS,
                           help="a named policy (see `augbench policies`) or a policy YAML file "
                                f"[default: {f.default}]")
        elif hint is bool or (bool in args):
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                           help=help_)
        elif f.name == "vicreg_weights":
            g.add_argument(flag, dest=f.name, type=float, nargs=3, metavar=("INV", "VAR", "COV"),
                           default=argparse.SUPPRESS, help=help_)
        else:
            kind = next((a for a in (int, float, str) if hint is a or a in args), str)
            g.add_argument(flag, dest=f.name, type=_none_or(kind) if type(None) in args else kind,
                           default=argparse.SUPPRESS, metavar=metavar, help=help_)


def config_from_args(args: argparse.Namespace) -> RunConfig:

    from augbench.augment.policy import Policy

    d: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        d = read_yaml(path, "config file", ConfigError) or {}
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a mapping of RunConfig fields")
    for f in dataclasses.fields(RunConfig):
        if hasattr(args, f.name):
            d[f.name] = getattr(args, f.name)
    if isinstance(d.get("vicreg_weights"), list):
        d["vicreg_weights"] = tuple(d["vicreg_weights"])
    pol = d.get("policy")
    if isinstance(pol, str) and pol.endswith((".yaml", ".yml")):
        d["policy"] = Policy.from_yaml(pol).to_dict()  # the row holds the spec, not a path
    return RunConfig.from_dict(d, source=str(args.config) if getattr(args, "config", None) else "command line")


STOPPED = 3  # exit status of `augbench train` stopped by SIGUSR1 after saving a checkpoint
BUSY = 4  # exit status when another live process trains the run (its lock is held)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    distributed.init_from_env()
    store = RunStore.at(args.results)
    if hasattr(signal, "SIGUSR1"):  # `sweep run --hard-stop`: save at the next step and stop
        signal.signal(signal.SIGUSR1, lambda *_: checkpoint.request_checkpoint())
    old = store.read_row(cfg.run_id)
    if old is not None and old["status"] == DONE and not args.force:
        print(f"{cfg.run_id} is already done ({store.row_path(cfg.run_id)}): kept; --force trains it again")
        return 0
    try:
        row = run_config(cfg, results_dir=store.runs, ckpt_dir=args.ckpt_dir, sweep=args.sweep, force=args.force)
    except checkpoint.Preempted as e:
        print(f"{cfg.run_id} stopped: {e}", flush=True)
        return STOPPED
    except RunLocked as e:
        print(f"augbench train: {e}", file=sys.stderr, flush=True)
        return BUSY
    if distributed.rank() != 0:
        return 0
    m, t = row.get("metrics", {}), row.get("timings", {})
    parts = [f"{k}={m[k]:.2f}" for k in ("knn_top1", "knn_top1_projector", "linear_top1", "finetune_top1",
                                        "knn_top1_random_init", "final_loss") if k in m]
    if "train_s" in t:
        parts.append(f"train_s={t['train_s']:.1f} aug_fraction={t['aug_fraction']:.2f}")
    print(f"{row['run_id']} {row['status']} {cfg.method}/{cfg.policy_name} " + " ".join(parts)
          + (f" error={row['error'].splitlines()[0]}" if row.get("error") else ""))
    return 0 if row["status"] == DONE else 1
