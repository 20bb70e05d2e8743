"""Is the scale good enough to rank augmentations, and what did it cost: per cell, how far `full` is above
the random-init encoder (kNN, per seed and the mean), and per sweep the train + evaluation time its rows
record and the wall time of its sweep sessions (results/sweeps/<name>/sessions.jsonl)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis import stats as S


def full_gains(done: pd.DataFrame, metric: str = "knn_top1") -> pd.DataFrame:
    """Per cell: `full`'s kNN minus the same run's random-init kNN, per seed, with the mean and the smallest."""
    cols = ["cell", "n", "mean", "min", "per_seed"]
    if done.empty or metric not in done or S.RANDOM_INIT not in done:
        return pd.DataFrame(columns=cols)
    d = done[done["policy"] == S.BASELINE].dropna(subset=[metric, S.RANDOM_INIT])
    keys = S.cell_cols(d)
    out = []
    for k, g in d.groupby(keys, dropna=False):
        g = g.sort_values("seed")
        gain = (g[metric] - g[S.RANDOM_INIT]).to_numpy(float)
        label = S.cell_label(dict(zip(keys, k if isinstance(k, tuple) else (k,))), sep=" / ").split("\n")[0]
        out.append({"cell": label, "n": len(gain), "mean": gain.mean(), "min": gain.min(),
                    "per_seed": ", ".join(f"{int(s)}: {v:+.1f}" for s, v in zip(g["seed"], gain))})
    return pd.DataFrame(out, columns=cols)


def sweep_costs(done: pd.DataFrame, runs_root: Path) -> list[dict]:
    """Per sweep with done rows: their summed train + eval seconds, and the wall seconds and runs done of
    the sweep's recorded sessions (none for rows made one by one or elsewhere)."""
    if done.empty or "sweep" not in done:
        return []
    out = []
    for name, g in done.groupby("sweep"):
        busy = float(g.get("train_s", pd.Series(dtype=float)).fillna(0).sum()
                     + g.get("eval_s", pd.Series(dtype=float)).fillna(0).sum())
        wall, runs, parallel = 0.0, 0, set()
        path = Path(runs_root).parent / "sweeps" / str(name) / "sessions.jsonl"
        if path.is_file():
            for line in path.read_text().splitlines():
                try:
                    s = json.loads(line)
                except ValueError:
                    continue
                wall += float(s.get("wall_s") or 0)
                runs += int(s.get("done") or 0)
                parallel.add(s.get("parallel"))
        out.append({"sweep": name, "rows": len(g), "busy_s": busy, "wall_s": wall, "session_runs": runs,
                    "parallel": sorted(p for p in parallel if p is not None)})
    return out


def scale_lines(done: pd.DataFrame, runs_root: Path, metric: str = "knn_top1") -> list[str]:
    gains = full_gains(done, metric)
    costs = [c for c in sweep_costs(done, runs_root) if c["busy_s"] > 0 or c["session_runs"]]  # timed rows only
    if gains.empty and not costs:
        return []
    L = ["## Scale", ""]
    if not gains.empty:
        L += ["How far `full` is above the random-init encoder (kNN top-1 points, the same run's untrained "
              "network; per seed and the mean):", ""]
        L += ["| cell | n | mean | smallest | per seed |", "|---|---|---|---|---|"]
        L += [f"| {r.cell} | {r.n} | {r.mean:+.1f} | {r.min:+.1f} | {r.per_seed} |" for r in gains.itertuples()]
        L.append("")
    if costs:
        L.append("What the rows cost (train + evaluation seconds each row records, summed; and the wall time of "
                 "the sweep's recorded sessions, which ran runs side by side):")
        for c in costs:
            line = f"- `{c['sweep']}`: {c['rows']} done rows, {c['busy_s'] / 3600:.2f} h of train + evaluation"
            if c["session_runs"]:
                line += (f"; its sessions ran {c['session_runs']} runs in {c['wall_s'] / 3600:.2f} h of wall time"
                         f" ({' / '.join(map(str, c['parallel']))} at once)")
            L.append(line)
        L.append("")
    return L
