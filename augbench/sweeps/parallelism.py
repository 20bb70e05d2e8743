"""`sweep run --local --parallel auto`: several runs at once on one device only where measured
sessions show that it moves more images per second.

Every local session appends its throughput to `<root>/sweeps/<name>/sessions.jsonl` (see
`LocalExecutor.record_session`), with the device and the workload (method / backbone / batch of
its runs). `auto` compares the sessions of this device and workload, from every sweep under the
results root: N runs at once are chosen only if they moved at least `GAIN` times the images/s of
one run at a time. Without a session at 1 and one at N, it is 1 (the safe default: one run uses
the device alone; a compiled, graph-captured step leaves little idle time to share). To measure,
run a sweep once with `--parallel 1` and once with `--parallel 2` (or `scripts/device/gpu_checks.sh
parallel` on a lent GPU).
"""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from statistics import mean
from typing import Iterable

GAIN = 1.1  # N at once must move 10 % more images/s than 1: below that, noise and lost isolation win


def session_device(configs: Iterable) -> str:
    """The device a session's runs train on, named as the rows name it (a GPU's model name; the
    CPU without its thread count, which the parallelism changes)."""
    import torch

    from augbench.env import device_name

    devs = {getattr(c, "device", "auto") for c in configs} or {"auto"}
    dev = sorted(devs)[0]
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev.startswith("cuda") and torch.cuda.is_available():
        return device_name(dev)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def workload(configs: Iterable) -> str:
    """What a session trains, as far as its speed goes: method / backbone / batch of its runs."""
    return ", ".join(sorted({f"{c.method}/{c.backbone}/b{c.batch_size}" for c in configs}))


def sessions(root: Path) -> list[dict]:
    """Every recorded local session under the results root (unreadable lines skipped)."""
    out = []
    for f in sorted(Path(root).glob("sweeps/*/sessions.jsonl")):
        for line in f.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def choose(root: Path, device: str, work: str) -> tuple[int, str]:
    """(runs at once, why) from the sessions of this device and workload."""
    by_n: dict[int, list[float]] = {}
    for s in sessions(root):
        if s.get("device") == device and s.get("workload") == work and s.get("done", 0) > 0 \
                and (s.get("images_per_s") or 0) > 0:
            by_n.setdefault(int(s["parallel"]), []).append(float(s["images_per_s"]))
    rate = {n: mean(v) for n, v in by_n.items()}
    where = f"on {device} for {work}"
    if 1 not in rate or len(rate) < 2:
        seen = ", ".join(f"{n} at once" for n in sorted(rate)) or "none"
        return 1, (f"no measured session at 1 and at N runs at once {where} (seen: {seen}); measure with "
                   f"--parallel 1 and --parallel 2")
    best = max(rate, key=lambda n: rate[n])
    table = ", ".join(f"{n}: {rate[n]:.0f}" for n in sorted(rate))
    if best != 1 and rate[best] >= GAIN * rate[1]:
        return best, f"{best} at once moved {rate[best] / rate[1]:.2f}x the images/s of 1 {where} ({table})"
    return 1, f"no N moved {GAIN:g}x the images/s of 1 {where} ({table})"
