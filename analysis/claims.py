"""The four claims the benchmark tests, each answered from the rows with its test and run count,
or marked not testable with what is missing. Never a verdict without data.

A claim's status aggregates its answers (`aggregate`): supported when every testable answer is yes and at least
`need` of them are (2 for the crop claim, which has several verdicts; 1 for the one-test claims); partly
supported when some are yes, none no and the rest undecided (or too few are yes); not supported / partly
contradicted the same way for no; conflicting with both yes and no; undecided when all are; not testable when
none is testable. Not-testable answers never count."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import labels, published
from analysis import stats as S
from analysis import verdicts as V
from analysis.tablefmt import fmt_p


@dataclass
class Claim:
    title: str
    # supported | partly supported | not supported | partly contradicted | conflicting | undecided | not testable
    status: str
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
    r = S.paired_test(np.asarray(diffs, float), np.zeros(len(diffs)))
    ci = f"95% t-interval [{r.ci_lo:.2f}, {r.ci_hi:.2f}]" if r.ci_lo == r.ci_lo else "no interval from one pair"
    return f"mean {r.mean:+.2f} points ({ci}), paired t-test p={fmt_p(r.p)}, n={r.n}"


def _outcome(diffs, alpha: float = 0.05) -> str:
    """yes: significantly positive (paired t-test), no: significantly negative, undecided: neither or < 2 pairs."""
    p = S.ttest_p(diffs)
    return "undecided" if not p < alpha else ("yes" if np.mean(diffs) > 0 else "no")


def aggregate(answers: list[str], need: int = 2) -> tuple[str, str]:
    """(status, what it rests on) from yes / no / undecided / not testable answers (the module's rule)."""
    n = Counter(answers)
    yes, no, und, nt = n["yes"], n["no"], n["undecided"], n["not testable"]
    tested = yes + no + und
    tail = f"; {nt} not testable, not counted" if nt else ""
    if not tested:
        return "not testable", f"no testable verdict{tail}"
    if yes and no:
        return "conflicting", f"{yes} yes and {no} no of {tested} testable{tail}"
    for k, full, part in ((yes, "supported", "partly supported"), (no, "not supported", "partly contradicted")):
        word = "yes" if full == "supported" else "no"
        if k == tested and k >= need:
            return full, f"all {tested} testable {word}{tail}"
        if k == tested:
            return part, f"{k} of {tested} testable {word}; '{full}' needs at least {need}{tail}"
        if k:
            return part, f"{k} of {tested} testable {word}, rest undecided{tail}"
    return "undecided", f"all {tested} testable undecided{tail}"


CROP_RULE = (
    "How this is decided: per cell and metric, two verdicts. **yes**: crop beats every other arm — each one-sided "
    "paired t-test (crop vs one other) rejects at alpha={alpha}, *unadjusted*, combined as an intersection-union "
    "test (it needs no multiplicity correction). **no**: some other arm beats crop — one-sided paired t-test, "
    "*Holm-adjusted* across the other arms. Otherwise **undecided** (also under {min_seeds} paired seeds). "
    "**not testable**: an expected arm is missing ({arms}) or no seed pairs them; it never counts. The claim, per "
    "method and overall: supported when every testable verdict is yes and at least 2 are; partly supported when "
    "some are yes, none no, the rest undecided (or only one is testable); not supported / partly contradicted "
    "likewise for no; conflicting when both occur.")


def _effect(r: dict) -> str:
    if not r["vs"]:
        return ""
    ci = f", 95% CI [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]" if r["ci_lo"] == r["ci_lo"] else ""
    return f"crop − {r['vs']}: {r['diff']:+.2f} points{ci}, n={r['n']}; "


def crop(df, metrics, alpha) -> Claim:
    """Two verdicts (leave-one-out, only-one) per cell and metric; the status aggregates them, per method and
    overall; the verdicts are listed by dataset, each with its effect (crop minus the deciding arm)."""
    c = Claim("Crop is the most important augmentation", "not testable", refs=published.CLAIMS["crop"])
    d = S.done_rows(df)
    v = pd.concat([V.crop_verdicts(df, m, alpha=alpha).assign(metric=m) for m in metrics], ignore_index=True)
    if v.empty:
        c.text.append(f"No leave-one-out (no_*) or only-one (<aug>_only) runs with {' or '.join(metrics)}.")
        return c
    c.text.append(CROP_RULE.format(alpha=alpha, min_seeds=V.MIN_SEEDS, arms=V.EXPECTED_ARMS))
    pol = d["policy"].astype(str)
    c.n_runs = int((pol.str.startswith("no_") | pol.str.match(V.ONLY_RE) | pol.eq(S.BASELINE)).sum())
    c.status, why = aggregate(list(v["answer"]))
    c.text.append(f"Overall: **{c.status}** ({why}; {len(v)} verdicts: {', '.join(metrics)} x leave-one-out and "
                  f"only-one per cell; {c.n_runs} runs of full, no_*, *_only).")
    c.text.append("Per method: " + "; ".join(f"{m}: **{s}** ({w})" for m, g in v.groupby("method")
                                              for s, w in [aggregate(list(g["answer"]))]) + ".")
    keys = [k for k in S.cell_cols(d) if k in v.columns]
    for ds, g in v.groupby("dataset", sort=True):
        c.text.append(f"On {labels.value('dataset', ds)}:")
        for r in g.sort_values(keys + ["metric", "verdict"]).to_dict("records"):
            c.text.append(f"  - {S.cell_label({k: r[k] for k in keys}, sep=' / ')}, {r['metric']}, {r['verdict']}: "
                          f"**{r['label']}** — {_effect(r)}{r['reason']}.")
    return c


def masking(df, metric) -> Claim:
    c = Claim("Masking suits ViTs, not ConvNets", "not testable", refs=published.CLAIMS["mask"])
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
    c.status = aggregate(["undecided" if not p < 0.05 else "yes" if vit.mean() < conv.mean() else "no"], need=1)[0]
    c.text.append(f"Masking instead of cropping costs ViTs {vit.mean():.2f} and ConvNets {conv.mean():.2f} points "
                  f"(Welch t-test p={fmt_p(p)}, {len(vit)} vs {len(conv)} pairs).")
    return c


def projector(df, metric) -> Claim:
    c = Claim("A projector helps, and is removed for evaluation", "not testable", refs=published.CLAIMS["projector"])
    d = S.done_rows(df)
    statuses = []
    both = S.projector_runs(d)  # the same runs and gaps as the projector figure
    if len(both):
        c.n_runs += len(both)
        pols = ", ".join(sorted(both["policy"].astype(str).unique()))
        c.text.append(f"Backbone minus projector-output kNN top-1 over {len(both)} run{'s' * (len(both) != 1)} "
                      f"(policy {pols}): {_t(both['gap'].values)}.")
        keys = S.cell_cols(d)
        groups = list(both.groupby(keys, dropna=False))
        if len(groups) > 1:
            c.text += [f"  - {S.cell_label(dict(zip(keys, k)), sep=' / ')}: {_t(g['gap'].values)}." for k, g in groups]
        statuses.append(_outcome(both["gap"].values))
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
        c.status = aggregate(statuses, need=1)[0]
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
    c.status = aggregate([_outcome(dd)], need=1)[0]
    return c


def all_claims(df, metric="knn_top1", alpha=0.05, metrics=("knn_top1", "linear_top1")) -> list[Claim]:
    return [crop(df, metrics, alpha), masking(df, metric), projector(df, metric),
            momentum(df, metric)]
