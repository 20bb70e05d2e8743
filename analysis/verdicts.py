"""Two crop verdicts per cell and metric, both paired over seeds:

- leave-one-out: is crop's drop (full - no_crop) larger than every other single removal's (no_*)?
- only-one (SimCLR Fig. 5's diagonal): is crop_only's accuracy above every other single-augmentation arm
  (color_only, blur_only, flip_only, ...)?

"Larger than every other" is an intersection of one-sided claims, so it is tested as an intersection-union
test: yes when each one-sided paired t-test (crop vs one other) rejects at alpha. An IUT keeps its level
without a multiplicity correction (Berger 1982), unlike a "some other beats crop" claim, which gets Holm's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats as S

TARGET = "crop"
# the arms issue 10 asks for; arms of other single groups (jitter_only, ...) count too when they ran
EXPECTED = {"leave-one-out": ("no_color", "no_flip", "no_blur"),
            "only-one": ("color_only", "blur_only", "flip_only")}
ONLY_RE = re.compile(r"^(?P<aug>[a-z]+)_only$")  # one group alone; crop_flip_only etc. are pairs
KINDS = tuple(EXPECTED)


@dataclass
class Verdict:
    kind: str  # leave-one-out | only-one
    answer: str  # yes | no | undecided | not testable
    reason: str
    n: int = 0
    order: str = ""  # the point estimates, largest first
    p: float = math.nan  # yes: the IUT p (largest one-sided p); no: the Holm-adjusted p of the winner
    missing: list[str] = field(default_factory=list)


def _arm(kind: str, aug: str) -> str:
    return f"no_{aug}" if kind == "leave-one-out" else f"{aug}_only"


def dominates(samples: dict[str, np.ndarray], kind: str, alpha: float = 0.05, min_seeds: int = 2,
              missing: list[str] | None = None, target: str = TARGET) -> Verdict:
    """samples: augmentation -> per-seed values (drops for leave-one-out, accuracies for only-one), aligned
    by seed. Is `target`'s value larger than every other's?"""
    what = "drop" if kind == "leave-one-out" else "accuracy"
    missing = list(missing or [])
    tail = f"; not run: {', '.join(missing)}" if missing else ""
    if target not in samples:
        return Verdict(kind, "not testable", f"no {_arm(kind, target)} run paired with the others{tail}",
                       missing=missing)
    others = {k: np.asarray(v, float) for k, v in samples.items() if k != target}
    if not others:
        return Verdict(kind, "not testable", f"nothing to compare {_arm(kind, target)} against{tail}", missing=missing)
    t = np.asarray(samples[target], float)
    if any(v.shape != t.shape for v in others.values()):
        raise ValueError("samples must be aligned by seed (equal lengths)")
    n = int(t.size)
    means = {target: float(t.mean()), **{k: float(v.mean()) for k, v in others.items()}}
    ranked = sorted(means, key=means.get, reverse=True)
    order = " > ".join(f"{k} {means[k]:.2f}" for k in ranked)
    place = f"{target} ranks {ranked.index(target) + 1} of {len(ranked)} by mean {what}"
    if n < min_seeds:
        return Verdict(kind, "undecided", f"{n} seed(s): a paired test needs at least {min_seeds}; {place} "
                       f"({order}){tail}", n, order, missing=missing)
    p_above = {k: S.ttest_p(t - v, "greater") for k, v in others.items()}
    p_below = dict(zip(others, S.holm([S.ttest_p(t - v, "less") for v in others.values()])))
    if max(p_above.values()) < alpha:
        p = max(p_above.values())
        return Verdict(kind, "yes", f"{target}'s {what} exceeds every other's ({order}); largest one-sided paired "
                       f"t-test p={p:.3g} < {alpha} (intersection-union test), n={n}{tail}", n, order, p, missing)
    beaten = {k: p for k, p in p_below.items() if p < alpha}
    if beaten:
        k = min(beaten, key=beaten.get)
        return Verdict(kind, "no", f"{k}'s {what} is larger than {target}'s by {means[k] - means[target]:.2f} points "
                       f"(one-sided paired t-test, Holm-adjusted p={beaten[k]:.3g} < {alpha}, n={n}); {order}{tail}",
                       n, order, beaten[k], missing)
    worst = max(p_above, key=p_above.get)
    return Verdict(kind, "undecided", f"{place} ({order}), not separated from {worst} (one-sided paired t-test "
                   f"p={p_above[worst]:.3g}, n={n}){tail}", n, order, p_above[worst], missing)


def _samples(df: pd.DataFrame, metric: str, kind: str) -> pd.DataFrame:
    """Long frame (cell, seed, aug, value): drops of no_* runs, or accuracies of <aug>_only runs."""
    if kind == "leave-one-out":
        long = S.paired_drops(df, metric)
        long = long[long["policy"].isin(S.leave_one_out_policies(long["policy"].unique()))]
        return long.assign(aug=long["policy"].str.removeprefix("no_")).rename(columns={"drop": "value"})
    wide = S.by_seed(df, metric)
    arms = [c for c in wide.columns if ONLY_RE.match(str(c))]
    if wide.empty or not arms:
        return pd.DataFrame(columns=list(wide.index.names) + ["policy", "value", "aug"])
    long = wide[arms].reset_index().melt(id_vars=list(wide.index.names), var_name="policy", value_name="value")
    long = long.dropna(subset=["value"])
    return long.assign(aug=long["policy"].str.extract(ONLY_RE)["aug"])


def crop_verdicts(df: pd.DataFrame, metric: str, alpha: float = 0.05, min_seeds: int = 2) -> pd.DataFrame:
    """Both verdicts for every cell that ran a leave-one-out or only-one arm, on the seeds where every arm of
    that verdict ran; a verdict that cannot be given names what is missing."""
    d = S.done_rows(df)
    keys = S.cell_cols(d)
    cols = keys + ["verdict", "answer", "reason", "n", "order", "p"]
    if d.empty or metric not in d:
        return pd.DataFrame(columns=cols)
    d = d.dropna(subset=[metric])
    pol = d["policy"].astype(str)
    arms = d[pol.str.startswith("no_") | pol.str.match(ONLY_RE)]
    out = []
    for k, g in arms.groupby(keys, dropna=False):
        k = k if isinstance(k, tuple) else (k,)
        cell = S.in_cell(d, dict(zip(keys, k)))
        for kind in KINDS:
            out.append({**dict(zip(keys, k)), "verdict": kind, **_cell_verdict(cell, metric, kind, alpha, min_seeds)})
    return pd.DataFrame(out, columns=cols)


def _cell_verdict(cell: pd.DataFrame, metric: str, kind: str, alpha: float, min_seeds: int) -> dict:
    ran = set(cell["policy"])
    missing = [p for p in EXPECTED[kind] if p not in ran]
    if kind == "leave-one-out" and S.BASELINE not in ran:
        v = Verdict(kind, "not testable", f"no `{S.BASELINE}` run to measure drops against")
    else:
        wide = _samples(cell, metric, kind).pivot_table(index="seed", columns="aug", values="value").dropna()
        v = dominates({c: wide[c].to_numpy() for c in wide.columns}, kind, alpha, min_seeds, missing)
    return {"answer": v.answer, "reason": v.reason, "n": v.n, "order": v.order, "p": v.p}
