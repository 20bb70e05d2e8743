"""Statistics over result rows: mean and t-interval over seeds, drops vs `full` paired by seed with paired
t-tests and Holm's correction across the ablations of a cell, rankings, rank agreement with papers.

Drops are `full - ablation` in accuracy points: positive means removing the augmentation hurt. With a few
seeds a bootstrap interval is just [min, max] and a sign-flip permutation p cannot go below 2/2^n, so the
intervals are Student-t intervals over seeds and the tests paired t-tests; with one seed there is neither
(NaN, printed "–").
"""
from __future__ import annotations

import math
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
    return d


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

    return core + [c for c in DESIGN if c in df.columns and varies(c)]


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
def t_interval(x, alpha: float = 0.05) -> tuple[float, float]:
    """Student-t interval of the mean of x (seeds, or paired differences over seeds); NaN under two values."""
    x = np.asarray(x, dtype=float)
    if x.size < 2:
        return (math.nan, math.nan)
    m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    if se == 0:
        return (m, m)
    lo, hi = sps.t.interval(1 - alpha, x.size - 1, loc=m, scale=se)
    return (float(lo), float(hi))


def ttest_p(diffs, alternative: str = "two-sided") -> float:
    """Paired t-test p of mean(diffs) vs 0 (scipy.stats.ttest_1samp, = ttest_rel on the pairs); NaN under two
    pairs. `alternative` as in scipy: "two-sided", "greater" (mean > 0) or "less"."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan
    if np.allclose(d, d[0]):  # zero variance: scipy gives NaN; a constant non-zero diff is certain
        sign = {"two-sided": d[0] != 0, "greater": d[0] > 0, "less": d[0] < 0}[alternative]
        return 0.0 if sign else 1.0
    return float(sps.ttest_1samp(d, 0.0, alternative=alternative).pvalue)


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


def paired_test(a, b, alpha: float = 0.05) -> PairedResult:
    """Compare a and b paired element-wise (same seed): mean of a - b, its t-interval and paired t-test p."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal length, got {a.size} and {b.size}")
    d = a - b
    lo, hi = t_interval(d, alpha)
    return PairedResult(int(d.size), float(d.mean()) if d.size else math.nan, lo, hi, ttest_p(d))


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
        lo, hi = t_interval(x, alpha)
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
    keys = cell_cols(done_rows(df))
    cols = keys + ["policy", "n", "mean", "ci_lo", "ci_hi", "p", "p_holm", "seeds"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for k, g in long.groupby(keys + ["policy"], dropna=False):
        r = paired_test(g["drop"].to_numpy(float), np.zeros(len(g)), alpha).as_dict()
        out.append({**dict(zip(keys + ["policy"], k)), **r, "seeds": _seeds(g["seed"])})
    t = pd.DataFrame(out)
    t["p_holm"] = t.groupby(keys, dropna=False)["p"].transform(lambda p: holm(p.to_numpy()))
    return t[cols]


def leave_one_out_policies(policies) -> list[str]:
    return sorted(p for p in policies if isinstance(p, str) and p.startswith("no_"))


def ranking(drops: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-out ablations ranked by mean drop within each cell (rank 1 = removal hurts most)."""
    keys = key_cols(drops)
    d = drops[drops["policy"].isin(leave_one_out_policies(drops["policy"].unique()))].copy() if not drops.empty else drops
    cols = keys + ["rank", "augmentation", "policy", "mean", "ci_lo", "ci_hi", "n"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    d["augmentation"] = d["policy"].str.removeprefix("no_")
    d = d.sort_values(keys + ["mean"], ascending=[True] * len(keys) + [False])
    d["rank"] = d.groupby(keys, dropna=False).cumcount() + 1
    return d[cols].reset_index(drop=True)


# ---------------------------------------------------------------------- agreement with papers
def spearman(ours: dict[str, float], theirs: dict[str, float]) -> dict:
    """Spearman rank correlation over the keys both share (scipy.stats.spearmanr)."""
    common = sorted(set(ours) & set(theirs))
    out = {"n": len(common), "keys": common, "rho": math.nan, "p": math.nan}
    if len(common) >= 3:
        r = sps.spearmanr([ours[k] for k in common], [theirs[k] for k in common])
        out["rho"], out["p"] = float(r.statistic), float(r.pvalue)
    return out
