"""Statistics over result rows: mean ± std over seeds, drops vs `full` paired by seed, paired bootstrap
CIs and p-values, rankings, the "is crop the most important augmentation?" verdict, rank agreement.

Drops are `full - ablation` in accuracy points: positive means removing the augmentation hurt.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from scipy import stats as sps

from augbench.config import EXECUTION_FIELDS, RunConfig

BASELINE = "full"
# A cell: everything that must match for two runs to be comparable, except the policy and seed.
CELL = ("method", "backbone", "dataset", "epochs")
METRICS = ("knn_top1", "knn_top1_projector", "linear_top1", "finetune_top1", "knn_top1_random_init")


# Config fields that, when they vary between runs, also split cells (proj_depth, momentum, width, ...).
DESIGN = tuple(f.name for f in fields(RunConfig) if f.name not in (*CELL, "policy", "seed", *EXECUTION_FIELDS))


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
    """The columns that define a cell: method/backbone/dataset/epochs plus any design field that varies."""
    extra = [c for c in DESIGN if c in df.columns and df[c].astype(str).nunique() > 1]
    return [c for c in CELL if c in df.columns] + extra


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


def key_cols(table: pd.DataFrame) -> list[str]:
    """The cell columns of a drop table (everything before `policy`)."""
    cols = list(table.columns)
    return cols[: cols.index("policy")] if "policy" in cols else []


# ---------------------------------------------------------------------- summaries
def summarize(df: pd.DataFrame, metric: str, by: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Mean, std (ddof=1; NaN for one seed) and n seeds of `metric` per cell and policy."""
    df = done_rows(df)
    by = list(by) if by else cell_cols(df) + ["policy"]
    cols = by + ["mean", "std", "n", "seeds"]
    if df.empty or metric not in df:
        return pd.DataFrame(columns=cols)
    d = df.dropna(subset=[metric])
    if d.empty:
        return pd.DataFrame(columns=cols)
    g = d.groupby(by, dropna=False)
    out = g[metric].agg(mean="mean", std="std", n="count").reset_index()
    out["seeds"] = g["seed"].apply(lambda s: ",".join(str(int(x)) for x in sorted(s))).values
    return out[cols]


# ---------------------------------------------------------------------- paired tests
def bootstrap_ci(diffs, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile CI of the mean of paired differences, resampling pairs (seeded, deterministic)."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return (math.nan, math.nan)
    if d.size == 1:
        return (float(d[0]), float(d[0]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    means = d[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def permutation_p(diffs, n_perm: int = 10000, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p for mean(diffs) != 0: exact over all 2^n flips when n <= 16."""
    d = np.asarray(diffs, dtype=float)
    n = d.size
    if n == 0:
        return math.nan
    obs = abs(d.mean())
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_perm, n))
    null = np.abs((signs * d).mean(axis=1))
    # the tolerance keeps float noise from splitting ties (e.g. all diffs equal)
    return float(np.mean(null >= obs - 1e-12))


def ttest_p(diffs) -> float:
    """Two-sided paired t-test p (scipy.stats.ttest_rel on (diffs, 0)); NaN under two pairs."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return math.nan
    if np.allclose(d, d[0]):  # zero variance: scipy gives NaN; a constant non-zero diff is certain
        return 1.0 if d[0] == 0 else 0.0
    return float(sps.ttest_rel(d, np.zeros_like(d)).pvalue)


@dataclass
class PairedResult:
    n: int
    mean: float
    ci_lo: float
    ci_hi: float
    p_t: float
    p_perm: float

    def as_dict(self) -> dict:
        return dict(n=self.n, mean=self.mean, ci_lo=self.ci_lo, ci_hi=self.ci_hi, p_t=self.p_t, p_perm=self.p_perm)


def paired_test(a, b, n_boot: int = 10000, alpha: float = 0.05, seed: int = 0) -> PairedResult:
    """Compare a and b paired element-wise (same seed): statistics of a - b."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal length, got {a.size} and {b.size}")
    d = a - b
    lo, hi = bootstrap_ci(d, n_boot, alpha, seed)
    return PairedResult(int(d.size), float(d.mean()) if d.size else math.nan, lo, hi, ttest_p(d),
                        permutation_p(d, n_boot, seed))


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


def drop_table(df: pd.DataFrame, metric: str, baseline: str = BASELINE, n_boot: int = 10000,
               alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """One line per (cell, ablation): mean drop with paired bootstrap CI, t-test and permutation p."""
    long = paired_drops(df, metric, baseline)
    keys = cell_cols(done_rows(df))
    cols = keys + ["policy", "n", "mean", "ci_lo", "ci_hi", "p_t", "p_perm", "seeds"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for k, g in long.groupby(keys + ["policy"], dropna=False):
        g = g.sort_values("seed")
        r = paired_test(g["drop"].values, np.zeros(len(g)), n_boot, alpha, seed).as_dict()
        out.append({**dict(zip(keys + ["policy"], k)), **r, "seeds": ",".join(str(int(s)) for s in g["seed"])})
    return pd.DataFrame(out, columns=cols)


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


# ---------------------------------------------------------------------- the crop verdict
@dataclass
class Verdict:
    answer: str  # "yes" | "no" | "undecided"
    reason: str
    top: str | None = None
    runner_up: str | None = None
    n: int = 0
    mean_diff: float = math.nan
    p_t: float = math.nan
    p_perm: float = math.nan


def crop_verdict(drops_by_aug: dict[str, np.ndarray], alpha: float = 0.05, min_seeds: int = 2,
                 n_boot: int = 10000, seed: int = 0, target: str = "crop") -> Verdict:
    """Is `target` the most important augmentation? `drops_by_aug`: augmentation -> per-seed drops,
    aligned by seed (same seeds in the same order for every augmentation).

    yes: target's mean drop is the largest and larger than the runner-up's by a paired t-test at alpha;
    no: another augmentation's drop is the largest and significantly larger than target's;
    undecided: otherwise, including target missing, nothing to compare against, or under min_seeds."""
    if target not in drops_by_aug:
        return Verdict("undecided", f"no leave-one-out run without {target}")
    others = {k: np.asarray(v, float) for k, v in drops_by_aug.items() if k != target}
    if not others:
        return Verdict("undecided", f"only {target} was removed; nothing to compare against")
    t = np.asarray(drops_by_aug[target], float)
    if any(v.shape != t.shape for v in others.values()):
        raise ValueError("drops must be aligned by seed (equal lengths)")
    n = int(t.size)
    means = {k: float(v.mean()) for k, v in others.items()}
    best_other = max(means, key=means.get)
    crop_top = float(t.mean()) >= means[best_other]
    top, runner = (target, best_other) if crop_top else (best_other, target)
    if n < min_seeds:
        return Verdict("undecided", f"{n} paired seed(s); at least {min_seeds} needed for a test", top, runner, n)
    a = t if crop_top else others[best_other]
    b = others[best_other] if crop_top else t
    r = paired_test(a, b, n_boot, alpha, seed)
    sig = r.p_t < alpha and r.mean > 0
    if sig:
        answer = "yes" if crop_top else "no"
        why = (f"drop without {top} exceeds drop without {runner} by {r.mean:.2f} points "
               f"(paired t-test p={r.p_t:.3g} < {alpha}, n={n})")
    else:
        answer = "undecided"
        why = (f"{top} has the largest mean drop, but not significantly above {runner} "
               f"(diff {r.mean:.2f}, paired t-test p={_fmt_p(r.p_t)}, n={n})")
    return Verdict(answer, why, top, runner, n, r.mean, r.p_t, r.p_perm)


def _fmt_p(p: float) -> str:
    return "n/a" if p != p else f"{p:.3g}"


def verdicts(df: pd.DataFrame, metric: str, alpha: float = 0.05, min_seeds: int = 2, n_boot: int = 10000,
             seed: int = 0, baseline: str = BASELINE) -> pd.DataFrame:
    """The crop verdict per cell, from leave-one-out drops on seeds where every ablation ran."""
    long = paired_drops(df, metric, baseline)
    keys = cell_cols(done_rows(df))
    cols = keys + ["answer", "reason", "top", "runner_up", "n", "mean_diff", "p_t", "p_perm"]
    if long.empty:
        return pd.DataFrame(columns=cols)
    long = long[long["policy"].isin(leave_one_out_policies(long["policy"].unique()))]
    out = []
    for k, g in long.groupby(keys, dropna=False):
        wide = g.pivot_table(index="seed", columns="policy", values="drop").dropna()  # common seeds
        d = {c.removeprefix("no_"): wide[c].values for c in wide.columns}
        v = crop_verdict(d, alpha, min_seeds, n_boot, seed)
        out.append({**dict(zip(keys, k)), **{c: getattr(v, c) for c in cols[len(keys):]}})
    return pd.DataFrame(out, columns=cols)


# ---------------------------------------------------------------------- agreement with papers
def spearman(ours: dict[str, float], theirs: dict[str, float]) -> dict:
    """Spearman rank correlation over the keys both share (scipy.stats.spearmanr)."""
    common = sorted(set(ours) & set(theirs))
    out = {"n": len(common), "keys": common, "rho": math.nan, "p": math.nan}
    if len(common) >= 3:
        r = sps.spearmanr([ours[k] for k in common], [theirs[k] for k in common])
        out["rho"], out["p"] = float(r.statistic), float(r.pvalue)
    return out
