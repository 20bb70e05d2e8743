"""A table of raw values rendered two ways: Markdown (raw names, for REPORT.md) and LaTeX (booktabs +
siunitx `S` columns aligned on the decimal point, readable names, `\\label{tab:<name>}`).

Cells: a float is a number ("%.2f"), a column named "p" or "p (...)" holds p-values, a (lo, hi) tuple is a
confidence interval (two aligned columns in LaTeX), NaN/None is "–" (never a made-up value).

LaTeX: the caption is the title (one sentence); the note (method, tests, correlations) goes below the table; p
columns without a single test are left out; a table wider than WIDE columns spans both columns (`table*`)."""
from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import labels

P_COL = re.compile(r"^(?:.+ )?p(?: \(.*\))?$")  # "p", "p (Holm)", "kNN p (Holm)"
DASH = "–"
WIDE = 7  # LaTeX columns above which a table is a two-column `table*`


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


def _nan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def fmt_p(p) -> str:
    return DASH if _nan(p) else ("<0.001" if p < 0.001 else f"{p:.3f}")


def kind(df: pd.DataFrame, col: str) -> str:
    vals = [v for v in df[col] if not _nan(v)]
    if not vals:
        return "empty"  # e.g. the intervals of one-seed rows
    if P_COL.match(str(col)) and all(isinstance(v, float) for v in vals):
        return "p"
    if vals and all(isinstance(v, tuple) for v in vals):
        return "ci"
    if vals and all(isinstance(v, float) for v in vals):
        return "num"
    if vals and all(isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in vals):
        return "int"
    return "text"


def fmt(v, k: str) -> str:
    if _nan(v) or (k == "ci" and any(_nan(x) for x in v)):
        return DASH
    if k == "p":
        return fmt_p(v)
    if k == "num":
        return f"{v:.2f}"
    if k == "ci":
        return f"[{v[0]:.2f}, {v[1]:.2f}]"
    return str(v)


def to_markdown(df: pd.DataFrame) -> str:
    if df.empty:
        return "_(no rows)_\n"
    kinds = [kind(df, c) for c in df.columns]
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "|".join("---:" if k in ("num", "p", "int", "ci", "empty") else "---" for k in kinds) + "|"
    body = ["| " + " | ".join(fmt(v, k).replace("|", "\\|") for v, k in zip(r, kinds)) + " |"
            for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "<": r"$<$", ">": r"$>$",
        "–": "--", "−": r"$-$"}


def tex_escape(s: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(s))


def _sformat(strings: list[str]) -> str:
    """siunitx table-format wide enough for every number in the column, e.g. -2.2."""
    nums = [s for s in strings if re.fullmatch(r"-?\d+(\.\d+)?", s)]
    if not nums:
        return "1.2"
    ints = max(len(s.lstrip("-").split(".")[0]) for s in nums)
    decs = max(len(s.split(".")[1]) if "." in s else 0 for s in nums)
    return ("-" if any(s.startswith("-") for s in nums) else "") + f"{ints}.{decs}"


def _latex_cols(df: pd.DataFrame) -> tuple[list[str], list[str], list[list[str]]]:
    """Column specs, header cells and body cells (one list per row) in LaTeX."""
    spec, head, body = [], [], [[] for _ in range(len(df))]
    for col in df.columns:
        k, vals = kind(df, col), list(df[col])
        name = tex_escape(labels.column(str(col)))
        if k == "ci":
            strs = [fmt(x, "num") for v in vals if not _nan(v) for x in v]
            spec += [f"S[table-format={_sformat(strs)}]"] * 2
            head.append(rf"\multicolumn{{2}}{{c}}{{{name}}}")
            for row, v in zip(body, vals):
                s = fmt(v, "ci")
                row.append(r"\multicolumn{2}{c}{--}" if s == DASH else f"{v[0]:.2f} & {v[1]:.2f}")
        elif k in ("num", "p", "int"):
            strs = [fmt(v, k) for v in vals]
            spec.append(f"S[table-format={_sformat(strs)}]")
            head.append("{" + name + "}")
            for row, s in zip(body, strs):
                row.append(s if re.fullmatch(r"-?\d+(\.\d+)?", s) else "{" + tex_escape(s) + "}")
        elif k == "empty":
            spec.append("c")
            head.append(name)
            for row in body:
                row.append("--")
        else:
            strs = [labels.value(str(col), v) if not _nan(v) else DASH for v in vals]
            spec.append(r"p{0.45\linewidth}" if max(map(len, strs), default=0) > 40 else "l")
            head.append(name)
            for row, s in zip(body, strs):
                row.append(tex_escape(s))
    return spec, head, body


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "", note: str = "") -> str:
    df = df[[c for c in df.columns if not (P_COL.match(str(c)) and kind(df, c) == "empty")]]  # no test, no column
    spec, head, body = _latex_cols(df) if not df.empty else (["l"], [], [["(no rows)"]])
    env = "table*" if len(spec) > WIDE else "table"
    lines = [r"% generated by `augbench report`; needs \usepackage{booktabs,siunitx}", rf"\begin{{{env}}}[t]",
             r"\centering", r"\small"]
    if caption:
        lines.append(rf"\caption{{{tex_escape(caption.rstrip('.'))}.}}")
    if label:
        lines.append(rf"\label{{tab:{label}}}")
    lines += [rf"\begin{{tabular}}{{{' '.join(spec)}}}", r"\toprule"]
    if head:
        lines += [" & ".join(head) + r" \\", r"\midrule"]
    lines += [" & ".join(r) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if note:
        lines.append(rf"\par\smallskip\parbox{{\linewidth}}{{\footnotesize {tex_escape(note)}}}")
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines) + "\n"


def write(t: Table, out_dir: Path) -> Table:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = out_dir / f"{t.name}.md", out_dir / f"{t.name}.tex"
    md.write_text(f"### {t.title}\n\n" + (f"{t.note}\n\n" if t.note else "") + t.markdown)
    tex.write_text(to_latex(t.frame, t.title, label=t.name, note=t.note))
    t.files = [md, tex]
    return t
