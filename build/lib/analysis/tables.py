"""Tables from result rows, each as Markdown and LaTeX (booktabs) under results/tables/."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import published
from analysis import stats as S

# our policies that have a counterpart in the published removal tables
COMPARABLE = ("no_flip", "no_blur", "no_color", "no_jitter", "no_gray", "crop_only", "crop_flip_only",
              "crop_color_only", "crop_blur_only")


@dataclass
class Table:
    name: str
    title: str
    frame: pd.DataFrame
    note: str = ""
    files: list[Path] = field(default_factory=list)

    @property
    def markdown(self) -> str:
        return to_markdown(self.frame)


# ---------------------------------------------------------------------- formatting
def _cell(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 0.01 and v != 0 else f"{v:.2f}"
    return str(v)


def fmt_p(p) -> str:
    return "–" if p is None or p != p else ("<0.001" if p < 0.001 else f"{p:.3f}")


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v).replace("|", "\\|") for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "<": r"$<$", ">": r"$>$",
        "–": "--", "−": "--"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def to_latex(df: pd.DataFrame, caption: str = "") -> str:
    cols = "l" * len(df.columns) if len(df.columns) else "l"
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{cols}}}", r"\toprule",
             " & ".join(tex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(tex_escape(_cell(v)) for v in r) + r" \\" for r in df.itertuples(index=False)]
    if df.empty:
        lines.append(r"\multicolumn{1}{l}{(no rows)} \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def write(t: Table, out_dir: Path) -> Table:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = out_dir / f"{t.name}.md", out_dir / f"{t.name}.tex"
    md.write_text(f"### {t.title}\n\n" + (f"{t.note}\n\n" if t.note else "") + t.markdown)
    tex.write_text(to_latex(t.frame, t.title + (f". {t.note}" if t.note else "")))
    t.files = [md, tex]
    return t


def _pm(mean, std, n) -> str:
    return f"{mean:.2f} ± {std:.2f} (n={int(n)})" if std == std else f"{mean:.2f} (n={int(n)})"


def _ci(mean, lo, hi) -> str:
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


# ---------------------------------------------------------------------- the tables
def summary(df, metric) -> Table:
    s = S.summarize(df, metric)
    keys = [c for c in s.columns if c not in ("mean", "std", "n", "seeds")]
    f = s[keys].copy()
    f[f"{metric} mean ± std (n seeds)"] = [_pm(m, sd, n) for m, sd, n in zip(s["mean"], s["std"], s["n"])]
    f["seeds"] = s["seeds"]
    return Table(f"summary_{metric}", f"{metric}: mean ± std over seeds", f,
                 "std is the sample std (ddof=1); blank when one seed.")


def drops(df, metric, n_boot, seed) -> Table:
    d = S.drop_table(df, metric, n_boot=n_boot, seed=seed)
    keys = S.key_cols(d)
    f = d[keys + ["policy"]].copy()
    f["drop vs full [95% CI]"] = [_ci(m, lo, hi) for m, lo, hi in zip(d["mean"], d["ci_lo"], d["ci_hi"])]
    f["p (t)"] = d["p_t"].map(fmt_p)
    f["p (perm)"] = d["p_perm"].map(fmt_p)
    f["n pairs"] = d["n"]
    return Table(f"drops_{metric}", f"Drop in {metric} vs full, paired by seed",
                 f, f"drop = full - policy in points (positive: the policy is worse); percentile paired bootstrap CI "
                    f"({n_boot} resamples, seed {seed}); two-sided paired t-test and sign-flip permutation p.")


def ranking(df, metric, n_boot, seed) -> Table:
    r = S.ranking(S.drop_table(df, metric, n_boot=n_boot, seed=seed))
    keys = list(r.columns[: list(r.columns).index("rank")])
    f = r[keys + ["rank", "augmentation"]].copy()
    f["mean drop [95% CI]"] = [_ci(m, lo, hi) for m, lo, hi in zip(r["mean"], r["ci_lo"], r["ci_hi"])]
    f["n pairs"] = r["n"]
    return Table(f"ranking_{metric}", f"Augmentations ranked by mean drop in {metric} when removed (leave-one-out)", f)


def verdicts(df, metric, n_boot, seed, alpha=0.05) -> Table:
    v = S.verdicts(df, metric, alpha=alpha, n_boot=n_boot, seed=seed)
    keys = [c for c in v.columns if c not in ("answer", "reason", "top", "runner_up", "n", "mean_diff", "p_t", "p_perm")]
    f = v[keys].copy()
    f["crop most important?"] = v["answer"]
    f["evidence"] = v["reason"]
    f["p (perm)"] = v["p_perm"].map(fmt_p)
    return Table(f"verdicts_{metric}", f"Is crop the most important augmentation? ({metric})", f,
                 f"yes: crop's leave-one-out drop is the largest and exceeds the runner-up's by a paired t-test at "
                 f"alpha={alpha}; no: another's is significantly larger; undecided otherwise (incl. < 2 seeds).")


def paper_vs_ours(df, metric, n_boot, seed) -> Table:
    """Our drops beside the published removal drops (BYOL Table 17, MIFA-Lab CIFAR-10), with Spearman."""
    d = S.drop_table(df, metric, n_boot=n_boot, seed=seed)
    d = d[d["policy"].isin(COMPARABLE)]
    sources = published.removal_sources()
    pub = {desc: published.removal_drops(pre, m) for pre, m, desc in sources}
    short = {desc: f"{pre} {m}" for pre, m, desc in sources}
    keys = S.key_cols(d)
    rows = []
    for k, g in d.groupby(keys, dropna=False) if not d.empty else []:
        label = S.cell_label(dict(zip(keys, k if isinstance(k, tuple) else (k,))), sep=" / ")
        ours = dict(zip(g["policy"], g["mean"]))
        for p in COMPARABLE:
            if p not in ours:
                continue
            r = g[g["policy"] == p].iloc[0]
            rows.append({"cell": label, "policy": p, f"ours ({metric})": _ci(r["mean"], r["ci_lo"], r["ci_hi"]),
                         **{short[s]: _cell(pub[s].get(p)) for s in pub}})
        for s in pub:
            rho = S.spearman(ours, pub[s])
            rows.append({"cell": label, "policy": f"Spearman vs {short[s]}",
                         f"ours ({metric})": (f"rho={rho['rho']:.2f}, p={fmt_p(rho['p'])}, n={rho['n']}"
                                              if rho["rho"] == rho["rho"] else f"n={rho['n']} shared (need 3)"),
                         **{short[x]: "" for x in pub}})
    f = pd.DataFrame(rows)
    note = ("Drops in points (full - policy). Published: " + "; ".join(f"{short[s]} = {s}" for s in pub) +
            ". Published figures are references copied from the papers (analysis/published.csv), not our runs; "
            "their datasets, epochs and protocols differ from ours, so compare ranks, not values.")
    return Table(f"paper_vs_ours_{metric}", "Paper vs ours: drop when an augmentation is removed", f, note)


def make_all(df: pd.DataFrame, out_dir, metrics=("knn_top1", "linear_top1"), n_boot: int = 10000,
             seed: int = 0) -> list[Table]:
    out_dir = Path(out_dir)
    done = S.done_rows(df)
    out = []
    for m in metrics:
        if m not in done or done[m].notna().sum() == 0:
            continue
        out += [summary(df, m), drops(df, m, n_boot, seed), ranking(df, m, n_boot, seed),
                verdicts(df, m, n_boot, seed), paper_vs_ours(df, m, n_boot, seed)]
    return [write(t, out_dir) for t in out]
