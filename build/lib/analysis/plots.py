"""Figures from result rows (PNG + PDF under results/figures/). Each figure is drawn only when its rows
exist; otherwise it returns the reason, which the report prints instead of an empty or made-up plot."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from analysis import stats as S  # noqa: E402

STRENGTH_RE = re.compile(r"^(?:(?P<base>.+)-)?(?P<knob>crop_scale|color|mask_ratio)=(?P<value>[-+0-9.eE]+)$")
PAIR_RE = re.compile(r"^(?:(?P<base>.+)-)?pair_(?P<a>[a-z]+)(?:\+(?P<b>[a-z]+))?$")
PROTOCOLS = {"knn_top1": "kNN", "linear_top1": "linear", "finetune_top1": "fine-tune"}


@dataclass
class FigureResult:
    name: str
    title: str
    files: list[Path] = field(default_factory=list)
    reason: str | None = None  # why it was not drawn
    n_runs: int = 0


def _save(fig, out_dir: Path, name: str, tight: bool = True) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [out_dir / f"{name}.png", out_dir / f"{name}.pdf"]
    if tight:  # room for the suptitle and two-line panel titles (seaborn's FacetGrid lays out itself)
        fig.tight_layout()
    fig.savefig(files[0], dpi=130, bbox_inches="tight")
    fig.savefig(files[1], bbox_inches="tight")
    plt.close(fig)
    return files


def _grid(n: int, w: float = 4.2, h: float = 3.4):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def _mlabel(metric: str) -> str:
    return {"knn_top1": "kNN top-1 (%)", "linear_top1": "linear top-1 (%)", "finetune_top1": "fine-tune top-1 (%)",
            "knn_top1_projector": "kNN top-1 on projector (%)"}.get(metric, metric)


# ---------------------------------------------------------------------- 1. leave-one-out drops
def leave_one_out(df, out_dir, metric="knn_top1", n_boot=10000, seed=0) -> FigureResult:
    res = FigureResult("loo_drop", f"Leave-one-out: drop in {_mlabel(metric)} vs full (95 % paired bootstrap CI)")
    long = S.paired_drops(df, metric)
    if not long.empty:
        long = long[long["policy"].isin(S.leave_one_out_policies(long["policy"].unique()))]
    if long.empty:
        res.reason = (f"no leave-one-out (no_*) runs with a matching `full` run of the same seed and a {metric} value")
        return res
    table = S.drop_table(df, metric, n_boot=n_boot, seed=seed)
    table = table[table["policy"].isin(long["policy"].unique())]
    keys = S.key_cols(table)
    cells = list(table.groupby(keys, dropna=False))
    fig, axes = _grid(len(cells))
    for ax, (k, t) in zip(axes, cells):
        t = t.sort_values("mean", ascending=False)
        x = np.arange(len(t))
        err = np.vstack([t["mean"] - t["ci_lo"], t["ci_hi"] - t["mean"]])
        ax.bar(x, t["mean"], color=sns.color_palette("deep")[0], alpha=0.8)
        ax.errorbar(x, t["mean"], yerr=err, fmt="none", ecolor="black", capsize=3)
        pts = long.merge(t[keys + ["policy"]], on=keys + ["policy"])
        order = {p: i for i, p in enumerate(t["policy"])}
        ax.scatter([order[p] for p in pts["policy"]], pts["drop"], s=9, color="tab:orange", zorder=3,
                   label="one seed")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(x, [f"{p.removeprefix('no_')}\n(n={n})" for p, n in zip(t["policy"], t["n"])], fontsize=8)
        ax.set_title(S.cell_label(dict(zip(keys, k))), fontsize=9)
        ax.set_ylabel(f"drop in {metric} (points)")
    axes[0].legend(fontsize=7)
    fig.suptitle(res.title, fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), f"loo_drop_{metric}"), int(len(long))
    return res


# ---------------------------------------------------------------------- 2. pairwise heatmap
def pairwise(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("pairwise", f"Pairwise compositions (SimCLR Fig. 5 style): mean {_mlabel(metric)}")
    d = S.done_rows(df)
    if d.empty or metric not in d:
        res.reason = "no finished runs"
        return res
    m = d["policy"].astype(str).str.extract(PAIR_RE)
    d = d.assign(a=m["a"], b=m["b"]).dropna(subset=["a", metric])
    if d.empty:
        res.reason = "no pairwise (pair_<a> / pair_<a>+<b>) runs"
        return res
    keys = S.cell_cols(d)
    cells = list(d.groupby(keys, dropna=False))
    fig, axes = _grid(len(cells), 4.2, 3.8)
    for ax, (k, g) in zip(axes, cells):
        groups = list(dict.fromkeys(list(g["a"]) + list(g["b"].dropna())))
        mat = pd.DataFrame(np.nan, index=groups, columns=groups)
        for (a, b), v in g.groupby(["a", g["b"].fillna(g["a"])])[metric].mean().items():
            mat.loc[a, b] = mat.loc[b, a] = v
        sns.heatmap(mat, annot=True, fmt=".1f", cmap="viridis", ax=ax, cbar_kws={"label": _mlabel(metric)},
                    mask=mat.isna())
        ax.set_xlabel("augmentation group")
        ax.set_ylabel("augmentation group")
        ax.set_title(S.cell_label(dict(zip(keys, k))), fontsize=9)
    fig.suptitle(res.title + " (diagonal = one group alone)", fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), f"pairwise_{metric}"), int(len(d))
    return res


# ---------------------------------------------------------------------- 3. strength curves
def strength(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("strength", f"Strength curves: {_mlabel(metric)} vs crop min scale, colour strength, "
                                   "mask ratio (ResNet vs ViT)")
    d = S.done_rows(df)
    if d.empty or metric not in d:
        res.reason = "no finished runs"
        return res
    m = d["policy"].astype(str).str.extract(STRENGTH_RE)
    d = d.assign(knob=m["knob"], value=pd.to_numeric(m["value"])).dropna(subset=["knob", metric])
    d = d[d.groupby(["knob"])["value"].transform("nunique") >= 2]
    if d.empty:
        res.reason = "no strength sweep (crop_scale=/color=/mask_ratio=) with at least two values"
        return res
    knobs = sorted(d["knob"].unique())
    fig, axes = _grid(len(knobs))
    for ax, knob in zip(axes, knobs):
        g = d[d["knob"] == knob]
        sns.lineplot(g, x="value", y=metric, hue="backbone", style="method", markers=True, errorbar="sd",
                     ax=ax, seed=0)
        ax.set_title(f"{knob} (n={len(g)} runs; ±1 sd over seeds)", fontsize=9)
        ax.set_xlabel(knob)
        ax.set_ylabel(_mlabel(metric))
    fig.suptitle(res.title, fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), f"strength_{metric}"), int(len(d))
    return res


# ---------------------------------------------------------------------- 4. projector
def projector(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("projector", "Projector: kNN on backbone vs projector output; accuracy vs projector depth")
    d = S.done_rows(df)
    both = d.dropna(subset=["knn_top1", "knn_top1_projector"]) if {"knn_top1", "knn_top1_projector"} <= set(d) else d.iloc[0:0]
    depth = d.dropna(subset=[metric]) if ("proj_depth" in d and metric in d) else d.iloc[0:0]
    if not both.empty and (both["policy"] == S.BASELINE).any():
        both = both[both["policy"] == S.BASELINE]  # one bar pair per method: the baseline policy
    if not depth.empty:  # a curve per cell (backbone, momentum, ... alike) and policy with >= 2 depths
        keys = [c for c in S.cell_cols(depth) if c != "proj_depth"] + ["policy"]
        depth = depth[depth.groupby(keys, dropna=False)["proj_depth"].transform("nunique") >= 2]
        keys = [c for c in S.cell_cols(depth) if c != "proj_depth"]
        depth = depth.assign(series=[S.cell_label(dict(zip(keys, k)), sep=", ") + f" / {p}"
                                     for k, p in zip(zip(*(depth[c] for c in keys)), depth["policy"])])
    panels = [p for p, ok in (("where", not both.empty), ("depth", not depth.empty)) if ok]
    if not panels:
        res.reason = "no runs with both knn_top1 and knn_top1_projector, and no projector-depth sweep"
        return res
    fig, axes = _grid(len(panels), 5, 3.6)
    for ax, panel in zip(axes, panels):
        if panel == "where":
            long = both.melt(id_vars=["method", "backbone", "seed"], value_vars=["knn_top1", "knn_top1_projector"],
                             var_name="features", value_name="acc")
            long["features"] = long["features"].map({"knn_top1": "backbone", "knn_top1_projector": "projector"})
            long["x"] = long["method"] + "\n" + long["backbone"]
            sns.barplot(long, x="x", y="acc", hue="features", errorbar=("ci", 95), seed=0, ax=ax)
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, title_fontsize=7)  # off the bars
            ax.set_xlabel("")
            ax.set_ylabel("kNN top-1 (%)")
            pols = ", ".join(sorted(both["policy"].unique()))
            ax.set_title(f"kNN on backbone vs projector output\npolicy {pols} (n={len(both)} runs)", fontsize=9)
        else:
            sns.lineplot(depth, x="proj_depth", y=metric, hue="series", marker="o", errorbar="sd", seed=0, ax=ax)
            ax.set_title(f"{metric} vs projector depth (n={len(depth)} runs; ±1 sd over seeds)", fontsize=9)
            ax.set_xticks(sorted(int(x) for x in depth["proj_depth"].unique()))
            ax.set_xlabel("projector depth (0 = no projector)")
            ax.set_ylabel(_mlabel(metric))
            ax.legend(fontsize=7, title=None)
    fig.suptitle(res.title, fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), "projector"), int(len(both) + len(depth))
    if "where" not in panels:
        res.reason = "partial: no runs with knn_top1_projector"
    elif "depth" not in panels:
        res.reason = "partial: no projector-depth sweep (proj_depth varied within a method and policy)"
    return res


# ---------------------------------------------------------------------- 5. momentum
def momentum(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("momentum", f"Momentum encoder on/off under full and weak augmentation ({_mlabel(metric)})")
    d = S.done_rows(df)
    if d.empty or metric not in d:
        res.reason = "no finished runs"
        return res
    d = d[d["policy"].isin(["full", "weak"])].dropna(subset=[metric])
    d = d.assign(momentum_on=d["momentum"].astype(bool))
    # compare on/off only within a cell (same backbone, projector depth, ...): a panel per cell
    keys = [c for c in S.cell_cols(d) if c != "momentum"] if not d.empty else []
    if keys:
        d = d[d.groupby(keys + ["policy"], dropna=False)["momentum_on"].transform("nunique") == 2]
    if d.empty:
        res.reason = "no method with runs both with and without the momentum encoder under full or weak"
        return res
    keys = [c for c in S.cell_cols(d) if c != "momentum"]
    d = d.assign(momentum_on=d["momentum_on"].map({True: "on", False: "off"}),
                 cell=[S.cell_label(dict(zip(keys, k)), sep="\n") for k in zip(*(d[c] for c in keys))])
    g = sns.catplot(d, x="policy", y=metric, hue="momentum_on", col="cell", kind="bar", errorbar=("ci", 95),
                    order=["full", "weak"], hue_order=["off", "on"], height=3.2, seed=0,
                    col_wrap=3 if d["cell"].nunique() > 3 else None)
    g.set_titles("{col_name}")
    g.set_axis_labels("policy", _mlabel(metric))
    g.legend.set_title("momentum encoder")
    g.figure.suptitle(res.title + f"; n={len(d)} runs", fontsize=10, y=1.04)
    res.files, res.n_runs = _save(g.figure, Path(out_dir), f"momentum_{metric}", tight=False), int(len(d))
    return res


# ---------------------------------------------------------------------- 6. evaluation protocols
def protocols(df, out_dir) -> FigureResult:
    res = FigureResult("protocols", "Feature extraction (kNN, linear) vs fine-tuning")
    d = S.done_rows(df)
    cols = [c for c in PROTOCOLS if c in d and d[c].notna().any()]
    if len(cols) < 2:
        res.reason = f"fewer than two evaluation protocols recorded (found: {cols or 'none'})"
        return res
    # sweeps (pairwise, strength) have their own figures; keep the named policies here
    pol = d["policy"].astype(str)
    d = d[~(pol.str.match(PAIR_RE) | pol.str.match(STRENGTH_RE))]
    keys = S.cell_cols(d)  # a panel per cell: runs of other backbones, depths, ... are not averaged together
    d = d.assign(cell=[S.cell_label(dict(zip(keys, k)), sep="\n") for k in zip(*(d[c] for c in keys))])
    long = d.melt(id_vars=["cell", "policy", "seed"], value_vars=cols, var_name="protocol",
                  value_name="acc").dropna(subset=["acc"])
    long["protocol"] = long["protocol"].map(PROTOCOLS)
    order = sorted(long["policy"].unique(), key=lambda p: (p != "full", p))
    g = sns.catplot(long, y="policy", x="acc", hue="protocol", col="cell", kind="bar", errorbar=("ci", 95),
                    order=order, height=(h := max(2.5, 0.45 * len(order))), aspect=max(0.9, 4.0 / h), seed=0,
                    col_wrap=3 if long["cell"].nunique() > 3 else None)
    g.set_titles("{col_name}")
    g.set_axis_labels("top-1 (%)", "policy")
    g.figure.suptitle(res.title + f"; n={len(d)} runs", fontsize=10, y=1.03)
    res.files, res.n_runs = _save(g.figure, Path(out_dir), "protocols", tight=False), int(len(d))
    if "finetune_top1" not in cols:
        res.reason = "partial: no fine-tuning results (finetune_epochs was 0); kNN vs linear only"
    return res


def make_all(df: pd.DataFrame, out_dir, metric: str = "knn_top1", n_boot: int = 10000, seed: int = 0):
    out_dir = Path(out_dir)
    return [leave_one_out(df, out_dir, metric, n_boot, seed), pairwise(df, out_dir, metric),
            strength(df, out_dir, metric), projector(df, out_dir, metric), momentum(df, out_dir, metric),
            protocols(df, out_dir)]
