"""The four claims the benchmark tests, each answered from the rows with its test and run count,
or marked not testable with what is missing. Never a verdict without data."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import published
from analysis import stats as S
from analysis.tables import fmt_p


@dataclass
class Claim:
    title: str
    status: str  # supported | not supported | mixed | undecided | not testable
    text: list[str] = field(default_factory=list)
    n_runs: int = 0
    refs: list[tuple[str, str]] = field(default_factory=list)


def paired_on(df: pd.DataFrame, metric: str, column: str, a, b) -> pd.DataFrame:
    """Pairs of runs equal in everything (cell, policy, seed) but `column` (a vs b): diff = a - b."""
    d = S.done_rows(df)
    if d.empty or metric not in d or column not in d:
        return pd.DataFrame(columns=["diff"])
    d = d.dropna(subset=[metric])
    keys = [c for c in S.cell_cols(d) if c != column] + ["policy", "seed"]
    da = d[d[column] == a].groupby(keys, dropna=False)[metric].mean()
    db = d[d[column] == b].groupby(keys, dropna=False)[metric].mean()
    j = pd.concat({"a": da, "b": db}, axis=1).dropna().reset_index()
    j["diff"] = j["a"] - j["b"]
    return j


def _t(diffs) -> str:
    r = S.paired_test(np.asarray(diffs, float), np.zeros(len(diffs)), n_boot=2000)
    return f"mean {r.mean:+.2f} points [95% CI {r.ci_lo:.2f}, {r.ci_hi:.2f}], paired t-test p={fmt_p(r.p_t)}, n={r.n}"


def _outcome(diffs, alpha: float = 0.05) -> int:
    """+1: significantly positive (paired t-test), -1: significantly negative, 0: neither or < 2 pairs."""
    p = S.ttest_p(diffs)
    return 0 if not p < alpha else (1 if np.mean(diffs) > 0 else -1)


def _combine(outcomes: list[int]) -> str:
    s = set(outcomes)
    return {frozenset({1}): "supported", frozenset({-1}): "not supported", frozenset({0}): "undecided"}.get(
        frozenset(s), "mixed")


def crop(df, metric, alpha, n_boot, seed) -> Claim:
    c = Claim("Crop is the most important augmentation", "not testable", refs=published.CLAIMS["crop"])
    v = S.verdicts(df, metric, alpha=alpha, n_boot=n_boot, seed=seed)
    if v.empty:
        c.text.append(f"No leave-one-out runs (no_*) paired with a `full` run of the same seed and a {metric} value.")
        return c
    keys = [k for k in S.cell_cols(S.done_rows(df)) if k in v.columns]
    counts = v["answer"].value_counts().to_dict()
    c.status = ("supported" if counts.get("yes", 0) == len(v) else "not supported" if counts.get("no", 0) == len(v)
                else "undecided" if counts.get("undecided", 0) == len(v) else "mixed")
    d = S.done_rows(df)
    c.n_runs = int((d["policy"].isin(S.leave_one_out_policies(d["policy"].unique())) | d["policy"].eq("full")).sum())
    c.text.append(f"Verdicts over {len(v)} cell(s) ({metric}): " +
                  ", ".join(f"{n} {a}" for a, n in sorted(counts.items())) + f"; {c.n_runs} runs (full + no_*).")
    for r in v.to_dict("records"):
        c.text.append(f"{S.cell_label({k: r[k] for k in keys}, sep=' / ')}: **{r['answer']}** — {r['reason']}.")
    return c


def masking(df, metric, n_boot, seed) -> Claim:
    c = Claim("Masking suits ViTs, not ConvNets", "not testable", refs=published.CLAIMS["mask"])
    t = S.drop_table(df, metric, n_boot=n_boot, seed=seed)
    t = t[t["policy"] == "mask_instead_of_crop"] if not t.empty else t
    long = S.paired_drops(df, metric)
    long = long[long["policy"] == "mask_instead_of_crop"] if not long.empty else long
    if long.empty:
        c.text.append("No `mask_instead_of_crop` runs paired with `full` (see the strength-curve figure for "
                      "mask-ratio sweeps, if any).")
        return c
    long = long.assign(family=np.where(long["backbone"].astype(str).str.startswith("vit"), "ViT", "ConvNet"))
    c.n_runs = 2 * len(long)
    for fam, g in long.groupby("family"):
        c.text.append(f"{fam}: drop full - mask_instead_of_crop = {_t(g['drop'].values)}.")
    fams = set(long["family"])
    if fams != {"ViT", "ConvNet"}:
        c.text.append(f"Only {', '.join(sorted(fams))} runs: the claim compares both, so it is not testable yet.")
        return c
    vit, conv = (long.loc[long["family"] == f, "drop"].values for f in ("ViT", "ConvNet"))
    if min(len(vit), len(conv)) < 2:
        c.status = "undecided"
        c.text.append("Fewer than two paired seeds in a family; no test.")
        return c
    p = float(sps.ttest_ind(vit, conv, equal_var=False).pvalue)
    c.status = _combine([0 if not p < 0.05 else (1 if vit.mean() < conv.mean() else -1)])
    c.text.append(f"Masking instead of cropping costs ViTs {vit.mean():.2f} and ConvNets {conv.mean():.2f} points "
                  f"(Welch t-test p={fmt_p(p)}, {len(vit)} vs {len(conv)} pairs).")
    return c


def projector(df, metric) -> Claim:
    c = Claim("A projector helps, and is removed for evaluation", "not testable", refs=published.CLAIMS["projector"])
    d = S.done_rows(df)
    statuses = []
    if {"knn_top1", "knn_top1_projector"} <= set(d):
        both = d.dropna(subset=["knn_top1", "knn_top1_projector"])
        if len(both):
            diff = both["knn_top1"] - both["knn_top1_projector"]
            c.n_runs += len(both)
            c.text.append(f"Backbone minus projector-output kNN top-1 over {len(both)} runs: {_t(diff.values)}.")
            statuses.append(_outcome(diff.values))
    if not c.text:
        c.text.append("No run recorded kNN on the projector output (knn_top1_projector).")
    depths = sorted(x for x in d["proj_depth"].unique() if isinstance(x, (int, np.integer))) if "proj_depth" in d else []
    if 0 in depths and len(depths) > 1:
        for k in depths[1:]:
            j = paired_on(df, metric, "proj_depth", k, 0)
            if len(j):
                c.n_runs += 2 * len(j)
                c.text.append(f"{metric}, projector depth {k} minus no projector: {_t(j['diff'].values)}.")
                statuses.append(_outcome(j["diff"].values))
    else:
        c.text.append("No projector-depth sweep with a depth-0 (no projector) run; whether a projector helps "
                      "is not tested.")
    if statuses:
        c.status = _combine(statuses)
    return c


def momentum(df, metric) -> Claim:
    c = Claim("A momentum encoder helps most under weak augmentation", "not testable", refs=published.CLAIMS["momentum"])
    j = paired_on(df, metric, "momentum", True, False)
    j = j[j["policy"].isin(["full", "weak"])] if len(j) else j
    if j.empty:
        c.text.append("No method has runs with and without the momentum encoder under `full` or `weak` "
                      "(same seed).")
        return c
    c.n_runs = 2 * len(j)
    for p, g in j.groupby("policy"):
        c.text.append(f"Gain from momentum under `{p}` ({metric}): {_t(g['diff'].values)}.")
    keys = [k for k in j.columns if k not in ("policy", "a", "b", "diff")]
    w = j.pivot_table(index=keys, columns="policy", values="diff").dropna()
    if not {"full", "weak"} <= set(w.columns) or w.empty:
        c.text.append("Gains under both `full` and `weak` for the same method and seed are needed to compare.")
        return c
    dd = (w["weak"] - w["full"]).values
    c.text.append(f"Gain under weak minus gain under full: {_t(dd)}.")
    c.status = _combine([_outcome(dd)])
    return c


def all_claims(df, metric="knn_top1", alpha=0.05, n_boot=10000, seed=0) -> list[Claim]:
    return [crop(df, metric, alpha, n_boot, seed), masking(df, metric, n_boot, seed), projector(df, metric),
            momentum(df, metric)]
