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

from analysis import labels  # noqa: E402
from analysis import stats as S  # noqa: E402
from analysis import verdicts as V  # noqa: E402

STRENGTH_RE = re.compile(r"^(?:(?P<base>.+)-)?(?P<knob>crop_scale|color|mask_ratio)=(?P<value>[-+0-9.eE]+)$")
PAIR_RE = re.compile(r"^(?:(?P<base>.+)-)?pair_(?P<a>[a-z]+)(?:\+(?P<b>[a-z]+))?$")
PROTOCOLS = {"knn_top1": "kNN", "linear_top1": "linear", "finetune_top1": "fine-tune"}
# TrueType (Type 42) fonts in PDF/PS: journals reject Type 3 bitmaps, and the text stays selectable
FONTS = {"pdf.fonttype": 42, "ps.fonttype": 42}
RANDOM_STYLE = dict(color="black", ls="--", lw=1.0)


def t_errorbar(x):
    """seaborn `errorbar=` callable: the 95 % Student-t interval over seeds (nothing drawn for one seed)."""
    return S.t_interval(np.asarray(x, float))


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
    with matplotlib.rc_context(FONTS):
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
    return f"{labels.metric(metric)} (%)"


def _interval_note(ns) -> str:
    """What the whiskers are, or that there are none: never promise an interval one seed cannot give."""
    return ("whiskers: 95 % t-interval over seeds" if max(ns, default=0) >= 2
            else "one seed: no interval")


# ---------------------------------------------------------------------- 1. drops vs full
def _ablation(policy) -> bool:
    return str(policy).startswith("no_") or bool(V.ONLY_RE.match(str(policy)))


def drops(df, out_dir, alpha=0.05) -> FigureResult:
    """Drop vs full of every leave-one-out (no_*) and only-one (<aug>_only) arm, kNN and linear side by side,
    with the drop an encoder that learned nothing would show (full - random-init kNN) as a reference line."""
    res = FigureResult("drops", "Drop vs full: leave-one-out and only-one arms, kNN and linear")
    d = S.done_rows(df)
    metrics = [m for m in ("knn_top1", "linear_top1") if m in d and d[m].notna().any()]
    tabs = {m: S.drop_table(df, m, alpha=alpha) for m in metrics}
    tabs = {m: t[t["policy"].map(_ablation)] for m, t in tabs.items() if not t.empty}
    tabs = {m: t for m, t in tabs.items() if not t.empty}
    if not tabs:
        res.reason = "no leave-one-out (no_*) or only-one (<aug>_only) runs with a `full` run of the same seed"
        return res
    metrics = list(tabs)
    keys = S.key_cols(next(iter(tabs.values())))
    both = pd.concat(tabs.values())
    cells = list(both.groupby(keys, dropna=False).groups)
    fig, axes = _grid(len(cells), 5.2, 3.8)
    colors = sns.color_palette("deep")
    width = 0.8 / len(metrics)
    for ax, k in zip(axes, cells):
        key = dict(zip(keys, k if isinstance(k, tuple) else (k,)))
        sel = {m: S.in_cell(t, key).set_index("policy") for m, t in tabs.items()}
        first = sel[metrics[0]]
        order = sorted(set().union(*(t.index for t in sel.values())),
                       key=lambda p: (not str(p).startswith("no_"), -first["mean"].get(p, -np.inf), p))
        x = np.arange(len(order))
        for i, m in enumerate(metrics):
            t = sel[m].reindex(order)
            xs = x + (i - (len(metrics) - 1) / 2) * width
            ax.bar(xs, t["mean"], width, color=colors[i], alpha=0.85, label=PROTOCOLS[m])
            ok = t["ci_lo"].notna().to_numpy()
            err = np.vstack([t["mean"] - t["ci_lo"], t["ci_hi"] - t["mean"]])[:, ok]
            ax.errorbar(xs[ok], t["mean"][ok], yerr=err, fmt="none", ecolor="black", capsize=3)
        rand = _nothing_learned(d, key)
        if rand is not None:
            ax.axhline(rand, **RANDOM_STYLE, label=f"kNN drop to the random-init encoder ({rand:.1f})")
        ax.axhline(0, color="grey", lw=0.8)
        ns = [int(max(t["n"].get(p, 0) for t in sel.values())) for p in order]
        ax.set_xticks(x, [f"{labels.policy(p)}\n(n={n})" for p, n in zip(order, ns)], fontsize=8)
        ax.set_title(labels.cell(key, sep=" / "), fontsize=9)
        ax.set_ylabel("drop vs full (points)")
        top = max([float(np.nanmax(t["ci_hi"].fillna(t["mean"]))) for t in sel.values()] + [rand or 0.0])
        ax.set_ylim(top=top + 0.4 * abs(top))  # room for the legend above the bars, never over them
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    ns = both["n"].astype(int).tolist()
    res.title = f"{res.title} ({_interval_note(ns)})"
    fig.suptitle(res.title, fontsize=10)
    runs = d[d["policy"].map(_ablation) | d["policy"].eq(S.BASELINE)]
    res.files, res.n_runs = _save(fig, Path(out_dir), "drops"), int(len(runs))
    return res


def _nothing_learned(d: pd.DataFrame, key: dict) -> float | None:
    """Mean over seeds of full's kNN minus the random-init kNN: the drop of an arm that learned nothing."""
    if S.RANDOM_INIT not in d or "knn_top1" not in d:
        return None
    full = S.in_cell(d[d["policy"] == S.BASELINE], key)
    gap = (full["knn_top1"] - full[S.RANDOM_INIT]).dropna()
    return float(gap.mean()) if len(gap) else None


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
    res.title = f"Strength curves: {_mlabel(metric)} vs {', '.join(knobs)} ({', '.join(sorted(d['backbone'].unique()))})"
    fig, axes = _grid(len(knobs))
    for ax, knob in zip(axes, knobs):
        g = d[d["knob"] == knob]
        sns.lineplot(g, x="value", y=metric, hue="backbone", style="method", markers=True, errorbar=t_errorbar, ax=ax)
        ax.set_title(f"{knob} (n={len(g)} runs; {_interval_note(_group_sizes(g, ['value', 'backbone', 'method']))})",
                     fontsize=9)
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
    res.title = "Projector: " + "; ".join(t for p, t in (("where", "kNN on backbone vs projector output"),
                                                          ("depth", "accuracy vs projector depth")) if p in panels)
    fig, axes = _grid(len(panels), 5, 3.6)
    for ax, panel in zip(axes, panels):
        if panel == "where":
            ns = _where_panel(ax, both)
            pols = ", ".join(sorted(both["policy"].unique()))
            ax.set_title(f"kNN on backbone vs projector output, policy {pols}\n(n={len(both)} runs; "
                         f"{_interval_note(ns)})", fontsize=9)
        else:
            sns.lineplot(depth, x="proj_depth", y=metric, hue="series", marker="o", errorbar=t_errorbar, ax=ax)
            ax.set_title(f"{labels.metric(metric)} vs projector depth (n={len(depth)} runs; "
                         f"{_interval_note(_group_sizes(depth, ['series', 'proj_depth']))})", fontsize=9)
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


def _group_sizes(d: pd.DataFrame, by: list[str]) -> list[int]:
    return d.groupby(by, dropna=False).size().tolist()


def _where_panel(ax, both: pd.DataFrame) -> list[int]:
    """Backbone vs projector kNN as points with t-intervals, on an axis fitted to the points (a bar axis from
    0 would hide a gap of a point or two), with the gap written beside each pair."""
    ns = []
    for i, ((method, backbone), g) in enumerate(both.groupby(["method", "backbone"])):
        for j, (col, name) in enumerate((("knn_top1", "backbone"), ("knn_top1_projector", "projector output"))):
            x = g[col].to_numpy(float)
            lo, hi = S.t_interval(x)
            m = float(x.mean())
            yerr = [[m - lo], [hi - m]] if lo == lo else None
            ax.errorbar(i + (j - 0.5) * 0.3, m, yerr=yerr, fmt="o", color=sns.color_palette("deep")[j], capsize=4,
                        label=name if i == 0 else None)
        gap = float((g["knn_top1"] - g["knn_top1_projector"]).mean())
        ax.annotate(f"Δ {gap:+.2f}", (i + 0.2, float(g[["knn_top1", "knn_top1_projector"]].to_numpy().mean())),
                    fontsize=8)
        ns.append(len(g))
    keys = list(both.groupby(["method", "backbone"]).groups)
    ax.set_xticks(range(len(keys)), [f"{labels.value('method', m)}\n{labels.value('backbone', b)}" for m, b in keys])
    ax.set_xlim(-0.6, len(keys) - 0.2)
    ax.margins(y=0.25)
    ax.set_ylabel("kNN top-1 (%)")
    ax.legend(fontsize=7)
    return ns


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
    g = sns.catplot(d, x="policy", y=metric, hue="momentum_on", col="cell", kind="bar", errorbar=t_errorbar,
                    order=["full", "weak"], hue_order=["off", "on"], height=3.2,
                    col_wrap=3 if d["cell"].nunique() > 3 else None)
    g.set_titles("{col_name}")
    g.set_axis_labels("policy", _mlabel(metric))
    g.legend.set_title("momentum encoder")
    sizes = _group_sizes(d, ["cell", "policy", "momentum_on"])
    g.figure.suptitle(res.title + f"; n={len(d)} runs; {_interval_note(sizes)}", fontsize=10, y=1.04)
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
    g = sns.catplot(long, y="policy", x="acc", hue="protocol", col="cell", kind="bar", errorbar=t_errorbar,
                    order=order, height=(h := max(2.5, 0.45 * len(order))), aspect=max(0.9, 4.0 / h),
                    col_wrap=3 if long["cell"].nunique() > 3 else None)
    g.set_titles("{col_name}")
    g.set_axis_labels("top-1 (%)", "policy")
    if S.RANDOM_INIT in d:  # what an untrained encoder scores: an arm near it learned next to nothing
        for cell, ax in g.axes_dict.items():
            r = d.loc[d["cell"] == cell].groupby("seed")[S.RANDOM_INIT].mean().dropna()
            if len(r):
                ax.axvline(float(r.mean()), **RANDOM_STYLE)
                ax.set_xlabel(f"top-1 (%); dashed: random-init kNN ({r.mean():.1f})")
    sizes = _group_sizes(long, ["cell", "policy", "protocol"])
    g.figure.suptitle(res.title + f"; n={len(d)} runs; {_interval_note(sizes)}", fontsize=10, y=1.03)
    res.files, res.n_runs = _save(g.figure, Path(out_dir), "protocols", tight=False), int(len(d))
    if "finetune_top1" not in cols:
        res.reason = "partial: no fine-tuning results (finetune_epochs was 0); kNN vs linear only"
    return res


def make_all(df: pd.DataFrame, out_dir, metric: str = "knn_top1", alpha: float = 0.05):
    out_dir = Path(out_dir)
    return [drops(df, out_dir, alpha), pairwise(df, out_dir, metric),
            strength(df, out_dir, metric), projector(df, out_dir, metric), momentum(df, out_dir, metric),
            protocols(df, out_dir)]
