"""Figures from result rows (PNG + PDF under results/figures/). Each figure is drawn only when its rows
exist; otherwise it returns the reason, which the report prints instead of an empty or made-up plot.

Every figure names cells, policies and protocols the same way (analysis.labels) and colours them from one
palette (labels.PALETTE). Groups of at least SMALL_N seeds get a 95 % t-interval; smaller groups show their
seeds as dots instead (an interval from two seeds is wider than any bar). Files are byte-identical when
redrawn from the same rows: no dates or versions are written into them."""
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

STRENGTH_RE = S.STRENGTH_RE
PAIR_RE = re.compile(r"^(?:(?P<base>.+)-)?pair_(?P<a>[a-z]+)(?:\+(?P<b>[a-z]+))?$")
PROTOCOLS = labels.PROTOCOL
# TrueType (Type 42) fonts in PDF/PS: journals reject Type 3 bitmaps, and the text stays selectable; a fixed SVG
# hash salt, so ids do not change between runs
RC = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.hashsalt": "augbench"}
# no creation date or software version in the files: redrawing from the same rows changes no byte
METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "Producer": None}}
RANDOM_STYLE = dict(color="black", ls="--", lw=1.0)
SMALL_N = 3  # fewer seeds than this: dots, not an interval
DOT = dict(s=14, color="black", zorder=3, linewidths=0)


def t_errorbar(x):
    """seaborn `errorbar=` callable: the 95 % Student-t interval over seeds, none under SMALL_N seeds."""
    x = np.asarray(x, float)
    return S.t_interval(x) if x.size >= SMALL_N else (math.nan, math.nan)


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
    with matplotlib.rc_context(RC):
        for f in files:
            fig.savefig(f, dpi=130, bbox_inches="tight", metadata=METADATA[f.suffix])
    plt.close(fig)
    return files


def _title(key: dict) -> str:
    """A panel's cell, as in every figure: 'SimCLR / ResNet-18 / CIFAR-10 / 30 ep' (+ a line of design fields)."""
    return labels.cell(key, sep=" / ", extra_sep="\n")


def _cell_names(d: pd.DataFrame, keys: list[str]) -> list[str]:
    return [_title(dict(zip(keys, k))) for k in zip(*(d[c] for c in keys))]


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
    """What the whiskers and dots are: never promise an interval the seeds cannot give."""
    ns = list(ns) or [0]
    if max(ns) <= 1:
        return "one seed: no interval"
    if max(ns) < SMALL_N:
        return f"n < {SMALL_N}: seeds as dots, no interval"
    if min(ns) >= SMALL_N:
        return "whiskers: 95 % t-interval over seeds"
    return f"whiskers: 95 % t-interval over seeds (n ≥ {SMALL_N}); dots: the seeds where n < {SMALL_N}"


def _small(d: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The rows of groups with fewer than SMALL_N seeds: drawn as dots instead of an interval."""
    return d[d.groupby(by, dropna=False)[by[0]].transform("size") < SMALL_N] if len(d) else d


# ---------------------------------------------------------------------- 1. leave-one-out drops, only-one arms
def _metrics(d: pd.DataFrame) -> list[str]:
    return [m for m in ("knn_top1", "linear_top1") if m in d and d[m].notna().any()]


def _bar_panel(ax, long: pd.DataFrame, res: float) -> list[int]:
    """Bars of the mean per policy (x) and protocol (colour) from per-seed `value`s: a t-interval where a bar
    has SMALL_N seeds or more, else its seeds as dots. Returns the seed counts."""
    metrics = [m for m in PROTOCOLS if m in set(long["metric"])]
    order = sorted(long["policy"].unique(), key=lambda p: (-long.loc[long["policy"] == p, "value"].mean(), p))
    x, width, ns, seen = np.arange(len(order)), 0.8 / len(metrics), [], set()
    for i, m in enumerate(metrics):
        xs = x + (i - (len(metrics) - 1) / 2) * width
        for xi, p in zip(xs, order):
            v = long.loc[(long["policy"] == p) & (long["metric"] == m), "value"].to_numpy(float)
            if not v.size:
                continue
            ax.bar(xi, v.mean(), width, color=labels.PALETTE[PROTOCOLS[m]],
                   label=None if m in seen else PROTOCOLS[m])
            seen.add(m)
            if v.size >= SMALL_N:
                lo, hi = S.t_interval(v, floor=res)
                ax.errorbar(xi, v.mean(), yerr=[[v.mean() - lo], [hi - v.mean()]], fmt="none", ecolor="black",
                            capsize=3)
            else:
                ax.scatter(np.full(v.size, xi), v, **DOT)
            ns.append(int(v.size))
    n = long.groupby("policy")["seed"].nunique()
    ax.set_xticks(x, [f"{labels.policy(p)}\n(n={n[p]})" for p in order], fontsize=8)
    ax.axhline(0, color="grey", lw=0.8)
    return ns


def _bars(df, out_dir, res: FigureResult, long: pd.DataFrame, ylabel: str, refs) -> FigureResult:
    """One panel per cell of `long` (cell keys, seed, policy, metric, value); refs(ax, key) draws reference lines."""
    d = S.done_rows(df)
    keys = S.cell_cols(d)
    cells = list(long.groupby(keys, dropna=False))
    fig, axes = _grid(len(cells), 5.2, 3.8)
    ns = []
    for ax, (k, g) in zip(axes, cells):
        key = dict(zip(keys, k))
        ns += _bar_panel(ax, g, S.resolution(S.in_cell(d, key)))
        refs(ax, key)
        ax.set_title(_title(key), fontsize=9)
        ax.set_ylabel(ylabel)
        lo, hi = ax.get_ylim()
        ax.set_ylim(top=hi + 0.35 * (hi - lo))  # room for the legend above the bars, never over them
        ax.legend(fontsize=7, loc="upper center", ncol=2)
    res.title = f"{res.title} ({_interval_note(ns)})"
    fig.suptitle(res.title, fontsize=10)
    res.files = _save(fig, Path(out_dir), res.name)
    return res


def drops(df, out_dir, alpha=0.05) -> FigureResult:
    """Drop vs full of every leave-one-out (no_*) arm, kNN and linear side by side, with the drop an encoder that
    learned nothing would show (full - random-init kNN) as a reference line."""
    res = FigureResult("drops", "Leave-one-out: drop vs full when one augmentation is removed, kNN and linear")
    d = S.done_rows(df)
    parts = [S.paired_drops(df, m).assign(metric=m) for m in _metrics(d)]
    long = pd.concat(parts).rename(columns={"drop": "value"}) if parts else pd.DataFrame(columns=["policy"])
    long = long[long["policy"].astype(str).str.startswith("no_")]
    if long.empty:
        res.reason = "no leave-one-out (no_*) runs with a `full` run of the same seed"
        return res

    def refs(ax, key):
        rand = _nothing_learned(d, key)
        if rand is not None:
            ax.axhline(rand, **RANDOM_STYLE, label=f"kNN drop to the random-init encoder ({rand:.1f})")

    res = _bars(df, out_dir, res, long, "drop vs full (points)", refs)
    res.n_runs = int(len(d[d["policy"].astype(str).str.startswith("no_") | d["policy"].eq(S.BASELINE)]))
    return res


def only_one(df, out_dir) -> FigureResult:
    """Accuracy of every only-one (<aug>_only) arm, kNN and linear side by side, beside `full` and the
    random-init encoder (dashed lines): SimCLR Fig. 5's diagonal, apart from the leave-one-out drops."""
    res = FigureResult("only_one", "Only-one: accuracy with a single augmentation, kNN and linear")
    d = S.done_rows(df)
    arms = d[d["policy"].astype(str).str.match(V.ONLY_RE)] if len(d) else d
    metrics = _metrics(d)
    if arms.empty or not metrics:
        res.reason = "no only-one (<aug>_only) runs"
        return res
    keys = S.cell_cols(d)
    long = arms.melt(id_vars=keys + ["policy", "seed"], value_vars=metrics, var_name="metric").dropna(subset=["value"])

    def refs(ax, key):
        cell = S.in_cell(d, key)
        for m in metrics:
            full = cell.loc[cell["policy"] == S.BASELINE, m].dropna()
            if len(full):
                ax.axhline(full.mean(), color=labels.PALETTE[PROTOCOLS[m]], ls=":", lw=1.2,
                           label=f"full, {PROTOCOLS[m]} ({full.mean():.1f})")
        if S.RANDOM_INIT in cell and cell[S.RANDOM_INIT].notna().any():
            r = cell.groupby("seed")[S.RANDOM_INIT].mean().mean()
            ax.axhline(r, **RANDOM_STYLE, label=f"random-init encoder, kNN ({r:.1f})")

    res = _bars(df, out_dir, res, long, "top-1 (%)", refs)
    res.n_runs = int(len(arms))
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
        ax.set_title(_title(dict(zip(keys, k))), fontsize=9)
    fig.suptitle(res.title + " (diagonal = one group alone)", fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), f"pairwise_{metric}"), int(len(d))
    return res


# ---------------------------------------------------------------------- 3. strength curves
def strength(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("strength", f"Strength curves: {_mlabel(metric)} vs crop min scale, colour strength, "
                                   "mask ratio (ResNet vs ViT)")
    d = S.strength_rows(df, metric)
    if d.empty:
        res.reason = "no strength sweep (crop_scale=/color=/mask_ratio=) with at least two values"
        return res
    # a panel per knob and data set / epochs; a line per method and backbone (and any other cell field)
    keys = [c for c in S.cell_cols(d) if c not in ("dataset", "epochs")]
    d = d.assign(series=[labels.cell(dict(zip(keys, k)), sep=" / ") for k in zip(*(d[c] for c in keys))])
    panels = sorted(d.groupby(["knob", "dataset", "epochs"]).groups)
    res.title = (f"Strength curves: {_mlabel(metric)} vs {', '.join(sorted(d['knob'].unique()))} "
                 f"({', '.join(labels.value('backbone', b) for b in sorted(d['backbone'].unique()))})")
    series = sorted(d["series"].unique())  # one colour per series in every panel
    colours = dict(zip(series, sns.color_palette(n_colors=len(series))))
    fig, axes = _grid(len(panels), 5, 3.8)
    for ax, (knob, ds, ep) in zip(axes, panels):
        g = d[(d["knob"] == knob) & (d["dataset"] == ds) & (d["epochs"] == ep)]
        sns.lineplot(g, x="value", y=metric, hue="series", hue_order=[x for x in series if x in set(g["series"])],
                     palette=colours, marker="o", errorbar=t_errorbar, ax=ax)
        _dots(ax, _small(g, ["value", "series"]), "value", metric)
        ax.set_title(f"{knob} · {labels.value('dataset', ds)} / {ep} ep (n={len(g)} runs)\n"
                     f"{_interval_note(_group_sizes(g, ['value', 'series']))}", fontsize=8)
        ax.set_xticks(sorted(g["value"].unique()))
        ax.set_xlabel(knob)
        ax.set_ylabel(_mlabel(metric))
        ax.legend(fontsize=7, title=None)
    fig.suptitle(res.title, fontsize=10)
    res.files, res.n_runs = _save(fig, Path(out_dir), f"strength_{metric}"), int(len(d))
    return res


# ---------------------------------------------------------------------- 4. projector
def projector(df, out_dir, metric="knn_top1") -> FigureResult:
    res = FigureResult("projector", "Projector: kNN on backbone vs projector output; accuracy vs projector depth")
    d = S.done_rows(df)
    both = S.projector_runs(d)  # the runs and gaps the projector claim reports
    depth = d.dropna(subset=[metric]) if ("proj_depth" in d and metric in d) else d.iloc[0:0]
    if not depth.empty:  # a curve per cell (backbone, momentum, ... alike) and policy with >= 2 depths
        keys = [c for c in S.cell_cols(depth) if c != "proj_depth"] + ["policy"]
        depth = depth[depth.groupby(keys, dropna=False)["proj_depth"].transform("nunique") >= 2]
        keys = [c for c in S.cell_cols(depth) if c != "proj_depth"]
        depth = depth.assign(series=[labels.cell(dict(zip(keys, k)), sep=" / ") + f" / {labels.policy(p)}"
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
            ns = _where_panel(ax, both, S.cell_cols(d))
            pols = ", ".join(sorted(both["policy"].astype(str).unique()))
            ax.set_title(f"kNN on backbone vs projector output, policy {pols}\n(n={len(both)} runs; "
                         f"{_interval_note(ns)})", fontsize=9)
        else:
            sns.lineplot(depth, x="proj_depth", y=metric, hue="series", marker="o", errorbar=t_errorbar, ax=ax)
            _dots(ax, _small(depth, ["series", "proj_depth"]), "proj_depth", metric)
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


def _dots(ax, small: pd.DataFrame, x: str, y: str) -> None:
    """The seeds of groups too small for an interval, as dots over a seaborn line plot."""
    if len(small):
        ax.scatter(small[x], small[y], **DOT)


def _where_panel(ax, both: pd.DataFrame, keys: list[str] | None = None) -> list[int]:
    """Backbone vs projector kNN per cell as points (t-interval from SMALL_N seeds, else the seeds as dots), on
    an axis fitted to them (a bar axis from 0 would hide a gap of a point or two), each cell's mean gap
    (S.projector_runs' `gap`, as in the projector claim) written beside it."""
    keys = keys or [c for c in S.CELL if c in both]
    ns, groups = [], list(both.groupby(keys, dropna=False))
    for i, (k, g) in enumerate(groups):
        for j, (col, name) in enumerate((("knn_top1", "backbone"), ("knn_top1_projector", "projector output"))):
            x, xi = g[col].to_numpy(float), i + (j - 0.5) * 0.3
            ax.errorbar(xi, x.mean(), fmt="o", color=labels.PALETTE[name], label=name if i == 0 else None)
            if x.size >= SMALL_N:
                lo, hi = S.t_interval(x)
                ax.errorbar(xi, x.mean(), yerr=[[x.mean() - lo], [hi - x.mean()]], fmt="none",
                            ecolor=labels.PALETTE[name], capsize=4)
            elif x.size > 1:
                ax.scatter(np.full(x.size, xi), x, **DOT)
        gap = float((g["knn_top1"] - g["knn_top1_projector"]).mean())
        mid = float(g[["knn_top1", "knn_top1_projector"]].to_numpy().mean())
        ax.annotate(f"Δ {gap:+.2f} (n={len(g)})", (i + 0.2, mid), fontsize=8)
        ns.append(len(g))
    ax.set_xticks(range(len(groups)), [labels.cell(dict(zip(keys, k)), sep="\n") for k, _ in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.2)
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
    d = d.assign(momentum_on=d["momentum_on"].map({True: "on", False: "off"}), cell=_cell_names(d, keys))
    g = sns.catplot(d, x="policy", y=metric, hue="momentum_on", col="cell", kind="bar", errorbar=t_errorbar,
                    order=["full", "weak"], hue_order=["off", "on"], height=3.2, palette=labels.PALETTE, saturation=1,
                    col_wrap=3 if d["cell"].nunique() > 3 else None)
    _strip(g, _small(d, ["cell", "policy", "momentum_on"]), x="policy", y=metric, hue="momentum_on",
           order=["full", "weak"], hue_order=["off", "on"])
    g.set_titles("{col_name}")
    g.set_axis_labels("policy", _mlabel(metric))
    g.legend.set_title("momentum encoder")
    sizes = _group_sizes(d, ["cell", "policy", "momentum_on"])
    g.figure.suptitle(res.title + f"; n={len(d)} runs; {_interval_note(sizes)}", fontsize=10, y=1.04)
    res.files, res.n_runs = _save(g.figure, Path(out_dir), f"momentum_{metric}", tight=False), int(len(d))
    return res


# ---------------------------------------------------------------------- 6. evaluation protocols
def protocols(df, out_dir) -> FigureResult:
    res = FigureResult("protocols", "Evaluation protocols")
    d = S.done_rows(df)
    cols = [c for c in PROTOCOLS if c in d and d[c].notna().any()]
    if len(cols) < 2:
        res.reason = f"fewer than two evaluation protocols recorded (found: {cols or 'none'})"
        return res
    res.title = "Evaluation protocols: " + " vs ".join(PROTOCOLS[c] for c in cols)  # only what is there
    # sweeps (pairwise, strength) have their own figures; keep the named policies here
    pol = d["policy"].astype(str)
    d = d[~(pol.str.match(PAIR_RE) | pol.str.match(STRENGTH_RE))]
    keys = S.cell_cols(d)  # a panel per cell: runs of other backbones, depths, ... are not averaged together
    d = d.assign(cell=_cell_names(d, keys), policy=d["policy"].map(labels.policy))
    long = d.melt(id_vars=["cell", "policy", "seed"], value_vars=cols, var_name="protocol",
                  value_name="acc").dropna(subset=["acc"])
    long["protocol"] = long["protocol"].map(PROTOCOLS)
    order = sorted(long["policy"].unique(), key=lambda p: (p != "full", p))
    hues = [PROTOCOLS[c] for c in cols]
    g = sns.catplot(long, y="policy", x="acc", hue="protocol", col="cell", kind="bar", errorbar=t_errorbar,
                    order=order, hue_order=hues, palette=labels.PALETTE, saturation=1,
                    height=(h := max(2.5, 0.45 * len(order))), aspect=max(0.9, 4.0 / h),
                    col_wrap=3 if long["cell"].nunique() > 3 else None)
    _strip(g, _small(long, ["cell", "policy", "protocol"]), x="acc", y="policy", hue="protocol", order=order,
           hue_order=hues)
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
        res.reason = "no fine-tuning results (finetune_epochs was 0)"
    return res


def _strip(g, small: pd.DataFrame, **kw) -> None:
    """The seeds of bars too small for an interval, as dots on each facet of a catplot."""
    for cell, ax in g.axes_dict.items():
        pts = small[small["cell"] == cell]
        if len(pts):
            sns.stripplot(pts, ax=ax, dodge=True, jitter=False, palette=["black"] * len(kw["hue_order"]),
                          size=3.5, legend=False, **kw)


def make_all(df: pd.DataFrame, out_dir, metric: str = "knn_top1", alpha: float = 0.05):
    out_dir = Path(out_dir)
    return [drops(df, out_dir, alpha), only_one(df, out_dir), pairwise(df, out_dir, metric),
            strength(df, out_dir, metric), projector(df, out_dir, metric), momentum(df, out_dir, metric),
            protocols(df, out_dir)]
