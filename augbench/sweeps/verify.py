"""`augbench rows`: `verify` here, `import` in augbench.store.importing.

`augbench rows verify [RUN_ID ... | --sample N] [--results ROOT]`: retrain committed rows from their
recorded configs and say whether each one's metrics and weights hash come out exactly the same.
It trains (augbench.run.run_config), so it sits with the sweeps, above the run; importing rows only
reads and writes the store.

A CPU run is bitwise deterministic for a given code, torch build and thread count, so a row made here
can be re-derived by anyone: the run is trained again in a temporary results root (the random-init kNN
too: nothing is read from the store's caches), with the row's config as recorded, execution fields
included (its thread count), and compared field by field. Nothing under the results root is written.
When the code is not at the row's recorded commit, the report says so: a mismatch may then come
from a change of code, not of machine. Exit status: 0 when every run matched, 1 otherwise.
"""
from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

from augbench.errors import UserError, common_options
from augbench.store import importing
from augbench.store.rows import DONE, RunStore

COMPARED = "weights_sha256"  # besides every metric


class VerifyError(UserError):
    pass


def add_parser(sub, common) -> None:
    v = sub.add_parser("verify", help="retrain rows from their recorded config; exact match of metrics and weights?",
                       parents=[common])
    v.add_argument("run_ids", nargs="*", metavar="RUN_ID", help="rows to verify (default: --sample)")
    v.add_argument("--sample", type=int, metavar="N", help="N done rows picked at random (seeded by --seed)")
    v.add_argument("--seed", type=int, default=None, help="seed of the --sample pick (default: a fresh one)")
    v.add_argument("--results", metavar="ROOT", help="results root (default: $AUGBENCH_RESULTS or ./results)")


def pick(store: RunStore, run_ids: list[str], sample: int | None, seed: int | None) -> list[dict[str, Any]]:
    if run_ids and sample:
        raise VerifyError("give RUN_IDs or --sample N, not both")
    if not run_ids and not sample:
        raise VerifyError("nothing to verify: give RUN_IDs or --sample N")
    if run_ids:
        rows = []
        for rid in run_ids:
            row = store.read_row(rid)
            if row is None:
                raise VerifyError(f"{store.row_path(rid)}: no such row")
            rows.append(row)
    else:  # only rows this machine can re-derive: made here (not imported), on a device type it has
        done = sorted((r for r in store.iter_rows() if r.get("status") == DONE and reproducible_here(r)),
                      key=lambda r: r["run_id"])
        if sample < 1 or sample > len(done):
            raise VerifyError(f"--sample {sample}: {len(done)} done row(s) under {store.runs} made on a device "
                              f"this machine has")
        rows = random.Random(seed).sample(done, sample)
    for row in rows:
        if row.get("status") != DONE:
            raise VerifyError(f"{store.row_path(row['run_id'])}: status {row.get('status')!r}; only done rows are verified")
        if row.get("imported"):
            print(f"{row['run_id']}: imported from {row['imported'].get('source')}; made on "
                  f"{row.get('env', {}).get('device_name')}: only a run on the same kind of device can match bit for bit")
    return rows


def reproducible_here(row: dict[str, Any]) -> bool:
    """Not imported, and made on a device type this machine has (a CUDA row needs CUDA)."""
    import torch

    device = str(row.get("env", {}).get("device", "cpu"))
    return not row.get("imported") and (not device.startswith("cuda") or torch.cuda.is_available())


def config_of(row: dict[str, Any]):
    """The row's RunConfig as recorded; it must hash to the row's run id."""
    from augbench.config import RunConfig

    threads = row["config"].get("num_threads") or row.get("env", {}).get("num_threads")
    cfg = RunConfig.from_concrete({**row["config"], "progress": False, "num_threads": threads},
                              source=f"row {row['run_id']}")
    if cfg.run_id != row["run_id"]:
        raise VerifyError(f"row {row['run_id']}: its config hashes to {cfg.run_id} with this code (a config "
                          f"field changed since the row was made); it cannot be retrained as recorded")
    return cfg


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the recorded row and the retrained one: every metric and the weights."""
    out = []
    if new.get("status") != DONE:
        return [f"status {new.get('status')}: {str(new.get('error') or '').splitlines()[:1]}"]
    for k in sorted(set(old.get("metrics", {})) | set(new.get("metrics", {}))):
        a, b = old.get("metrics", {}).get(k), new.get("metrics", {}).get(k)
        if a != b:
            out.append(f"{k}: recorded {a!r}, now {b!r}")
    if old.get(COMPARED) != new.get(COMPARED):
        out.append(f"{COMPARED}: recorded {str(old.get(COMPARED))[:12]}, now {str(new.get(COMPARED))[:12]}")
    return out


def machine_notes(row: dict[str, Any]) -> list[str]:
    """Where this machine differs from the row's in what CPU bits depend on: the torch build and the
    CPU's vector ISA (oneDNN picks its kernels by it). Said before retraining, so that a mismatch
    can be read; rows from before `cpu_isa` was recorded say nothing of it."""
    import torch

    from augbench.env import cpu_isa

    env, out, isa = row.get("env", {}), [], cpu_isa()
    if env.get("torch") and env["torch"] != torch.__version__:
        out.append(f"torch here is {torch.__version__}, the row was made with {env['torch']}: a mismatch may "
                   f"come from it")
    if str(env.get("device", "cpu")) == "cpu" and env.get("cpu_isa") and env["cpu_isa"] != isa:
        out.append(f"this CPU's ISA is {isa}, the row was made on {env['cpu_isa']}: oneDNN picks other "
                   f"kernels, so a mismatch may come from it")
    return out


def verify_row(row: dict[str, Any], commit: str) -> list[str]:
    from augbench.run import run_config

    cfg = config_of(row)
    made_at = row.get("env", {}).get("git_commit")
    if made_at != commit:
        print(f"{row['run_id']}: the code is at {commit}, the row was made at {made_at}: a mismatch may come "
              f"from the code changed since")
    for note in machine_notes(row):
        print(f"{row['run_id']}: {note}")
    with tempfile.TemporaryDirectory(prefix="augbench-verify-") as tmp:
        new = run_config(cfg, results_dir=Path(tmp) / "runs")
    return differences(row, new)


# ---------------------------------------------------------------------------- `augbench rows`
def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="rows_cmd", metavar="ACTION", required=True)
    importing.add_parser(sub, common_options(leaf=True))
    add_parser(sub, common_options(leaf=True))


def main(args: argparse.Namespace) -> int:
    if args.rows_cmd == "import":
        return importing.main(args)
    return verify(args)


def verify(args: argparse.Namespace) -> int:
    """`augbench rows verify`: exit status 0 when every row matched exactly, 1 otherwise."""
    from augbench.env import git_commit

    store = RunStore.at(args.results)
    rows = pick(store, list(args.run_ids), args.sample, args.seed)
    commit = git_commit()
    bad = 0
    for row in rows:
        diffs = verify_row(row, commit)
        m = row["metrics"]
        if diffs:
            bad += 1
            print(f"{row['run_id']} MISMATCH ({row['method']}/{row['config']['policy'].get('name', '?')} "
                  f"seed {row['seed']}): " + "; ".join(diffs))
        else:
            print(f"{row['run_id']} match ({row['method']} seed {row['seed']}): knn_top1 {m.get('knn_top1')}, "
                  f"weights {str(row.get(COMPARED))[:12]} exactly as recorded")
    print(f"rows verify: {len(rows) - bad} of {len(rows)} matched exactly" + (f"; {bad} did not" if bad else ""))
    return 1 if bad else 0
