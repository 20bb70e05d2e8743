"""What is missing: runs a sweep expected but has no `done` row for, (method x policy x seed) holes in the
grid the rows themselves span, ablations without their `full` baseline, and failed or running rows."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from analysis import stats as S


def not_done(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty or "status" not in df:
        return df.iloc[0:0]
    return df[df["status"] != "done"]


def sweep_gaps(df: pd.DataFrame, runs_root: Path) -> list[dict]:
    """Per sweep named in the rows: expected runs (from the sweep as run, results/sweeps/<name>/sweep.yaml,
    else sweeps/<name>.yaml) without a done row. A sweep that cannot be expanded says why, and whether all of
    its rows were imported (made elsewhere: its file need not be here)."""
    if df.empty or "sweep" not in df:
        return []
    from augbench.sweeps import schema as sw  # sweep files are config, not training code

    done = set(df.loc[df["status"] == "done", "run_id"])
    status = dict(zip(df["run_id"], df["status"]))
    out = []
    for name in sorted(n for n in df["sweep"].dropna().unique() if isinstance(n, str)):
        snap = runs_root.parent / "sweeps" / name / "sweep.yaml"
        try:
            if snap.exists():
                import yaml

                s = sw.sweep_from_dict(yaml.safe_load(snap.read_text()), source=str(snap))
            else:
                s = sw.load_sweep(name)
            cfgs = sw.expand(s)
        except Exception as e:  # a renamed or edited sweep file must not stop the report
            rows = df[df["sweep"] == name]
            imported = "imported" in rows and bool(rows["imported"].fillna(False).astype(bool).all())
            out.append({"sweep": name, "error": f"cannot expand: {e}", "imported": imported})
            continue
        miss = [c for c in cfgs if c.run_id not in done]
        done_here = len(cfgs) - len(miss)
        elsewhere = _done_elsewhere(runs_root, [c.run_id for c in miss])  # run id -> the other results root
        miss = [c for c in miss if c.run_id not in elsewhere]
        source = f"snapshot sweeps/{name}/sweep.yaml" if snap.exists() else f"sweeps/{name}.yaml"
        extra = _distinguishing(cfgs)
        out.append({"sweep": name, "source": source, "expected": len(cfgs), "done": done_here,
                    "elsewhere": dict(Counter(elsewhere.values())),
                    "missing": [f"{c.method} / {c.policy_name} / {c.backbone} / seed {c.seed}"
                                + "".join(f", {k}={getattr(c, k)}" for k in extra[c.run_id])
                                + f" ({status.get(c.run_id, 'no row')})" for c in miss]})
    return out


def _done_elsewhere(runs_root: Path, run_ids: list[str]) -> dict[str, str]:
    """Of `run_ids`, those with a done row in another results root beside this one (<parent>/<name>/runs/,
    such as results/cpu-scale/runs/ of a calibration sweep): run id -> that folder, as "results/cpu-scale/runs"."""
    out: dict[str, str] = {}
    parent = Path(runs_root).resolve().parent
    others = [d for d in sorted(parent.glob("*/runs")) if d.resolve() != Path(runs_root).resolve()]
    for rid in run_ids:
        for d in others:
            try:
                if json.loads((d / f"{rid}.json").read_text()).get("status") == "done":
                    out[rid] = f"{parent.name}/{d.relative_to(parent).as_posix()}"
                    break
            except (OSError, ValueError, AttributeError):
                continue
    return out


NAMED = ("method", "policy", "backbone", "seed")  # every missing run's line names these


def _distinguishing(cfgs) -> dict[str, list[str]]:
    """run id -> the fields, beyond NAMED, whose value tells this run from the sweep's other runs with the
    same NAMED values (a calibration sweep's `include` entries vary width, lr, ...), so that no two lines
    of the missing list read alike. A value its recipe filled in is not shown: its `recipe` is."""
    from augbench.config import EXECUTION_FIELDS, RECIPE_FIELDS

    groups: dict[tuple, list] = {}
    for c in cfgs:
        groups.setdefault(tuple(str(getattr(c, k)) for k in NAMED), []).append(c)
    out = {}
    for group in groups.values():
        dicts = [c.to_dict(expand_policy=False) for c in group]
        varying = [k for k in dicts[0] if k not in NAMED and k not in EXECUTION_FIELDS
                   and len({repr(d.get(k)) for d in dicts}) > 1]
        for c in group:
            out[c.run_id] = [k for k in varying if k not in RECIPE_FIELDS or k in c.given]
    return out


def grid_holes(df: pd.DataFrame) -> pd.DataFrame:
    """(method, policy, seeds) absent from a group (same backbone/dataset/epochs/design, run by one sweep)
    although the method, the policy and the seeds each appear in that group. A method run with a
    non-default momentum setting counts as its own method ("byol (momentum off)") and is expected only
    under the policies it ran with (those seeds it lacks are holes), so momentum ablations do not open
    holes. The rows of different sweeps span no grid together: a sweep that runs SimCLR alone under new
    policies, beside a grid of three methods, opens no hole for the other two (each sweep's own expected
    runs are counted against its file above)."""
    d = S.done_rows(df)
    cols = ["group", "method", "policy", "seeds", "rows"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d = d.assign(variant=[m if mo == (m == "byol") else f"{m} (momentum {'on' if mo else 'off'})"
                          for m, mo in zip(d["method"], d["momentum"])])
    keys = [c for c in S.cell_cols(d) if c not in ("method", "momentum")]
    if "sweep" in d and d["sweep"].notna().any():
        d = d.assign(sweep=d["sweep"].astype(object).where(d["sweep"].notna(), ""))
        keys.append("sweep")
    status = {(r.get("method"), r.get("policy"), r.get("seed")): r["status"]
              for r in not_done(df).to_dict("records")}
    out = []
    for k, g in (d.groupby(keys, dropna=False) if keys else [((), d)]):
        have = set(zip(g["variant"], g["policy"], g["seed"]))
        key = dict(zip(keys, k))
        sweep = key.pop("sweep", "")
        label = S.cell_label(key, sep=" / ") + (f" (sweep {sweep})" if sweep else "")
        for v in sorted(g["variant"].unique()):
            gv = g[g["variant"] == v]
            method = gv["method"].iloc[0]
            ablation = v != method  # a non-default momentum setting
            for p in sorted((gv if ablation else g)["policy"].unique()):
                seeds = [int(s) for s in sorted(g["seed"].unique()) if (v, p, s) not in have]
                if seeds:
                    rows = sorted({status.get((method, p, s), "no row") for s in seeds})
                    out.append({"group": label, "method": v, "policy": p, "seeds": ",".join(map(str, seeds)),
                                "rows": "/".join(rows)})
    return pd.DataFrame(out, columns=cols)


def missing_baselines(df: pd.DataFrame, baseline: str = S.BASELINE) -> list[str]:
    """Cells with ablation runs but no done baseline run, or seeds the baseline lacks."""
    d = S.done_rows(df)
    if d.empty:
        return []
    keys = S.cell_cols(d)
    out = []
    for k, g in d.groupby(keys, dropna=False):
        label = S.cell_label(dict(zip(keys, k)), sep=" / ")
        others = g[g["policy"] != baseline]
        if others.empty:
            continue
        base_seeds = set(g.loc[g["policy"] == baseline, "seed"])
        if not base_seeds:
            out.append(f"{label}: no `{baseline}` run, so no drop can be computed for "
                       f"{', '.join(sorted(others['policy'].unique()))}")
            continue
        lacking = sorted(set(others["seed"]) - base_seeds)
        if lacking:
            out.append(f"{label}: `{baseline}` lacks seed(s) {', '.join(map(str, map(int, lacking)))} that "
                       f"ablations ran with; those runs are left out of the paired drops")
    return out
