"""Tables from result rows, each as Markdown and LaTeX under results/tables/ (formatting: analysis.tablefmt).

Intervals are 95 % Student-t intervals over seeds ("–" with one seed); p-values are two-sided paired
t-tests over seeds, Holm-adjusted across the ablations of a cell where the column says so; the crop verdict tables' p
is one-sided (unadjusted IUT for a yes, Holm-adjusted for a no)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import labels, published
from analysis import stats as S
from analysis import verdicts as V
from analysis.tablefmt import Table, fmt_p, write

# our policies that have a counterpart in the published removal tables
COMPARABLE = ("no_flip", "no_blur", "no_color", "no_jitter", "no_gray", "crop_only", "crop_flip_only",
              "crop_color_only", "crop_blur_only")
SIDE_BY_SIDE = ("knn_top1", "linear_top1")
SHORT = {"knn_top1": "kNN", "linear_top1": "linear"}
CI_NOTE = "95 % CI: Student-t interval over seeds ('–' with one seed)"


def _ci(frame: pd.DataFrame) -> list:
    return [(lo, hi) if lo == lo else np.nan for lo, hi in zip(frame["ci_lo"], frame["ci_hi"])]


def _keys(frame: pd.DataFrame) -> list[str]:
    return S.key_cols(frame) if "policy" in frame else [c for c in S.CELL if c in frame]


def summary(df, metric) -> Table:
    s = S.summarize(df, metric)
    keys = _keys(s)
    f = s[keys + ["policy", "n", "mean", "std"]].copy()
    f["95% CI"] = _ci(s)
    f["seeds"] = s["seeds"]
    return Table(f"summary_{metric}", f"{labels.metric(metric)} (%): mean over seeds", f,
                 f"std: sample std (ddof=1); {CI_NOTE}.")


def drops(df, metric, alpha=0.05) -> Table:
    d = S.drop_table(df, metric, alpha=alpha)
    keys = _keys(d)
    f = d[keys + ["policy", "n", "mean"]].rename(columns={"mean": "drop"})
    f["95% CI"], f["p"], f["p (Holm)"], f["seeds"] = _ci(d), d["p"], d["p_holm"], d["seeds"]
    return Table(f"drops_{metric}", f"Drop in {labels.metric(metric)} vs full, paired by seed", f,
                 f"drop = full - policy in points (positive: the policy is worse); n: paired seeds; {CI_NOTE}; "
                 "p: two-sided paired t-test; p (Holm): adjusted across the ablations of the cell.")


def ranking(df, metric, alpha=0.05) -> Table:
    r = S.ranking(S.drop_table(df, metric, alpha=alpha))
    keys = list(r.columns[: list(r.columns).index("rank")])
    f = r[keys + ["rank", "augmentation", "n", "mean"]].rename(columns={"mean": "drop"})
    f["95% CI"] = _ci(r)
    return Table(f"ranking_{metric}", f"Augmentations ranked by mean drop in {labels.metric(metric)} when removed "
                 "(leave-one-out)", f, f"{CI_NOTE}.")


def verdicts(df, metric, alpha=0.05) -> Table:
    v = V.crop_verdicts(df, metric, alpha=alpha)
    keys = [c for c in v.columns if c not in V.COLUMNS]
    f = v[keys + ["verdict", "label", "n", "vs"]].rename(columns={"label": "crop most important?"})
    f["crop - vs"], f["95% CI"] = v["diff"], _ci(v)
    f["p (yes: IUT, no: Holm)"] = v["p"]
    f["seeds to decide"] = [V.needed_text(n) if a == "undecided" else "" for a, n in zip(v["answer"], v["needed"])]
    f["evidence"] = v["reason"]
    return Table(f"verdicts_{metric}", f"Is crop the most important augmentation? ({labels.metric(metric)})", f,
                 "leave-one-out: crop's drop above every other single removal's; only-one: crop_only above every "
                 f"other <aug>_only arm. yes: every one-sided paired t-test (crop vs one other) rejects at "
                 f"alpha={alpha}, unadjusted (intersection-union test); no: another arm is significantly above crop "
                 f"(one-sided, Holm-adjusted across the other arms); undecided otherwise, and under {V.MIN_SEEDS} "
                 f"paired seeds; not testable: an expected arm is missing ({V.EXPECTED_ARMS}) or no seed pairs the "
                 "arms. vs: the runner-up (yes), the comparison furthest from deciding (undecided) or the arm above "
                 f"crop (no); crop - vs: mean paired difference in points with its {CI_NOTE}; the sd is floored at the "
                 "accuracy's resolution (100 / test images) and means closer than that are ties (=). seeds to "
                 "decide: paired seeds at which that comparison would reach p < alpha at the observed difference and "
                 "sd (– when it points the other way).")


def ablation(df, alpha=0.05) -> list[Table]:
    """Per cell: kNN and linear side by side, the random-init encoder as a reference line, the kNN gain
    over it, and the drops vs full with their t-intervals and Holm-adjusted p."""
    d = S.done_rows(df)
    if d.empty:
        return []
    keys = S.cell_cols(d)
    parts = []
    for m in (x for x in SIDE_BY_SIDE if x in d and d[x].notna().any()):
        s, t = S.summarize(df, m), S.drop_table(df, m, alpha=alpha)
        s = s[keys + ["policy", "n", "mean"]].rename(columns={"n": f"n {m}", "mean": SHORT[m]})
        t = t.assign(ci=_ci(t))[keys + ["policy", "mean", "ci", "p_holm"]].rename(columns={
            "mean": f"{SHORT[m]} drop", "ci": f"{SHORT[m]} drop 95% CI", "p_holm": f"{SHORT[m]} p (Holm)"})
        parts.append(s.merge(t, on=keys + ["policy"], how="left"))
        if m == "knn_top1" and S.RANDOM_INIT in d:
            g = S.gain_over_random(df)[keys + ["policy", "mean"]].rename(columns={"mean": "kNN above random"})
            parts[-1] = parts[-1].merge(g, on=keys + ["policy"], how="left")
    if not parts:
        return []
    f = parts[0]
    for p in parts[1:]:
        f = f.merge(p, on=keys + ["policy"], how="outer")
    f.insert(len(keys) + 1, "n", f[[c for c in f.columns if c.startswith("n ")]].max(axis=1).astype(int))
    f = f.drop(columns=[c for c in f.columns if c.startswith("n ")])
    out = []
    for k, g in f.groupby(keys, dropna=False):
        key = dict(zip(keys, k))
        g = g.sort_values("policy", key=lambda s: s.map(_policy_order)).drop(columns=keys)
        cell = S.in_cell(d, key)
        if S.RANDOM_INIT in cell and cell[S.RANDOM_INIT].notna().any():
            r = cell.groupby("seed")[S.RANDOM_INIT].mean()
            g = pd.concat([pd.DataFrame([{"policy": "random-init encoder", "n": len(r), "kNN": float(r.mean()),
                                          "kNN above random": 0.0}]), g], ignore_index=True)
        g = g[[c for c in _ablation_cols() if c in g.columns]]
        # the core fields by value, any other field that splits the cell by name: ..._12_momentum=False
        slug = re.sub(r"[^A-Za-z0-9.=-]+", "_", "_".join(str(v) if c in S.CELL else f"{c}={v}"
                                                          for c, v in key.items())).strip("_")
        out.append(Table(f"ablation_{slug}", f"Ablations, kNN and linear: {labels.cell(key)}", g, _ABLATION_NOTE))
    return out


def _ablation_cols() -> list[str]:
    cols = ["policy", "n"]
    for m in SIDE_BY_SIDE:
        s = SHORT[m]
        cols += [s] + (["kNN above random"] if m == "knn_top1" else []) + [f"{s} drop", f"{s} drop 95% CI",
                                                                           f"{s} p (Holm)"]
    return cols


def _policy_order(p: str) -> tuple:
    p = str(p)
    return (0 if p == S.BASELINE else 1 if p.startswith("no_") else 2 if V.ONLY_RE.match(p) else 3, p)


_ABLATION_NOTE = (f"Accuracy in % (mean over n seeds); drop = full - policy in points, paired by seed; {CI_NOTE}; "
                  "p (Holm): two-sided paired t-test, Holm-adjusted across the ablations of this cell, per metric. "
                  "kNN above random: kNN minus the same run's random-init encoder kNN. The random-init encoder line "
                  "is the untrained network (kNN only; no linear probe is measured for it).")


def paper_vs_ours(df, metric, alpha=0.05) -> Table:
    """Our drops beside the published removal drops (BYOL Table 17, MIFA-Lab CIFAR-10), with Spearman."""
    d = S.drop_table(df, metric, alpha=alpha)
    d = d[d["policy"].isin(COMPARABLE)]
    sources = published.removal_sources()
    pub = {desc: published.removal_drops(pre, m) for pre, m, desc in sources}
    short = {desc: f"{pre} {m}" for pre, m, desc in sources}
    keys = S.key_cols(d)
    rows, rhos = [], []
    for k, g in d.groupby(keys, dropna=False) if not d.empty else []:
        label = S.cell_label(dict(zip(keys, k if isinstance(k, tuple) else (k,))), sep=" / ")
        ours = dict(zip(g["policy"], g["mean"]))
        for r in g.assign(ci=_ci(g)).sort_values("policy", key=lambda s: s.map(COMPARABLE.index)).itertuples():
            rows.append({"cell": label, "policy": r.policy, "ours": r.mean, "ours 95% CI": r.ci,
                         **{short[s]: pub[s].get(r.policy, np.nan) for s in pub}})
        for s in pub:
            rho = S.spearman(ours, pub[s])
            rhos.append(f"{label} vs {short[s]}: " + (f"rho={rho['rho']:.2f}, p={fmt_p(rho['p'])}, n={rho['n']}"
                                                     if rho["rho"] == rho["rho"] else f"{rho['n']} shared (need 3)"))
    note = (f"Drops in points (full - policy), ours in {metric}. Published: " +
            "; ".join(f"{short[s]} = {s}" for s in pub) + ". Published figures are references copied from the "
            "papers (analysis/published.csv), not our runs; their datasets, epochs and protocols differ from ours, "
            "so compare ranks, not values. Spearman rank correlation: " + ("; ".join(rhos) or "none") + ".")
    return Table(f"paper_vs_ours_{metric}", "Paper vs ours: drop when an augmentation is removed",
                 pd.DataFrame(rows), note)


def make_all(df: pd.DataFrame, out_dir, metrics=SIDE_BY_SIDE, alpha: float = 0.05) -> list[Table]:
    out_dir = Path(out_dir)
    done = S.done_rows(df)
    out = ablation(df, alpha)
    for m in metrics:
        if m not in done or done[m].notna().sum() == 0:
            continue
        out += [summary(df, m), drops(df, m, alpha), ranking(df, m, alpha), verdicts(df, m, alpha),
                paper_vs_ours(df, m, alpha)]
    return [write(t, out_dir) for t in out]
