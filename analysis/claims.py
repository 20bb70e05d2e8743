"""The claims the benchmark tests (crop, masking, the projector's two, momentum), each answered from the rows
with its test and run count, or marked not testable with what is missing. Never a verdict without data.

Verdicts are per cell: runs that differ in any config field but the one compared never pool (a pooled test
over cells of other methods, data or epochs would claim more than any one cell shows). A claim's status
aggregates its cells' answers (`aggregate`): supported when every testable answer is yes and at least `need`
of them are (2 for the crop claim and the projector-removal claim; 1 for the others); partly supported when
some are yes, none no and the rest undecided (or too few are yes); not supported / partly contradicted the
same way for no; conflicting with both yes and no; undecided when all are; not testable when none is
testable. Not-testable answers never count. The masking claim compares ViT with ConvNet runs, which differ
in their backbone by design."""
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
    keys = [k for k in S.cell_cols(d) if k in v.columns]
    testable = v[v["answer"] != "not testable"]  # a cell whose verdicts are all "not testable" backs nothing
    judged = d.merge(testable[keys].drop_duplicates(), on=keys)  # the runs of the cells that got a verdict
    pol = judged["policy"].astype(str)
    c.n_runs = int((pol.str.startswith("no_") | pol.str.match(V.ONLY_RE) | pol.eq(S.BASELINE)).sum())
    c.status, why = aggregate(list(v["answer"]))
    c.text.append(f"Overall: **{c.status}** ({why}; {len(v)} verdicts: {', '.join(metrics)} x leave-one-out and "
                  f"only-one per cell; {c.n_runs} runs of full, no_*, *_only).")
    c.text.append("Per method: " + "; ".join(f"{m}: **{s}** ({w})" for m, g in v.groupby("method")
                                              for s, w in [aggregate(list(g["answer"]))]) + ".")
    if "backbone" in v and v["backbone"].nunique() > 1:  # a ConvNet and a ViT may not agree
        c.text.append("Per backbone: " + "; ".join(f"{labels.value('backbone', b)}: **{s}** ({w})"
                                                   for b, g in v.groupby("backbone")
                                                   for s, w in [aggregate(list(g["answer"]))]) + ".")
    for ds, g in v.groupby("dataset", sort=True):
        c.text.append(f"On {labels.value('dataset', ds)}:")
        for r in g.sort_values(keys + ["metric", "verdict"]).to_dict("records"):
            c.text.append(f"  - {S.cell_label({k: r[k] for k in keys}, sep=' / ')}, {r['metric']}, {r['verdict']}: "
                          f"**{r['label']}** — {_effect(r)}{r['reason']}.")
    scale = [(m, _strength_drops(df, m, "crop_scale", S.BASELINE)) for m in metrics]
    if any(len(x) for _, x in scale):  # how much of the crop's worth is its strength (no verdict)
        c.text.append("Beside it (no verdict), the crop's minimum scale (`full`: 0.08): drop full - policy, by scale:")
        for m, x in scale:
            ck = [k for k in S.cell_cols(d) if k in x]
            for k, h in x.groupby(ck, dropna=False):
                c.text.append(f"  - {S.cell_label(dict(zip(ck, k)), sep=' / ')}, {m}: {_curve(h)}.")
    return c


def masking(df, metric) -> Claim:
    """Per (method, data set, epochs): the drop full - mask_instead_of_crop of ViT runs against ConvNet runs
    (Welch t-test; at least MIN_SEEDS drops in each family); yes when masking costs the ViT less. The two
    families differ in their backbone (and what follows it) by design; nothing else pools."""
    c = Claim("Masking suits ViTs, not ConvNets", "not testable", refs=published.CLAIMS["mask"])
    long = S.paired_drops(df, metric)
    long = long[long["policy"] == "mask_instead_of_crop"] if not long.empty else long
    if long.empty:
        c.text.append("No `mask_instead_of_crop` runs paired with `full` (see the strength-curve figure for "
                      "mask-ratio sweeps, if any).")
        return c
    long = long.assign(family=_family(long))
    c.n_runs = 2 * len(long)
    keys = [k for k in ("method", "dataset", "epochs") if k in long]
    answers = []
    gains = _full_gains_by_family(df, long, keys)
    no_crop = _no_crop_beside(S.paired_drops(df, metric), long)
    ratios = _mask_ratio_drops(df, metric, long)
    for k, g in long.groupby(keys, dropna=False):
        where = " / ".join(f"{v} ep" if n == "epochs" else str(v) for n, v in zip(keys, k))
        for fam, h in g.groupby("family"):
            gain = gains.get((*k, fam))
            learned = f"; its `full` runs clear random init by {gain:+.1f} kNN points" if gain is not None else ""
            c.text.append(f"{where}, {fam}: drop full - mask_instead_of_crop = {_t(h['drop'].values)}{learned}.")
            nc = no_crop.get((*k, fam))
            if nc is not None:  # what the crop alone is worth to this family: masking replaces it fully or not
                c.text.append(f"{where}, {fam}, beside it (no verdict): drop full - no_crop = {_t(nc['drop'].values)}; "
                              f"masking where the crop was, against neither: {_t(nc['added'].values)}.")
            curve = ratios.get((*k, fam))
            if curve is not None:  # the mask-ratio sweep of the same cells: does the cost grow with the share?
                c.text.append(f"{where}, {fam}, beside it (no verdict): drop full - masked, by mask ratio: "
                              f"{_curve(curve)}.")
        if set(g["family"]) != {"ViT", "ConvNet"}:
            c.text.append(f"{where}: only {', '.join(sorted(set(g['family'])))} runs; the claim compares both.")
            continue
        vit, conv = (g.loc[g["family"] == f, "drop"].values for f in ("ViT", "ConvNet"))
        if min(len(vit), len(conv)) < V.MIN_SEEDS:
            answers.append("undecided")
            c.text.append(f"{where}: **undecided** — fewer than {V.MIN_SEEDS} paired seeds in a family; no test.")
            continue
        p = float(sps.ttest_ind(vit, conv, equal_var=False).pvalue)
        a = "undecided" if not p < 0.05 else "yes" if vit.mean() < conv.mean() else "no"
        answers.append(a)
        c.text.append(f"{where}: **{a}** — masking instead of cropping costs ViTs {vit.mean():.2f} and ConvNets "
                      f"{conv.mean():.2f} points (Welch t-test p={fmt_p(p)}, {len(vit)} vs {len(conv)} pairs).")
    if answers:
        c.status, why = aggregate(answers, need=1)
        c.text.insert(0, f"Overall: **{c.status}** ({why}).")
    return c


def _family(d) -> np.ndarray:
    """ViT or ConvNet, per row: the masking claim's two families."""
    return np.where(d["backbone"].astype(str).str.startswith("vit"), "ViT", "ConvNet")


def _no_crop_beside(drops, long) -> dict:
    """(method, dataset, epochs, family) -> the `no_crop` drops of the masking test's cells, with `added`: per
    seed, drop(no_crop) - drop(mask_instead_of_crop), the points masking earns in the crop's place."""
    if drops.empty or not (drops["policy"] == "no_crop").any():
        return {}
    cells = [c for c in long.columns if c not in ("policy", "drop", "family")]
    nc = drops[drops["policy"] == "no_crop"].merge(long[cells + ["drop", "family"]].rename(columns={"drop": "mask"}),
                                                   on=cells)
    nc = nc.assign(added=nc["drop"] - nc["mask"])
    keys = [k for k in ("method", "dataset", "epochs") if k in nc]
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in nc.groupby(keys + ["family"], dropna=False)}


def _strength_drops(df, metric, knob: str, base: str) -> pd.DataFrame:
    """Per seed, drop `full` - policy for the runs of `base`'s `knob` sweep (stats.strength_rows: `base`'s own
    runs too, at the value their spec holds), with `value`; cells, seed, policy, drop, value."""
    sr = S.strength_rows(df, metric)
    drops = S.paired_drops(df, metric)
    if sr.empty or drops.empty:
        return drops.iloc[0:0].assign(value=[])
    sr = sr[(sr["knob"] == knob) & (sr["base"] == base)]
    on = [c for c in drops.columns if c != "drop"]
    if not all(c in sr for c in on):
        return drops.iloc[0:0].assign(value=[])
    return drops.merge(sr[on + ["value"]].drop_duplicates(), on=on)


def _curve(d) -> str:
    """'0.25: 3.00 (n=3); 0.5: 6.20 (n=3)': the mean drop per strength value."""
    return "; ".join(f"{v:g}: {h['drop'].mean():.2f} (n={len(h)})" for v, h in d.groupby("value"))


def _mask_ratio_drops(df, metric, long) -> dict:
    """(method, dataset, epochs, family) -> the mask_ratio sweep drops of mask_instead_of_crop over the
    masking test's cells, where a family has two ratios or more."""
    d = _strength_drops(df, metric, "mask_ratio", "mask_instead_of_crop")
    cells = [c for c in long.columns if c not in ("policy", "drop", "family", "seed")]
    if d.empty or not all(c in d for c in cells):
        return {}
    d = d.merge(long[cells].drop_duplicates(), on=cells)
    d = d.assign(family=_family(d))
    keys = [k for k in ("method", "dataset", "epochs") if k in d]
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in d.groupby(keys + ["family"], dropna=False)
            if g["value"].nunique() >= 2}


def _full_gains_by_family(df, long, keys) -> dict:
    """(*keys, family) -> mean kNN gain of the `full` runs of the compared cells (those in `long`) over the
    same runs' random-init encoder: how much a family learned at all, beside how much masking costs it."""
    d = S.done_rows(df)
    if d.empty or S.RANDOM_INIT not in d or "knn_top1" not in d:
        return {}
    d = d[d["policy"] == S.BASELINE].dropna(subset=["knn_top1", S.RANDOM_INIT])
    cells = [c for c in S.cell_cols(d) if c in long]
    d = d.merge(long[cells].drop_duplicates(), on=cells)  # only the cells the masking test compares
    d = d.assign(family=_family(d), gain=d["knn_top1"] - d[S.RANDOM_INIT])
    return {(k if isinstance(k, tuple) else (k,)): float(v)
            for k, v in d.groupby(keys + ["family"], dropna=False)["gain"].mean().items()}


def _cell_verdict(diffs, alpha: float = 0.05) -> str:
    """One cell's paired differences (one per seed): yes / no as `_outcome`, undecided under MIN_SEEDS pairs
    (the crop verdicts' rule)."""
    return "undecided" if len(diffs) < V.MIN_SEEDS else _outcome(diffs, alpha)


def _per_cell(c: Claim, groups, label, what: str, alpha: float = 0.05) -> list[str]:
    """A verdict per cell from (key, diffs) groups: one line each (`what` names the difference), and the
    answers. Cells never pool: any config difference splits them (stats.cell_cols)."""
    answers = []
    for key, diffs in groups:
        a = _cell_verdict(diffs, alpha)
        few = f"; under {V.MIN_SEEDS} paired seeds" if len(diffs) < V.MIN_SEEDS else ""
        c.text.append(f"  - {label(key)}: **{a}** — {what} {_t(diffs)}{few}{_needed(diffs) if a == 'undecided' else ''}.")
        answers.append(a)
    return answers


def _needed(diffs, alpha: float = 0.05, most: int = 1000) -> str:
    """For an undecided cell: the paired seeds the two-sided test would need at the observed mean and sd."""
    d = np.asarray(diffs, dtype=float)
    n = S.seeds_to_decide(np.sign(d.mean()) * d, alpha / 2, least=V.MIN_SEEDS, most=most)  # the observed direction
    if n is None:
        return ""
    return f"; over {most} paired seeds would decide it" if n > most else \
        f"; about {n} paired seeds would decide it at this mean and sd"


def _by_cell(frame: pd.DataFrame, keys: list[str], col: str) -> list[tuple[dict, np.ndarray]]:
    """(cell key, `col` per seed in seed order) for each cell of `frame`."""
    return [(dict(zip(keys, k if isinstance(k, tuple) else (k,))), g.sort_values("seed")[col].values)
            for k, g in frame.groupby(keys, dropna=False)]


def _rule(need: int) -> str:
    return (f"How this is decided: per cell (runs equal in every config field but the one compared), a paired "
            f"t-test over seeds at alpha=0.05: **yes** / **no** when it rejects, the sign saying which; "
            f"**undecided** otherwise or under {V.MIN_SEEDS} paired seeds. Cells are never pooled. The claim: "
            f"supported when every verdict is yes and at least {need} {'is' if need == 1 else 'are'}; conflicting "
            f"with both yes and no; partly supported / partly contradicted otherwise (see the crop claim).")


def projector_helps(df, metric) -> Claim:
    """Per cell and projector depth k > 0: metric with k layers minus without a projector (proj_depth 0),
    paired over seeds."""
    c = Claim("A projector helps", "not testable", refs=published.CLAIMS["projector"])
    d = S.done_rows(df)
    depths = sorted(x for x in d["proj_depth"].unique() if isinstance(x, (int, np.integer))) if "proj_depth" in d else []
    if not (0 in depths and len(depths) > 1):
        c.text.append("No projector-depth sweep with a depth-0 (no projector) run paired with a deeper one; "
                      "not testable.")
        return c
    c.text.append(_rule(1))
    answers = []
    for k in depths[1:]:
        j = paired_on(df, metric, "proj_depth", k, 0)
        if j.empty:
            continue
        c.n_runs += 2 * len(j)
        keys = [x for x in j.columns if x not in ("seed", "a", "b", "diff")]
        groups = _by_cell(j, keys, "diff")
        c.text.append(f"{metric}, projector depth {k} minus no projector, per cell:")
        answers += _per_cell(c, groups, lambda key: S.cell_label(key, sep=" / "), "depth minus none:")
    if not answers:
        c.text.append("No depth-0 run pairs (same cell, policy and seed) with a deeper one; not testable.")
        return c
    c.status, why = aggregate(answers, need=1)
    c.text.insert(1, f"Overall: **{c.status}** ({why}; {c.n_runs} runs).")
    return c


def projector_removed(df, metric="knn_top1") -> Claim:
    """Per cell: kNN top-1 on the backbone minus on the projector output, paired over seeds (the runs the
    projector figure shows: stats.projector_runs)."""
    c = Claim("The projector is removed for evaluation: its input beats its output", "not testable",
              refs=published.CLAIMS["projector"][:1])
    d = S.done_rows(df)
    both = S.projector_runs(d)  # the same runs and gaps as the projector figure
    if both.empty:
        c.text.append("No run recorded kNN on the projector output (knn_top1_projector).")
        return c
    c.n_runs = len(both)
    c.text.append(_rule(2))
    keys = S.cell_cols(d)
    groups = _by_cell(both, keys, "gap")
    pols = ", ".join(sorted(both["policy"].astype(str).unique()))
    c.text.append(f"kNN top-1 on the backbone minus on the projector output, per cell ({len(both)} "
                  f"run{'s' * (len(both) != 1)}, policy {pols}):")
    answers = _per_cell(c, groups, lambda key: S.cell_label(key, sep=" / "), "backbone minus projector:")
    c.status, why = aggregate(answers, need=2)
    c.text.insert(1, f"Overall: **{c.status}** ({why}).")
    return c


def momentum(df, metric) -> Claim:
    """Per cell (method, data, ...): the EMA target's gain (on minus off, same policy and seed) under `weak`
    minus under `full`, paired over seeds; yes when it is larger under weak."""
    c = Claim("A momentum encoder helps most under weak augmentation", "not testable", refs=published.CLAIMS["momentum"])
    j = paired_on(df, metric, "momentum", True, False)
    j = j[j["policy"].isin(["full", "weak"])] if len(j) else j
    if j.empty:
        c.text.append("No method has runs with and without the momentum encoder under `full` or `weak` "
                      "(same seed).")
        return c
    c.n_runs = 2 * len(j)
    keys = [k for k in j.columns if k not in ("policy", "seed", "a", "b", "diff")]
    label = lambda key: S.cell_label(key, sep=" / ")  # noqa: E731
    c.text.append(_rule(1))
    for k, g in j.groupby(keys, dropna=False):
        key = dict(zip(keys, k if isinstance(k, tuple) else (k,)))
        gains = "; ".join(f"under `{p}` {_t(h['diff'].values)}" for p, h in g.groupby("policy"))
        c.text.append(f"Gain from momentum ({metric}), {label(key)}: {gains}.")
    w = j.pivot_table(index=keys + ["seed"], columns="policy", values="diff").dropna()
    if not {"full", "weak"} <= set(w.columns) or w.empty:
        c.text.append("Gains under both `full` and `weak` for the same method and seed are needed to compare.")
        return c
    w = w.assign(dd=w["weak"] - w["full"]).reset_index()
    groups = _by_cell(w, keys, "dd")
    c.text.append("Gain under weak minus gain under full, per cell:")
    answers = _per_cell(c, groups, label, "weak minus full:")
    c.status, why = aggregate(answers, need=1)
    c.text.insert(1, f"Overall: **{c.status}** ({why}; {c.n_runs} runs).")
    return c


def all_claims(df, metric="knn_top1", alpha=0.05, metrics=("knn_top1", "linear_top1")) -> list[Claim]:
    return [crop(df, metrics, alpha), masking(df, metric), projector_helps(df, metric), projector_removed(df),
            momentum(df, metric)]
