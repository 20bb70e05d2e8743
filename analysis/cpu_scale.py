"""docs/cpu-scale.md from the calibration rows (sweeps/cpu_scale*.yaml, results root results/cpu-scale):
per setting, the seconds an epoch takes on this machine, kNN top-1 of `full` and of the same encoder at
random init, the gain, and the seeds. Generated, never edited by hand:

    python -m analysis.cpu_scale [--results results/cpu-scale] [--out docs/cpu-scale.md]

A setting is a row's whole config less the seed and the execution fields; rows of several seeds of one
setting are averaged (the seeds are listed). s/epoch is the median epoch of each run (robust to an
epoch slowed by other work on the machine), averaged over seeds.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from augbench.config import EXECUTION_FIELDS

SHOWN = ("method", "dataset", "backbone", "cifar_stem", "width", "image_size", "subset", "epochs", "batch_size",
         "optimizer", "lr", "warmup_epochs", "tau_base", "proj_depth", "proj_hidden", "proj_dim", "proj_norm", "pred_hidden")
HEADER = ("| # | method | data | backbone | stem | width | px | img/class | epochs | batch | opt | lr | warm-up | τ "
          "| projector | pred | other | s/epoch | train+eval s | kNN full | kNN random | gain | linear | seeds | run ids |")
# not in "other": the seed, the policy (always `full`), what follows the data set, and the recipe's name
# (its values are what the columns show)
NOT_OTHER = frozenset({"seed", "policy", "eval_subset", "recipe", *EXECUTION_FIELDS})


def settings(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per setting (config less seed and execution fields), in the order first run."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r.get("started_at") or "", r["run_id"])):
        if r.get("status") != "done":
            continue
        key = json.dumps({k: v for k, v in r["config"].items() if k != "seed" and k not in EXECUTION_FIELDS},
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(r)
    out = []
    for rs in groups.values():
        c, m = rs[0]["config"], [r["metrics"] for r in rs]
        mean = lambda k: statistics.fmean(x[k] for x in m)  # noqa: E731
        out.append({"config": c, "seeds": sorted(r["seed"] for r in rs), "run_ids": [r["run_id"] for r in rs],
                    "epoch_s": statistics.fmean(statistics.median(h["epoch_s"] for h in r["history"]) for r in rs),
                    "run_s": statistics.fmean(r["timings"]["train_s"] + r["timings"]["eval_s"] for r in rs),
                    "knn": mean("knn_top1"), "random": mean("knn_top1_random_init"),
                    "gain": statistics.fmean(x["knn_top1"] - x["knn_top1_random_init"] for x in m),
                    "linear": mean("linear_top1") if all("linear_top1" in x for x in m) else None,
                    "commit": rs[0].get("env", {}).get("git_commit"),
                    "threads": rs[0].get("env", {}).get("num_threads") or c.get("num_threads")})
    return out


def _proj(c: dict[str, Any]) -> str:
    norm = "" if c.get("proj_norm", "bn") == "bn" else ", no BN"
    return f"{c['proj_depth']}×{c['proj_hidden']}→{c['proj_dim']}{norm}"


def others(entries: list[dict[str, Any]]) -> list[str]:
    """Per entry, the fields outside the columns in which it differs from most settings of its method
    (`weight_decay=0.0001`), so that no two rows of the table look alike but differ unseen."""
    from collections import Counter

    keys = sorted({k for e in entries for k in e["config"]} - set(SHOWN) - NOT_OTHER)
    out = []
    for e in entries:
        same = [x["config"] for x in entries if x["config"]["method"] == e["config"]["method"]]
        diff = []
        for k in keys:
            common = Counter(json.dumps(c.get(k), sort_keys=True, default=str) for c in same).most_common(1)[0][0]
            if json.dumps(e["config"].get(k), sort_keys=True, default=str) != common:
                diff.append(f"{k}={e['config'].get(k, 'default')}")
        out.append(", ".join(diff) or "–")
    return out


def table(entries: list[dict[str, Any]]) -> str:
    lines = [HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for i, (e, other) in enumerate(zip(entries, others(entries)), 1):
        c = e["config"]
        tau = f"{c['tau_base']:g}" if c["method"] == "byol" else "–"
        pred = str(c["pred_hidden"]) if c["method"] in ("byol", "simsiam") else "–"
        lin = f"{e['linear']:.1f}" if e["linear"] is not None else "–"
        vit = c.get("backbone", "resnet18").startswith("vit")  # stem and width are ResNet fields
        stem, width = ("–", "–") if vit else ("CIFAR" if c["cifar_stem"] else "ImageNet", c["width"])
        lines.append(
            f"| {i} | {c['method']} | {c['dataset']} | {c.get('backbone', 'resnet18')} | {stem} | {width} "
            f"| {c['image_size']} | {c['subset'] or 'all'} | {c['epochs']} | {c['batch_size']} | {c['optimizer']} "
            f"| {c['lr']:g} | {c['warmup_epochs']} | {tau} | {_proj(c)} | {pred} | {other} | {e['epoch_s']:.1f} "
            f"| {e['run_s']:.0f} | {e['knn']:.1f} | {e['random']:.1f} | **{e['gain']:+.1f}** | {lin} "
            f"| {','.join(map(str, e['seeds']))} | {' '.join(r[:8] for r in e['run_ids'])} |")
    return "\n".join(lines)


def read_rows(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((root / "runs").glob("*.json"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results/cpu-scale", help="results root of the calibration rows")
    p.add_argument("--out", default="docs/cpu-scale.md")
    p.add_argument("--intro", default="docs/cpu-scale.intro.md",
                   help="hand-written text put above the table (the choice and its reasons)")
    args = p.parse_args(argv)
    entries = settings(read_rows(Path(args.results)))
    intro = Path(args.intro).read_text() if Path(args.intro).is_file() else "# The CPU scale\n"
    commits = sorted({str(e["commit"]) for e in entries})
    threads = sorted({str(e["threads"]) for e in entries})
    body = (f"{intro.rstrip()}\n\n## The measured table\n\nGenerated by `python -m analysis.cpu_scale` from "
            f"{sum(len(e['seeds']) for e in entries)} rows in `{args.results}/runs/` (commits {', '.join(commits)}; "
            f"{'/'.join(threads)} thread(s) per run). kNN: top-1 %, k=200, on the test images per class of "
            f"`eval_subset`; gain = kNN of `full` − kNN of the same encoder at random init, mean over the seeds. "
            f"s/epoch: the median epoch of a run.\n\n{table(entries)}\n")
    Path(args.out).write_text(body)
    print(f"{args.out}: {len(entries)} settings")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
