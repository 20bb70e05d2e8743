"""Two crop verdicts per cell and metric, both paired over seeds:

- leave-one-out: is crop's drop (full - no_crop) larger than every other single removal's (no_*)?
- only-one (SimCLR Fig. 5's diagonal): is crop_only's accuracy above every other single-augmentation arm
  (color_only, blur_only, flip_only, ...)?

"Larger than every other" is an intersection of one-sided claims, so it is tested as an intersection-union
test: yes when each one-sided paired t-test (crop vs one other) rejects at alpha, unadjusted. An IUT keeps its
level without a multiplicity correction (Berger 1982), unlike the "some other beats crop" claim behind a no,
which is Holm-adjusted across the other arms.

Rules (a verdict is yes, no, undecided or not testable):
- Expected arms: crop, color, flip and blur (no_crop, no_color, no_flip, no_blur; crop_only, color_only,
  blur_only, flip_only). With any of them missing from the cell the verdict is not testable (missing: ...),
  whatever the others show. Arms of other single groups (no_gray, jitter_only, ...) are compared too when they ran.
- Paired seeds: the seeds on which every arm ran (and `full`, for drops). None: not testable (no paired seeds).
  A yes or no needs at least MIN_SEEDS (3) of them; with fewer the verdict is undecided.
- Resolution: an accuracy moves in steps of 100 / test images (stats.resolution). The sd of paired differences
  is floored there, and means closer than that are a tie: printed "crop 29.87 = color 29.87", and crop
  does not beat an arm it ties with.
- Undecided: the comparisons that did not separate are named, with the paired seeds a one-sided paired t-test
  would need at the observed mean difference and sd ("–" when the observed difference points the other way).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats as S

TARGET = "crop"
EXPECTED = ("crop", "color", "flip", "blur")  # augmentations every verdict needs, as no_<aug> / <aug>_only arms
MIN_SEEDS = 3  # paired seeds a yes or no needs
ONLY_RE = re.compile(r"^(?P<aug>[a-z]+)_only$")  # one group alone; crop_flip_only etc. are pairs
KINDS = ("leave-one-out", "only-one")
COLUMNS = ["verdict", "answer", "label", "reason", "n", "order", "p", "vs", "diff", "ci_lo", "ci_hi", "needed"]


@dataclass
class Verdict:
    kind: str  # leave-one-out | only-one
    answer: str  # yes | no | undecided | not testable
    reason: str
    n: int = 0  # paired seeds
    order: str = ""  # the point estimates, largest first, ties as "="
    p: float = math.nan  # yes/undecided: the IUT p (largest one-sided p); no: the Holm-adjusted p of the winner
    missing: list[str] = field(default_factory=list)
    vs: str = ""  # the effect's other arm: the runner-up (yes), the furthest from deciding (undecided), the winner (no)
    diff: float = math.nan  # mean of crop - vs over paired seeds (drops or accuracies, points)
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    needed: int | None = None  # undecided: paired seeds that would decide it at the observed variance

    @property
    def label(self) -> str:
        return f"{self.answer} (missing: {', '.join(self.missing)})" if self.missing else self.answer

    def as_dict(self) -> dict:
        return {c: getattr(self, c) for c in COLUMNS if c != "verdict"} | {"verdict": self.kind}


def arm(kind: str, aug: str) -> str:
    return f"no_{aug}" if kind == "leave-one-out" else f"{aug}_only"


EXPECTED_ARMS = ", ".join(arm(k, a) for k in KINDS for a in EXPECTED)


def ranked(means: dict[str, float], res: float, first: str = TARGET) -> str:
    """'crop 29.87 = color 29.87 > flip 1.00': largest first, '=' between means closer than `res` (a run of such
    ties lists `first`, then by name)."""
    groups: list[list[str]] = []
    for k in sorted(means, key=lambda k: (-means[k], k)):
        if groups and means[groups[-1][-1]] - means[k] < res:
            groups[-1].append(k)
        else:
            groups.append([k])
    return " > ".join(" = ".join(f"{k} {means[k]:.2f}" for k in sorted(g, key=lambda k: (k != first, k)))
                      for g in groups)


def needed_text(needed, most: int = 1000) -> str:
    return "–" if pd.isna(needed) else f">{most}" if needed > most else str(int(needed))


def dominates(samples: dict[str, np.ndarray], kind: str, alpha: float = 0.05, min_seeds: int = MIN_SEEDS,
              target: str = TARGET, resolution: float = S.FALLBACK_RESOLUTION,
              expected: tuple[str, ...] = EXPECTED) -> Verdict:
    """samples: augmentation -> per-seed values (drops for leave-one-out, accuracies for only-one), aligned by
    seed (every arm that ran in the cell, possibly with no paired seed). Is `target`'s value above every other's?"""
    what = "drop" if kind == "leave-one-out" else "accuracy"
    vals = {k: np.asarray(v, float) for k, v in samples.items()}
    n = len(next(iter(vals.values()))) if vals else 0
    if any(v.shape != (n,) for v in vals.values()):
        raise ValueError("samples must be aligned by seed (equal lengths)")
    means = {k: float(v.mean()) for k, v in vals.items()} if n else {}
    order = ranked(means, resolution, target)
    missing = [arm(kind, a) for a in (target, *expected) if a not in vals]
    missing = list(dict.fromkeys(missing))
    if missing:
        seen = (f"of the arms that ran, by mean {what} over {n} paired seed(s): {order}" if n and len(vals) > 1 else
                f"ran: {', '.join(arm(kind, k) for k in sorted(vals)) or 'none'}")
        return Verdict(kind, "not testable", f"an expected arm never ran; {seen}", n, order, missing=missing)
    if n == 0:
        return Verdict(kind, "not testable", "no paired seeds for " + ", ".join(arm(kind, k) for k in sorted(vals)))
    others = {k: vals[target] - v for k, v in vals.items() if k != target}  # crop - other, per seed
    tied = sorted(k for k, d in others.items() if abs(d.mean()) < resolution)
    ahead = sum(d.mean() <= -resolution for d in others.values())
    place = f"{target} ranks {ahead + 1} of {len(vals)} by mean {what}" + (f", tied with {', '.join(tied)}"
                                                                          if tied else "")
    p_above = {k: S.ttest_p(d, "greater", resolution) for k, d in others.items()}
    p_below = dict(zip(others, S.holm([S.ttest_p(d, "less", resolution) for d in others.values()])))
    needed = {k: S.seeds_to_decide(d, alpha, resolution, least=min_seeds) for k, d in others.items()}

    def verdict(answer, reason, vs, p):
        lo, hi = S.t_interval(others[vs], floor=resolution)
        return Verdict(kind, answer, reason, n, order, p, [], vs, float(others[vs].mean()), lo, hi,
                       needed[vs] if answer == "undecided" else None)

    beats = [k for k in others if p_above[k] < alpha and k not in tied] if n >= min_seeds else []
    # the comparison furthest from deciding: pointing the other way first, then the most seeds needed
    open_ = sorted((k for k in others if k not in beats), key=lambda k: (-(needed[k] or math.inf), others[k].mean(), k))
    power = _power(others, p_above, needed, target, resolution, open_)
    if n < min_seeds:
        return verdict("undecided", f"{n} paired seed(s): a yes or no needs at least {min_seeds}; {place} ({order})"
                       + power, open_[0], p_above[open_[0]])
    if not open_:
        p = max(p_above.values())
        return verdict("yes", f"{target}'s {what} exceeds every other's ({order}); largest one-sided paired t-test "
                       f"p={p:.3g} < {alpha} (intersection-union test, unadjusted), n={n}",
                       min(others, key=lambda k: (others[k].mean(), k)), p)
    beaten = {k: p for k, p in p_below.items() if p < alpha and k not in tied}
    if beaten:
        k = min(beaten, key=lambda x: (beaten[x], x))
        return verdict("no", f"{k}'s {what} is larger than {target}'s by {-others[k].mean():.2f} points (one-sided "
                       f"paired t-test, Holm-adjusted p={beaten[k]:.3g} < {alpha}, n={n}); {order}", k, beaten[k])
    return verdict("undecided", f"{place} ({order}), n={n}" + power, open_[0], p_above[open_[0]])


def _power(others: dict, p_above: dict, needed: dict, target: str, res: float, open_: list[str]) -> str:
    """The comparisons that did not separate, and the paired seeds each would need at the observed variance."""
    if len(next(iter(others.values()))) < 2:
        return "; one paired seed: no variance, so no estimate of the seeds a decision needs"
    parts = []
    for k in open_:
        d = others[k]
        sd = S.floored_sd(d, res)
        if abs(d.mean()) < res:
            parts.append(f"{target} vs {k}: a tie (difference below the resolution, {res:.2g} points): –")
        elif needed[k] is None:
            parts.append(f"{target} vs {k}: {d.mean():+.2f} (sd {sd:.2f}), points the other way: –")
        else:
            parts.append(f"{target} vs {k}: {d.mean():+.2f} (sd {sd:.2f}, one-sided p={p_above[k]:.3g}), "
                         f"~{needed_text(needed[k])} paired seeds would decide it")
    return "; not separated: " + "; ".join(parts) if parts else ""


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


def crop_verdicts(df: pd.DataFrame, metric: str, alpha: float = 0.05, min_seeds: int = MIN_SEEDS) -> pd.DataFrame:
    """Both verdicts for every cell that ran a leave-one-out or only-one arm, on the seeds where every arm of
    that verdict ran; a verdict that cannot be given names what is missing."""
    d = S.done_rows(df)
    keys = S.cell_cols(d)
    if d.empty or metric not in d:
        return pd.DataFrame(columns=keys + COLUMNS)
    d = d.dropna(subset=[metric])
    pol = d["policy"].astype(str)
    arms = d[pol.str.startswith("no_") | pol.str.match(ONLY_RE)]
    out = []
    for k, _ in arms.groupby(keys, dropna=False):
        key = dict(zip(keys, k if isinstance(k, tuple) else (k,)))
        cell = S.in_cell(d, key)
        for kind in KINDS:
            out.append({**key, **_cell_verdict(cell, metric, kind, alpha, min_seeds).as_dict()})
    return pd.DataFrame(out, columns=keys + COLUMNS).astype({"needed": "Int64"})


def _cell_verdict(cell: pd.DataFrame, metric: str, kind: str, alpha: float, min_seeds: int) -> Verdict:
    if kind == "leave-one-out" and S.BASELINE not in set(cell["policy"]):
        return Verdict(kind, "not testable", f"no `{S.BASELINE}` run to measure drops against")
    pol = cell["policy"].astype(str)
    ran = (pol[pol.str.startswith("no_")].str.removeprefix("no_") if kind == "leave-one-out" else
           pol.str.extract(ONLY_RE)["aug"].dropna())  # arms that ran, paired seeds or not
    wide = _samples(cell, metric, kind).pivot_table(index="seed", columns="aug", values="value")
    wide = wide.reindex(columns=sorted(set(wide.columns) | set(ran)))
    paired = wide.dropna()
    v = dominates({c: paired[c].to_numpy() for c in wide.columns}, kind, alpha, min_seeds,
                  resolution=S.resolution(cell))
    if v.reason.startswith("no paired seeds"):
        seeds = {c: ",".join(str(int(s)) for s in wide.index[wide[c].notna()]) or "none" for c in wide.columns}
        base = f"; with `{S.BASELINE}`" if kind == "leave-one-out" else ""
        v.reason += f" (seeds{base}: " + "; ".join(f"{arm(kind, c)} {s}" for c, s in seeds.items()) + ")"
    return v
