"""Statistics over result rows: mean and t-interval over seeds, drops vs `full` paired by seed with paired
t-tests and Holm's correction across the ablations of a cell, rankings, rank agreement with papers.

Drops are `full - ablation` in accuracy points: positive means removing the augmentation hurt. With a few
seeds a bootstrap interval is just [min, max] and a sign-flip permutation p cannot go below 2/2^n, so the
intervals are Student-t intervals over seeds and the tests paired t-tests; with one seed there is neither
(NaN, printed "–"). The sd behind every interval and test is floored at the accuracy's resolution (100 / test
images, `resolution`): a run cannot tell apart accuracies closer than one test image, so zero or float-noise
variance never makes a difference certain.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import stats as sps

from augbench.config import EXECUTION_FIELDS, RunConfig

BASELINE = "full"
RANDOM_INIT = "knn_top1_random_init"  # kNN of the untrained encoder: what "learned nothing" scores
# A cell: everything that must match for two runs to be comparable, except the policy and seed.
CELL = ("method", "backbone", "dataset", "epochs")
METRICS = ("knn_top1", "knn_top1_projector", "linear_top1", "finetune_top1", RANDOM_INIT)
# (classes, images in the whole test split) of the named datasets (Tiny-ImageNet's test split is its val/);
# `eval_subset` keeps that many per class
TEST_SPLIT = {"cifar10": (10, 10_000), "cifar100": (100, 10_000), "imagenette32": (10, 3_925), "stl10": (10, 8_000),
              "stl10-unlabeled": (10, 8_000),
              "tiny-imagenet": (200, 10_000)}
# resolution of an accuracy whose test-set size cannot be derived (an imagefolder: dataset): 1 of 10,000 images
FALLBACK_RESOLUTION = 0.01
# a strength sweep's policy name (augbench.augment.policy.strength_sweep): `<base>-<knob>=<v>`, base `full` unnamed
STRENGTH_RE = re.compile(r"^(?:(?P<base>.+)-)?(?P<knob>crop_scale|color|mask_ratio)=(?P<value>[-+0-9.eE]+)$")
POLICY_PARAMS = "policy_params"  # the parameters in which same-name policies differ (a cell column, when any)


# Config fields that, when they vary between runs, also split cells (recipe, proj_depth, momentum, lr, ...).
# `recipe` is named even before RunConfig has it, so rows of different recipes are never averaged.
DESIGN = tuple(dict.fromkeys(
    [f.name for f in fields(RunConfig) if f.name not in (*CELL, "policy", "seed", *EXECUTION_FIELDS)] + ["recipe"]))


def done_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs only (failed/running rows are reported elsewhere, never averaged), with unset design
    fields spelled "default" so they group and pair, and momentum resolved to what the run used."""
    if df.empty or "status" not in df:
        return df.iloc[0:0]
    d = df[df["status"] == "done"].copy()
    d["momentum"] = effective_momentum(d)
    for c in DESIGN:
        # a failed row without a config turns ints into floats; undo that for labels and pairing
        if c in d and d[c].dtype.kind == "f" and d[c].notna().all() and (d[c] % 1 == 0).all():
            d[c] = d[c].astype(int)
        if c in d and d[c].isna().any():
            d[c] = d[c].astype(object).where(d[c].notna(), "default")
    d[POLICY_PARAMS] = policy_params(d.drop(columns=POLICY_PARAMS, errors="ignore"))
    return d


def _params(spec) -> dict:
    """{(op, param): JSON value} of a policy spec (JSON text), plus its per-view overrides."""
    spec = json.loads(spec) if isinstance(spec, str) else {}
    out = {("views", ""): json.dumps(spec.get("views"), sort_keys=True)}
    for o in spec.get("ops", []):
        out.update({(o.get("op"), k): json.dumps(v, sort_keys=True) for k, v in o.items() if k != "op"})
    return out


def policy_params(d: pd.DataFrame) -> pd.Series:
    """Per run, the policy parameters in which runs of one policy name differ within a cell ("" when none do):
    two specs of one name are never averaged. Each run is labelled with its own values of those parameters
    (`color_jitter.brightness=[0.6, 1.4]`), so a `full` and a `no_crop` of the same variant stay together; a
    run without the op in question (no_color for a jitter variant) cannot be placed and gets a cell of its own."""
    out = pd.Series("", index=d.index, dtype=object)
    if d.empty or "policy_spec" not in d or d["policy_spec"].isna().all():
        return out
    keys = cell_cols(d)
    for _, g in d.groupby(keys, dropna=False) if keys else [((), d)]:
        if g.groupby("policy")["policy_spec"].nunique().max() < 2:
            continue
        params = {i: _params(s) for i, s in g["policy_spec"].items()}
        differ = sorted({k for _, gp in g.groupby("policy") for k in set().union(*(params[i] for i in gp.index))
                         if len({params[i].get(k) for i in gp.index}) > 1})
        for i in g.index:
            out[i] = "; ".join(f"{op}.{k}={params[i][op, k]}" if k else f"{op}={params[i][op, k]}"
                               for op, k in differ if (op, k) in params[i])
    return out


def resolution(rows: pd.DataFrame) -> float:
    """The accuracy's resolution in points, 100 / test images, of the coarsest run in `rows`: test images =
    `eval_subset` x classes (capped at the split), or the whole test split; FALLBACK_RESOLUTION (0.01) for a
    dataset of unknown size."""
    out = []
    for ds, sub in zip(rows.get("dataset", []), rows.get("eval_subset", [None] * len(rows))):
        classes, images = TEST_SPLIT.get(ds, (0, 0))
        if images and isinstance(sub, (int, float, np.number)) and sub == sub and not isinstance(sub, bool):
            images = min(images, int(sub) * classes)
        out.append(100.0 / images if images else FALLBACK_RESOLUTION)
    return max(out, default=FALLBACK_RESOLUTION)


def effective_momentum(d: pd.DataFrame) -> pd.Series:
    """The momentum setting a run used: the config's, or the method's default (on for BYOL only), as in
    RunConfig.uses_momentum; so `momentum: null` and `momentum: true` BYOL runs pair with each other."""
    default = d["method"].eq("byol") if "method" in d else pd.Series(False, index=d.index)
    if "momentum" not in d:
        return default.astype(bool)
    return d["momentum"].where(d["momentum"].notna(), default).astype(bool)


def cell_cols(df: pd.DataFrame) -> list[str]:
    """The columns that define a cell: method/backbone/dataset/epochs plus any design field that varies among
    runs of the same method/backbone/dataset/epochs. A field that only follows the method (a per-method
    recipe's lr, temperature, ...) splits nothing the method does not already split, so it adds no column."""
    core = [c for c in CELL if c in df.columns]

    def varies(c: str) -> bool:
        v = df[c].astype(str)
        if v.nunique() < 2:
            return False
        return not core or bool((v.groupby([df[k] for k in core], dropna=False).nunique() > 1).any())

    spec = [POLICY_PARAMS] if POLICY_PARAMS in df and df[POLICY_PARAMS].astype(str).nunique() > 1 else []
    return core + [c for c in DESIGN if c in df.columns and varies(c)] + spec


def cell_label(key: dict, sep: str = "\n") -> str:
    """'simclr / resnet18 / cifar10 / 100 ep' + sep + 'proj_depth=0, momentum=True' from a cell's key columns."""
    core, extra = [], []
    for k, v in key.items():
        if k == "epochs":
            core.append(f"{v} ep")
        elif k in CELL:
            core.append(str(v))
        else:
            extra.append(f"{k}={v}")
    return " / ".join(core) + (sep + ", ".join(extra) if extra else "")


def in_cell(d: pd.DataFrame, key: dict) -> pd.DataFrame:
    """The lines of `d` that belong to the cell `key` ({column: value})."""
    return d.loc[(d[list(key)] == pd.Series(key)).all(axis=1)]


def key_cols(table: pd.DataFrame) -> list[str]:
    """The cell columns of a drop table (everything before `policy`)."""
    cols = list(table.columns)
    return cols[: cols.index("policy")] if "policy" in cols else []


# ---------------------------------------------------------------------- intervals and tests
def floored_sd(x, floor: float = FALLBACK_RESOLUTION) -> float:
    """Sample sd (ddof=1) of x, at least `floor` (the accuracy's resolution); NaN under two values."""
    x = np.asarray(x, dtype=float)
    return max(float(x.std(ddof=1)), floor) if x.size >= 2 else math.nan


def t_interval(x, alpha: float = 0.05, floor: float = FALLBACK_RESOLUTION) -> tuple[float, float]:
    """Student-t interval of the mean of x (seeds, or paired differences over seeds), its sd floored at
    `floor`; NaN under two values."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    lo, hi = sps.t.interval(1 - alpha, x.size - 1, loc=float(x.mean()), scale=floored_sd(x, floor) / math.sqrt(x.size))
    return (float(lo), float(hi))


def ttest_p(diffs, alternative: str = "two-sided", floor: float = FALLBACK_RESOLUTION) -> float:
    """Paired t-test p of mean(diffs) vs 0 (as scipy.stats.ttest_1samp, = ttest_rel on the pairs, whenever the
    sd is above `floor`); NaN under two pairs. The sd is floored at `floor` (the accuracy's resolution): constant
    differences are not certain, and float noise around an exact tie is no difference.
    `alternative` as in scipy: "two-sided", "greater" (mean > 0) or "less"."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan
    t, df = float(d.mean()) / (floored_sd(d, floor) / math.sqrt(d.size)), d.size - 1
    p = {"greater": sps.t.sf(t, df), "less": sps.t.cdf(t, df), "two-sided": 2 * sps.t.sf(abs(t), df)}[alternative]
    return float(min(p, 1.0))


def seeds_to_decide(diffs, alpha: float = 0.05, floor: float = FALLBACK_RESOLUTION, least: int = 2,
                    most: int = 1000):
    """The fewest paired seeds (at least `least`) at which a one-sided paired t-test (mean > 0) at the observed
    mean and (floored) sd of `diffs` would reach p < alpha; None when the observed mean is not above 0 or there
    is no sd (one pair); `most` + 1 when even `most` seeds would not do."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2 or not d.mean() > 0:
        return None
    n = np.arange(max(least, 2), most + 1)
    ok = np.flatnonzero(sps.t.sf(d.mean() * np.sqrt(n) / floored_sd(d, floor), n - 1) < alpha)
    return int(n[ok[0]]) if ok.size else most + 1


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error) of the p-values; NaN entries stay NaN and do not count."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order]) if m else np.array([])
    out[order] = np.minimum(adj, 1.0)
    return out


@dataclass
class PairedResult:
    n: int
    mean: float
    ci_lo: float
    ci_hi: float
    p: float  # two-sided paired t-test

    def as_dict(self) -> dict:
        return dict(n=self.n, mean=self.mean, ci_lo=self.ci_lo, ci_hi=self.ci_hi, p=self.p)


def paired_test(a, b, alpha: float = 0.05, floor: float = FALLBACK_RESOLUTION) -> PairedResult:
    """Compare a and b paired element-wise (same seed): mean of a - b, its t-interval and paired t-test p."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal length, got {a.size} and {b.size}")
    d = a - b
    lo, hi = t_interval(d, alpha, floor)
    return PairedResult(int(d.size), float(d.mean()) if d.size else math.nan, lo, hi, ttest_p(d, floor=floor))


# ---------------------------------------------------------------------- summaries
def _seeds(s) -> str:
    return ",".join(str(int(x)) for x in sorted(s))


def summarize(df: pd.DataFrame, metric: str, by: tuple[str, ...] | None = None, alpha: float = 0.05) -> pd.DataFrame:
    """Mean, std (ddof=1), t-interval (NaN for one seed) and seeds of `metric` per cell and policy."""
    df = done_rows(df)
    by = list(by) if by else cell_cols(df) + ["policy"]
    cols = by + ["mean", "std", "ci_lo", "ci_hi", "n", "seeds"]
    d = df.dropna(subset=[metric]) if metric in df else df.iloc[0:0]
    if d.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for k, g in d.groupby(by, dropna=False):
        x = g[metric].to_numpy(float)
        lo, hi = t_interval(x, alpha, resolution(g))
        out.append({**dict(zip(by, k)), "mean": x.mean(), "std": x.std(ddof=1) if x.size > 1 else math.nan,
                    "ci_lo": lo, "ci_hi": hi, "n": int(x.size), "seeds": _seeds(g["seed"])})
    return pd.DataFrame(out, columns=cols)


def gain_over_random(df: pd.DataFrame, metric: str = "knn_top1", alpha: float = 0.05) -> pd.DataFrame:
    """Per cell and policy: `metric` minus the same run's random-init kNN (points above an untrained encoder)."""
    d = done_rows(df)
    if d.empty or metric not in d or RANDOM_INIT not in d:
        return summarize(d.iloc[0:0], "gain", alpha=alpha)
    return summarize(d.assign(gain=d[metric] - d[RANDOM_INIT]), "gain", alpha=alpha)


# ---------------------------------------------------------------------- drops vs full
def by_seed(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Wide frame: index = cell + seed, one column per policy, values = metric (done runs)."""
    df = done_rows(df)
    keys = cell_cols(df) + ["seed"]
    if df.empty or metric not in df:
        return pd.DataFrame()
    d = df.dropna(subset=[metric])
    # a duplicated (cell, policy, seed) can only come from differing other fields; average them
    return d.pivot_table(index=keys, columns="policy", values=metric, aggfunc="mean")


def paired_drops(df: pd.DataFrame, metric: str, baseline: str = BASELINE) -> pd.DataFrame:
    """Long frame of per-seed drops: cell, seed, policy, drop = baseline - policy (matching seeds only)."""
    wide = by_seed(df, metric)
    if wide.empty or baseline not in wide.columns:
        return pd.DataFrame(columns=cell_cols(done_rows(df)) + ["seed", "policy", "drop"])
    drops = (-wide.drop(columns=[baseline])).add(wide[baseline], axis=0)
    long = drops.reset_index().melt(id_vars=list(wide.index.names), var_name="policy", value_name="drop")
    return long.dropna(subset=["drop"]).reset_index(drop=True)


def drop_table(df: pd.DataFrame, metric: str, baseline: str = BASELINE, alpha: float = 0.05) -> pd.DataFrame:
    """One line per (cell, ablation): mean drop, t-interval, paired t-test p, and p Holm-adjusted across the
    ablations of the cell (one family per cell and metric)."""
    long = paired_drops(df, metric, baseline)
    d = done_rows(df)
    keys = cell_cols(d)
    cols = keys + ["policy", "n", "mean", "ci_lo", "ci_hi", "p", "p_holm", "seeds", "resolution"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for k, g in long.groupby(keys + ["policy"], dropna=False):
        res = resolution(in_cell(d, dict(zip(keys, k[:len(keys)]))))
        r = paired_test(g["drop"].to_numpy(float), np.zeros(len(g)), alpha, res).as_dict()
        out.append({**dict(zip(keys + ["policy"], k)), **r, "seeds": _seeds(g["seed"]), "resolution": res})
    t = pd.DataFrame(out)
    t["p_holm"] = t.groupby(keys, dropna=False)["p"].transform(lambda p: holm(p.to_numpy()))
    return t[cols]


def leave_one_out_policies(policies) -> list[str]:
    return sorted(p for p in policies if isinstance(p, str) and p.startswith("no_"))


def ranking(drops: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-out ablations ranked by mean drop within each cell (rank 1 = removal hurts most). Means closer
    than the accuracy's resolution (drop_table's `resolution`) are ties and share the best rank of their run."""
    keys = key_cols(drops)
    d = drops[drops["policy"].isin(leave_one_out_policies(drops["policy"].unique()))].copy() if not drops.empty else drops
    cols = keys + ["rank", "augmentation", "policy", "mean", "ci_lo", "ci_hi", "n"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d["augmentation"] = d["policy"].str.removeprefix("no_")
    d = d.sort_values(keys + ["mean", "policy"], ascending=[True] * len(keys) + [False, True])
    res = d["resolution"] if "resolution" in d else FALLBACK_RESOLUTION
    # a new rank where a mean is at least the resolution below the one before it, else the same (a tie)
    new = d.groupby(keys, dropna=False)["mean"].diff().abs().fillna(np.inf).ge(res)
    d["rank"] = (d.groupby(keys, dropna=False).cumcount() + 1).where(new).groupby(
        [d[k] for k in keys], dropna=False).ffill().astype(int)
    return d[cols].reset_index(drop=True)


def projector_runs(d: pd.DataFrame) -> pd.DataFrame:
    """Done runs `d` with kNN on both the backbone and the projector output (each cell's `full` runs when it has
    any, else all of its runs), with gap = backbone - projector kNN: the projector claim and figure both use it."""
    cols = ["knn_top1", "knn_top1_projector"]
    if d.empty or not set(cols) <= set(d):
        return d.iloc[0:0].assign(gap=pd.Series(dtype=float))
    keys = cell_cols(d)
    both = d.dropna(subset=cols)
    has_base = both["policy"].eq(BASELINE).groupby([both[k] for k in keys], dropna=False).transform("any")
    both = both[~has_base | both["policy"].eq(BASELINE)]
    return both.assign(gap=both["knn_top1"] - both["knn_top1_projector"])


# ---------------------------------------------------------------------- agreement with papers
def spearman(ours: dict[str, float], theirs: dict[str, float]) -> dict:
    """Spearman rank correlation over the keys both share (scipy.stats.spearmanr)."""
    common = sorted(set(ours) & set(theirs))
    out = {"n": len(common), "keys": common, "rho": math.nan, "p": math.nan}
    if len(common) >= 3:
        r = sps.spearmanr([ours[k] for k in common], [theirs[k] for k in common])
        out["rho"], out["p"] = float(r.statistic), float(r.pvalue)
    return out


# ---------------------------------------------------------------------- strength curves
def knob_value(spec, knob: str) -> float | None:
    """The value of a strength knob in a policy spec (JSON text or dict), as strength_sweep sets it: the
    patch_mask ratio, the crop's minimum scale, or the colour strength s (brightness 0.8 s). None where the
    policy has no such op (it is not a point of that curve)."""
    spec = json.loads(spec) if isinstance(spec, str) else spec
    ops = {o.get("op"): o for o in (spec or {}).get("ops", [])}
    if knob == "mask_ratio" and "patch_mask" in ops:
        return float(ops["patch_mask"]["ratio"])
    if knob == "crop_scale" and "random_resized_crop" in ops:
        return float(ops["random_resized_crop"]["scale"][0])
    if knob == "color" and "color_jitter" in ops:
        b = ops["color_jitter"]["brightness"]
        return round((b[1] - 1 if isinstance(b, (list, tuple)) else b) / 0.8, 6)
    return None


def strength_rows(df: pd.DataFrame, metric: str = "knn_top1") -> pd.DataFrame:
    """The finished runs of strength sweeps (`<base>-<knob>=<v>`; base `full` unnamed), each with `knob`
    and `value`, plus the base policy's own runs in the cells where its sweep ran, at the value their spec
    holds (mask_instead_of_crop: ratio 0.5; full: crop scale 0.08), so a curve never re-runs its base."""
    d = done_rows(df)
    if d.empty or metric not in d:
        return d.iloc[0:0]
    m = d["policy"].astype(str).str.extract(STRENGTH_RE)
    gen = d.assign(knob=m["knob"], base=m["base"].fillna("full"), value=pd.to_numeric(m["value"]))
    gen = gen.dropna(subset=["knob", metric])
    keys = cell_cols(d)
    cell = pd.Series(list(zip(*(d[c].astype(str) for c in keys))), index=d.index)
    parts = [gen]
    for (knob, base), g in gen.groupby(["knob", "base"]):
        own = d[(d["policy"] == base) & cell.isin(set(cell[g.index]))]
        if len(own) and "policy_spec" in own:
            own = own.assign(knob=knob, base=base, value=[knob_value(x, knob) for x in own["policy_spec"]])
            # a sweep that also ran the base's own value (same spec, its own name) is not counted twice
            ran = set(zip(cell[g.index], g["seed"], g["value"]))
            own = own[[k not in ran for k in zip(cell[own.index], own["seed"], own["value"])]]
            parts.append(own.dropna(subset=["value", metric]))
    out = pd.concat(parts) if len(parts) > 1 else gen
    return out[out.groupby("knob")["value"].transform("nunique") >= 2]
